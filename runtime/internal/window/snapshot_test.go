package window

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// snapOp makes an aligned operator with every kind of accumulator: two
// fields with Moments, first/last, a distinct count and quantiles, early
// results, and a Touch that counts records in the window's AccBox.
func snapOp(sliding bool, lateness int64) *Operator {
	o := &Operator{Lateness: lateness, Fields: 2, Need: NeedMoments | NeedFirstLast,
		Sketch: []uint8{SketchDistinct | SketchQuantiles, 0}, EveryRecords: 7, Retain: 500}
	if sliding {
		sw := Sliding{Size: 100, Slide: 30}
		o.Assign = sw.Assign
	} else {
		tw := Tumbling{Size: 100}
		o.Assign = func(dst []Window, ts int64) []Window { return append(dst, tw.Assign(ts)) }
	}
	o.Hashes = make([]uint64, 2)
	o.Touch = func(b *AccBox) { b.Acc = append(b.Acc, 'x') }
	return o
}

// resultText renders a result with everything it carries.
func resultText(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %v n=%d u=%v e=%v", r.Key, r.Window, r.N, r.Update, r.Early)
	for f := range r.M {
		m := r.M[f]
		fmt.Fprintf(&b, " [%d %.12g %.12g %.12g %g %g]", m.N, m.Total(), m.Mean, m.M2, m.Min, m.Max)
		fmt.Fprintf(&b, " fl=%+v", r.FL[f])
		if s := r.SK[f]; s != nil {
			fmt.Fprintf(&b, " d=%.0f q=%.6g", s.D.Estimate(), s.Q.Quantile(0.5))
		}
	}
	fmt.Fprintf(&b, " box=%d%s", len(r.Box.Acc), r.Box.Err)
	return b.String()
}

type snapRec struct {
	key  []byte
	ts   int64
	vals []float64
}

func snapData(seed uint64, n, keys int) []snapRec {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []snapRec
	for i := range n {
		ts := int64(i) + rng.Int64N(40) - 20 // out of order by up to 20
		out = append(out, snapRec{key: fmt.Appendf(nil, "k%d", rng.IntN(keys)), ts: ts,
			vals: []float64{float64(rng.IntN(50)), rng.NormFloat64()}})
	}
	return out
}

func feed(o *Operator, r snapRec, emit func(*Result)) {
	o.Hashes[0], o.Hashed = KeyHash(fmt.Appendf(nil, "%g", r.vals[0])), 1
	o.Add(r.key, r.ts, r.vals, 3, emit)
}

// TestOperatorSnapshotRestore: a run stopped at a batch boundary, snapshot
// and restored into new operators (one, or several owning key groups, or
// merged from several snapshots), gives exactly the results of the run
// that never stopped, for tumbling and sliding windows with lateness.
func TestOperatorSnapshotRestore(t *testing.T) {
	const maxPar = 16
	for _, c := range []struct {
		sliding  bool
		lateness int64
		from, to int // workers before and after the snapshot
	}{{false, 0, 1, 1}, {false, 50, 1, 3}, {true, 30, 2, 1}, {true, 0, 3, 2}} {
		t.Run(fmt.Sprintf("sliding=%v lateness=%d %d->%d workers", c.sliding, c.lateness, c.from, c.to), func(t *testing.T) {
			for seed := range uint64(5) {
				data := snapData(seed, 3000, 40)
				cut := 500 + int(seed)*400
				// The reference: one uninterrupted run per worker layout.
				ref := runWorkers(t, data, c.sliding, c.lateness, c.from, maxPar, nil, cut, c.to)
				want := runWorkers(t, data, c.sliding, c.lateness, c.from, maxPar, nil, -1, 0)
				if strings.Join(ref, "\n") != strings.Join(want, "\n") {
					t.Fatalf("seed %d: results after restore differ from an uninterrupted run:\n%s", seed, diffLines(ref, want))
				}
			}
		})
	}
}

