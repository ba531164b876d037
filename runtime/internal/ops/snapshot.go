package ops

import (
	"fmt"
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

// Snapshot appends the step's state on this worker to dst.
func (w *windowWorker) Snapshot(dst []byte) ([]byte, error) {
	op, ok := w.op.(windowSnapshotter)
	if !ok {
		return dst, fmt.Errorf("window %s: its state cannot be checkpointed", w.s.StepName)
	}
	return op.Snapshot(dst)
}

// SnapshotLater copies the state now and encodes it later (on the
// checkpoint's goroutine) where the operator can; see
// window.Operator.SnapshotLater.
func (w *windowWorker) SnapshotLater() (func() ([]byte, error), error) {
	if op, ok := w.op.(interface {
		SnapshotLater() (func() ([]byte, error), error)
	}); ok {
		return op.SnapshotLater()
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
	if err := op.Restore(snap, keep); err != nil {
		return fmt.Errorf("window %s: %w", w.s.StepName, err)
	}
	return nil
}
