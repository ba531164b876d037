package ops

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
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

// The timeseries step's snapshot, format version 1 (varints, floats as
// IEEE bits): magic "WSPT" | version | outputs (kind, window, alpha bits,
// threshold bits each) | keys (sorted) | per key: key | sum | comp |
// started | ewma count | ewma* | windows | per window: n | mean | m2 |
// epoch | points | (t | v)*.
const tsMagic = "WSPT"

func (w *tsWorker) putSettings(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(w.s.Outputs)))
	for _, o := range w.s.Outputs {
		b = binary.AppendUvarint(b, uint64(o.Kind))
		b = binary.AppendVarint(b, o.Window)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.Alpha))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.Threshold))
	}
	return b
}

// Snapshot appends the step's state on this worker to dst.
func (w *tsWorker) Snapshot(dst []byte) ([]byte, error) {
	b := append(dst, tsMagic...)
	b = binary.AppendUvarint(b, 1)
	b = w.putSettings(b)
	keys := make([]string, 0, len(w.keys))
	for k := range w.keys {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	f := func(x float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x)) }
	for _, k := range keys {
		st := w.keys[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		f(st.sum)
		f(st.comp)
		b = append(b, boolByte(st.started))
		b = binary.AppendUvarint(b, uint64(len(st.ewma)))
		for _, x := range st.ewma {
			f(x)
		}
		b = binary.AppendUvarint(b, uint64(len(st.wins)))
		for i := range st.wins {
			tw := &st.wins[i]
			f(tw.n)
			f(tw.mean)
			f(tw.m2)
			b = binary.AppendUvarint(b, uint64(tw.epoch))
			pts := tw.pts[tw.head:]
			b = binary.AppendUvarint(b, uint64(len(pts)))
			for _, p := range pts {
				b = binary.AppendVarint(b, p.t)
				f(p.v)
			}
		}
	}
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// Restore adds a snapshot's state for the keys keep accepts.
func (w *tsWorker) Restore(snap []byte, keep func(key []byte) bool) error {
	d := tsDec{b: snap}
	if len(d.b) < 4 || string(d.b[:4]) != tsMagic {
		return fmt.Errorf("timeseries %s: restore: not a snapshot of a timeseries step", w.s.StepName)
	}
	d.b = d.b[4:]
	if v := d.uvarint(); v != 1 {
		return fmt.Errorf("timeseries %s: restore: snapshot format version %d; this wsp reads version 1", w.s.StepName, v)
	}
	want := w.putSettings(nil)
	if len(d.b) < len(want) || string(d.b[:len(want)]) != string(want) {
		return fmt.Errorf("timeseries %s: restore: the snapshot was taken with other outputs; reset the state to change them", w.s.StepName)
	}
	d.b = d.b[len(want):]
	for range d.count() {
		k := d.bytes()
		st := &tsState{sum: d.float(), comp: d.float(), started: d.byte() != 0}
		for range d.count() {
			st.ewma = append(st.ewma, d.float())
		}
		for range d.count() {
			tw := trailing{n: d.float(), mean: d.float(), m2: d.float(), epoch: int(d.uvarint())}
			for range d.count() {
				tw.pts = append(tw.pts, tsPoint{t: d.varint(), v: d.float()})
			}
			st.wins = append(st.wins, tw)
		}
		if d.err == nil && (keep == nil || keep(k)) {
			w.keys[string(k)] = st
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return fmt.Errorf("timeseries %s: restore: the snapshot is cut short or corrupt", w.s.StepName)
	}
	return nil
}

// tsDec reads a snapshot, recording the first error.
type tsDec struct {
	b   []byte
	err error
}

var errCorrupt = errors.New("corrupt")

func (d *tsDec) fail() { d.err, d.b = errCorrupt, nil }

func (d *tsDec) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *tsDec) varint() int64 {
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

// count reads a count no larger than the bytes left.
func (d *tsDec) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return n
}

func (d *tsDec) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	x := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return x
}

func (d *tsDec) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *tsDec) bytes() []byte {
	n := d.count()
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}