// runWorkers runs data through `from` operators (records routed by key
// group), batches of 50 records each followed by an advance to the max
// time seen - 20; at record cut (if >= 0) it snapshots them all and goes
// on with `to` operators restored from the snapshots. It returns every
// result, sorted (workers interleave).
func runWorkers(t *testing.T, data []snapRec, sliding bool, lateness int64, from, maxPar int, _ any, cut, to int) []string {
	t.Helper()
	var got []string
	emit := func(r *Result) { got = append(got, resultText(r)) }
	ops := make([]*Operator, from)
	for i := range ops {
		ops[i] = snapOp(sliding, lateness)
	}
	owner := func(key []byte, workers int) int { return WorkerOf(KeyGroup(key, maxPar), maxPar, workers) }
	maxT := int64(-1 << 62)
	for i := 0; i < len(data); i += 50 {
		if i == cut {
			var snaps [][]byte
			for _, o := range ops {
				s, err := o.Snapshot(nil)
				if err != nil {
					t.Fatal(err)
				}
				snaps = append(snaps, s)
			}
			next := make([]*Operator, to)
			for w := range next {
				next[w] = snapOp(sliding, lateness)
				for _, s := range snaps {
					if err := next[w].Restore(s, func(k []byte) bool { return owner(k, to) == w }); err != nil {
						t.Fatal(err)
					}
				}
			}
			ops = next
		}
		for _, r := range data[i:min(i+50, len(data))] {
			feed(ops[owner(r.key, len(ops))], r, emit)
			maxT = max(maxT, r.ts)
		}
		for _, o := range ops {
			o.Advance(maxT-21, emit)
		}
	}
	for _, o := range ops {
		o.Advance(EndOfTime, emit)
		if o.Open() != 0 {
			t.Fatalf("%d windows left open", o.Open())
		}
	}
	slices.Sort(got)
	return got
}

func diffLines(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at %d:\n got %s\nwant %s", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("%d results, want %d", len(a), len(b))
}

// TestOperatorRestoreRefusals: a snapshot of other settings, another
// format version, or cut-short bytes are refused with a clear error.
func TestOperatorRestoreRefusals(t *testing.T) {
	o := snapOp(false, 0)
	for _, r := range snapData(1, 200, 5) {
		feed(o, r, func(*Result) {})
	}
	snap, err := o.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	other := snapOp(false, 10) // another lateness
	if err := other.Restore(snap, nil); err == nil || !strings.Contains(err.Error(), "other window settings") {
		t.Errorf("other settings: %v", err)
	}
	v2 := append([]byte(nil), snap...)
	v2[4] = 2
	if err := snapOp(false, 0).Restore(v2, nil); err == nil || !strings.Contains(err.Error(), "format version 2") {
		t.Errorf("version: %v", err)
	}
	for _, n := range []int{0, 3, len(snap) / 2, len(snap) - 1} {
		if err := snapOp(false, 0).Restore(snap[:n], nil); err == nil {
			t.Errorf("cut at %d of %d: no error", n, len(snap))
		}
	}
	if err := snapOp(false, 0).Restore(append(snap, 0), nil); err == nil {
		t.Error("trailing bytes accepted")
	}
}

// snapshotter is what every operator offers for checkpoints.
type snapshotter interface {
	Add(key []byte, ts int64, vals []float64, present uint64, emit func(*Result)) Outcome
	AdvanceN(wm int64, max int, emit func(*Result)) bool
	Snapshot(dst []byte) ([]byte, error)
	Restore(snap []byte, keep func(key []byte) bool) error
	Open() int
}

