package ops

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/wsp-project/wsp/runtime/internal/window"
)

// The timeseries step's snapshot, format version 2, in the window
// snapshots' codec (window.Encoder): magic "WSPT" | version | settings
// (per output: kind, window, alpha, threshold) | field (version 2 on) |
// keys (sorted) | per key:
// key | sum | comp | started | ewma count | ewma* | windows | per window:
// n | mean | m2 | epoch | points | (t | v)*.
const tsMagic = "WSPT"

func (w *tsWorker) putSettings(e *window.Encoder) {
	e.Uvarint(uint64(len(w.s.Outputs)))
	for _, o := range w.s.Outputs {
		e.Uvarint(uint64(o.Kind))
		e.Varint(o.Window)
		e.Float(o.Alpha)
		e.Float(o.Threshold)
	}
}

// Snapshot appends the step's state on this worker to dst.
func (w *tsWorker) Snapshot(dst []byte) ([]byte, error) {
	e := window.NewEncoder(dst)
	e.Raw([]byte(tsMagic))
	e.Uvarint(2)
	w.putSettings(e)
	e.Bytes([]byte(w.s.Field))
	keys := slices.SortedFunc(func(yield func(string) bool) {
		for k := range w.keys {
			if !yield(k) {
				return
			}
		}
	}, cmp.Compare)
	e.Uvarint(uint64(len(keys)))
	for _, k := range keys {
		st := w.keys[k]
		e.Bytes([]byte(k))
		e.Float(st.sum)
		e.Float(st.comp)
		e.Bool(st.started)
		e.Uvarint(uint64(len(st.ewma)))
		for _, x := range st.ewma {
			e.Float(x)
		}
		e.Uvarint(uint64(len(st.wins)))
		for i := range st.wins {
			tw := &st.wins[i]
			e.Float(tw.n)
			e.Float(tw.mean)
			e.Float(tw.m2)
			e.Uvarint(uint64(tw.epoch))
			pts := tw.pts[tw.head:]
			e.Uvarint(uint64(len(pts)))
			for _, p := range pts {
				e.Varint(p.t)
				e.Float(p.v)
			}
		}
	}
	return e.Result(), nil
}

// Restore adds a snapshot's state for the keys keep accepts.
func (w *tsWorker) Restore(snap []byte, keep func(key []byte) bool) error {
	d := window.NewDecoder(snap)
	if !d.Prefix([]byte(tsMagic)) {
		return fmt.Errorf("timeseries %s: restore: not a snapshot of a timeseries step", w.s.StepName)
	}
	v := d.Uvarint()
	if v != 1 && v != 2 {
		return fmt.Errorf("timeseries %s: restore: snapshot format version %d; this wsp reads versions 1 and 2", w.s.StepName, v)
	}
	want := window.NewEncoder(nil)
	w.putSettings(want)
	if !d.Prefix(want.Result()) {
		return fmt.Errorf("timeseries %s: restore: the snapshot was taken with other outputs: start with --reset-state %s to drop its state", w.s.StepName, w.s.StepName)
	}
	if v >= 2 { // (format 1 did not record the field)
		if f := string(d.Bytes()); !d.Failed() && f != w.s.Field {
			return fmt.Errorf("timeseries %s: restore: the stored state was built from field %q and the step reads %q: start with --reset-state %s to drop it",
				w.s.StepName, f, w.s.Field, w.s.StepName)
		}
	}
	for range d.Count(1) {
		k := d.Bytes()
		st := &tsState{sum: d.Float(), comp: d.Float(), started: d.Bool()}
		for range d.Count(8) {
			st.ewma = append(st.ewma, d.Float())
		}
		for range d.Count(1) {
			tw := trailing{n: d.Float(), mean: d.Float(), m2: d.Float(), epoch: int(d.Uvarint())}
			for range d.Count(2) {
				tw.pts = append(tw.pts, tsPoint{t: d.Varint(), v: d.Float()})
			}
			st.wins = append(st.wins, tw)
		}
		if keep == nil || keep(k) {
			w.keys[string(k)] = st
		}
	}
	if err := d.Err(); err != nil {
		return fmt.Errorf("timeseries %s: restore: %w", w.s.StepName, err)
	}
	return nil
}
