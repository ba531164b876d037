package ops

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Snapshots of the keyed steps' state (engine.Snapshotter), for
// checkpoints (issue "state"). A window step's state is its operator's
// (runtime/internal/window/snapshot.go): a Wasm aggregate's accumulators are
// in it, as the windows' AccBoxes. A timeseries step writes its own.

// windowSnapshotter is what the window operators offer.
type windowSnapshotter interface {
	Snapshot(dst []byte) ([]byte, error)
	Restore(snap []byte, keep func(key []byte) bool) error
}

// After the operator's snapshot the step appends a trailer naming what the
// state's meaning depends on beyond the operator's own settings (which it
// checks itself): the fields the accumulators read and the window
// assignment. A restore refuses a state built for other ones (sum(a) kept
// as sum(b), say). Snapshots of an earlier wsp have no trailer and are not
// checked.
//
//	trailer = spec (bytes) | spec length u32 LE | version 1 (byte) | "WSPW"
const specMagic = "WSPW"

// spec describes what the step's state means: its fields and windows.
func (s *WindowStep) spec() string {
	return fmt.Sprintf("fields %s; size %d slide %d offset %d gap %d count %d processing time %v",
		strings.Join(s.fields, ","), s.Size, s.Slide, s.Offset, s.Gap, s.Count, s.ProcessingTime)
}

func (w *windowWorker) trailer(b []byte) []byte {
	sp := w.s.spec()
	b = append(b, sp...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sp)))
	return append(append(b, 1), specMagic...)
}

// Snapshot appends the step's state on this worker to dst.
func (w *windowWorker) Snapshot(dst []byte) ([]byte, error) {
	op, ok := w.op.(windowSnapshotter)
	if !ok {
		return dst, fmt.Errorf("window %s: its state cannot be checkpointed", w.s.StepName)
	}
	b, err := op.Snapshot(dst)
	if err != nil {
		return b, err
	}
	return w.trailer(b), nil
}

// SnapshotLater copies the state now and encodes it later (on the
// checkpoint's goroutine) where the operator can; see
// window.Operator.SnapshotLater.
func (w *windowWorker) SnapshotLater() (func() ([]byte, error), error) {
	if op, ok := w.op.(interface {
		SnapshotLater() (func() ([]byte, error), error)
	}); ok {
		enc, err := op.SnapshotLater()
		if err != nil {
			return nil, err
		}
		return func() ([]byte, error) {
			b, err := enc()
			if err != nil {
				return b, err
			}
			return w.trailer(b), nil
		}, nil
	}
	b, err := w.Snapshot(nil)
	return func() ([]byte, error) { return b, err }, nil
}

// Restore adds a snapshot's state for the keys keep accepts.
func (w *windowWorker) Restore(snap []byte, keep func(key []byte) bool) error {
	op, ok := w.op.(windowSnapshotter)
	if !ok {
		return fmt.Errorf("window %s: its state cannot be restored", w.s.StepName)
	}
	if n := len(snap); n >= 9 && string(snap[n-4:]) == specMagic {
		if v := snap[n-5]; v != 1 {
			return fmt.Errorf("window %s: snapshot trailer version %d; this wsp reads version 1", w.s.StepName, v)
		}
		l := int(binary.LittleEndian.Uint32(snap[n-9:]))
		if l > n-9 {
			return fmt.Errorf("window %s: the snapshot's trailer is corrupt", w.s.StepName)
		}
		stored := string(snap[n-9-l : n-9])
		if now := w.s.spec(); stored != now {
			return fmt.Errorf("window %s: the stored state was built for %s; the step now has %s: "+
				"start with --reset-state %s to drop it", w.s.StepName, stored, now, w.s.StepName)
		}
		snap = snap[:n-9-l]
	}
	if err := op.Restore(snap, keep); err != nil {
		return fmt.Errorf("window %s: %w", w.s.StepName, err)
	}
	return nil
}