// TestKeyedSnapshotRestore: as TestOperatorSnapshotRestore, for session
// windows (merging, lateness) and global count windows.
func TestKeyedSnapshotRestore(t *testing.T) {
	const maxPar = 16
	touch := func(b *AccBox) { b.Acc = append(b.Acc, 'x') }
	makers := map[string]func() snapshotter{
		"session": func() snapshotter {
			return &SessionOperator{Gap: 25, Lateness: 15, Fields: 2, Need: NeedMoments | NeedFirstLast,
				Sketch: []uint8{SketchDistinct | SketchQuantiles, 0}, Hashes: make([]uint64, 2), Touch: touch,
				MergeBoxes: func(dst, src *AccBox) { dst.Acc = append(dst.Acc, src.Acc...) }}
		},
		"count": func() snapshotter {
			return &CountOperator{Count: 9, Fields: 2, Need: NeedMoments | NeedFirstLast,
				Sketch: []uint8{SketchDistinct | SketchQuantiles, 0}, Hashes: make([]uint64, 2), Touch: touch}
		},
	}
	for name, mk := range makers {
		for _, w := range [][2]int{{1, 1}, {1, 3}, {3, 2}} {
			t.Run(fmt.Sprintf("%s %d->%d workers", name, w[0], w[1]), func(t *testing.T) {
				for seed := range uint64(5) {
					data := snapData(seed, 3000, 40)
					cut := 500 + int(seed)*600 // the last, 2900, leaves restored windows unfinished at the end
					got := runKeyed(t, mk, data, w[0], maxPar, cut, w[1])
					want := runKeyed(t, mk, data, w[0], maxPar, -1, 0)
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Fatalf("seed %d: %s", seed, diffLines(got, want))
					}
				}
			})
		}
	}
	// Refusals.
	o := makers["session"]()
	snap, _ := o.Snapshot(nil)
	if err := makers["count"]().Restore(snap, nil); err == nil || !strings.Contains(err.Error(), "not a snapshot of a global") {
		t.Errorf("a session snapshot into a count window: %v", err)
	}
	if err := (&SessionOperator{Gap: 26, Lateness: 15, Fields: 2}).Restore(snap, nil); err == nil || !strings.Contains(err.Error(), "other window settings") {
		t.Errorf("another gap: %v", err)
	}
}

func runKeyed(t *testing.T, mk func() snapshotter, data []snapRec, from, maxPar, cut, to int) []string {
	t.Helper()
	var got []string
	emit := func(r *Result) { got = append(got, resultText(r)) }
	ops := make([]snapshotter, from)
	for i := range ops {
		ops[i] = mk()
	}
	owner := func(key []byte, workers int) int { return WorkerOf(KeyGroup(key, maxPar), maxPar, workers) }
	setHash := func(o snapshotter, r snapRec) {
		h := KeyHash(fmt.Appendf(nil, "%g", r.vals[0]))
		switch x := o.(type) {
		case *SessionOperator:
			x.Hashes[0], x.Hashed = h, 1
		case *CountOperator:
			x.Hashes[0], x.Hashed = h, 1
		}
	}
	maxT := int64(-1 << 62)
	for i := 0; i < len(data); i += 50 {
		if i == cut {
			var snaps [][]byte
			for _, o := range ops {
				s, err := o.Snapshot(nil)
				if err != nil {
					t.Fatal(err)
				}
				snaps = append(snaps, s)
			}
			next := make([]snapshotter, to)
			for w := range next {
				next[w] = mk()
				for _, s := range snaps {
					if err := next[w].Restore(s, func(k []byte) bool { return owner(k, to) == w }); err != nil {
						t.Fatal(err)
					}
				}
			}
			ops = next
		}
		for _, r := range data[i:min(i+50, len(data))] {
			o := ops[owner(r.key, len(ops))]
			setHash(o, r)
			o.Add(r.key, r.ts, r.vals, 3, emit)
			maxT = max(maxT, r.ts)
		}
		for _, o := range ops {
			for !o.AdvanceN(maxT-21, 0, emit) {
			}
		}
	}
	for _, o := range ops {
		for !o.AdvanceN(EndOfTime, 0, emit) {
		}
		if o.Open() != 0 {
			t.Fatalf("%d windows left open", o.Open())
		}
	}
	slices.Sort(got)
	return got
}

// TestSnapshotLater: the copy taken at the barrier encodes to the same bytes
// as a snapshot taken then, however the operator goes on meanwhile.
func TestSnapshotLater(t *testing.T) {
	tw := Tumbling{Size: 100}
	mk := func() *Operator {
		return &Operator{Assign: func(dst []Window, ts int64) []Window { return append(dst, tw.Assign(ts)) },
			Fields: 1, Lateness: 50}
	}
	o := mk()
	nop := func(*Result) {}
	data := snapData(9, 2000, 50)
	for _, r := range data[:1000] {
		o.Add(r.key, r.ts, r.vals[:1], 1, nop)
	}
	o.Advance(900, nop)
	now, err := o.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	later, err := o.SnapshotLater()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range data[1000:] { // the operator goes on: tables grow, fire, are reused
		o.Add(r.key, r.ts, r.vals[:1], 1, nop)
		o.Advance(r.ts-30, nop)
	}
	got, err := later()
	if err != nil || string(got) != string(now) {
		t.Fatalf("the later encoding differs (%d and %d bytes): %v", len(got), len(now), err)
	}
}
