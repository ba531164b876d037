package ops

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/window"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// wasmAgg runs a window step's Wasm aggregate (hostabi/ABI.md,
// "Aggregates"). The window operator keeps one AccBox per window and calls
// touch for every record it adds; wasmAgg gathers the batch's records per
// box ("group") and folds them in with one wsp_agg_add call at the end of
// the batch. Every result emitted meanwhile waits (pending) until one
// wsp_agg_finish call gives the fields to splice into it.
//
// A result emitted while a batch is being added (an early or a late one)
// must not see the batch's later records: it gets a group of its own, the
// box's accumulator before the batch plus the records up to the result,
// folded in by the same call.
//
// Failures lose nothing and spoil as little as possible: when a call fails,
// its groups are split in halves and retried, down to the groups that fail
// alone. Such a window's box is marked (AccBox.Err): its records stay
// counted in the window's built-in aggregates, the module gets no more of
// them, and its results carry "aggregate_error" with the reason instead of
// the module's fields. A failed finish marks only the results concerned.
//
// With a fixed-size module (AccSize S > 0) the accumulators travel back to
// back (AddFixed, MergeFixed, FinishFixed); otherwise as one slice each.
type wasmAgg struct {
	in     *plugin.Instance
	size   int // the module's fixed accumulator size; 0: variable
	cur    *record.Record
	adding bool // in the worker's Add: results emitted now get snapshots

	// The batch's groups: boxes[g], and per touched record its group and
	// the record. A box's Tag is base+g while it is in this batch.
	base   int64
	boxes  []*window.AccBox
	counts []int
	recG   []int32
	recP   []*record.Record

	// Staging of one add call: the records in group order, the groups'
	// ends in it, their accumulators, and who gets each result.
	grouped   []record.Record
	ends      []int
	rangeEnds []int    // addRange's scratch
	accs      []byte   // fixed: the groups' accumulators back to back
	vaccs     [][]byte // variable: one per group
	targets   []aggTarget
	zero      []byte

	pending []pendingResult
	fin     []byte   // fixed: the accumulators to finish
	vfin    [][]byte // variable
	finIdx  []int    // the pending results being finished
}

// aggTarget is who gets a group's new accumulator: a box, or a snapshot
// (pending[snap]) for a result emitted during the batch.
type aggTarget struct {
	box  *window.AccBox
	snap int // index in pending, or -1
}

type pendingResult struct {
	out *record.Batch
	idx int
	box *window.AccBox
	// A result emitted during Add: its group's accumulator before the
	// batch (base), and how many of the group's records it saw.
	snap     bool
	snapBase []byte
	snapG    int
	snapN    int
	acc      []byte // with snap: the accumulator it gets, once added
	err      string // with snap: why that failed
}

// failed is why p gets no aggregate fields ("" if it does): a snapshot
// that could not be added, or (otherwise) a box the aggregate gave up on.
func (p *pendingResult) failed() string {
	if p.snap {
		if p.err == "" && p.acc == nil && p.box.Err != "" {
			return p.box.Err // failed before the snapshot was added
		}
		return p.err
	}
	return p.box.Err
}

// wasmMerges counts Wasm accumulator merges, wasmAggFailures the windows
// whose aggregate failed (the tests check them).
var wasmMerges, wasmAggFailures atomic.Int64

func newWasmAgg(in *plugin.Instance, size int) *wasmAgg {
	return &wasmAgg{in: in, size: size, base: 1 << 32, zero: make([]byte, size)}
}

// touch notes that the record being added (cur) goes into b's window.
func (a *wasmAgg) touch(b *window.AccBox) {
	if b.Err != "" {
		return // the aggregate gave up on this window
	}
	g := int(b.Tag - a.base)
	if b.Tag < a.base {
		g = len(a.boxes)
		b.Tag = a.base + int64(g)
		a.boxes = append(a.boxes, b)
		a.counts = append(a.counts, 0)
	}
	a.counts[g]++
	a.recG = append(a.recG, int32(g))
	a.recP = append(a.recP, a.cur)
}

// pend registers a result whose aggregate fields finish will add. During
// Add the result takes a snapshot: the box's accumulator now, plus the
// records of the batch gathered for it so far (later records of the batch
// may go to the same window, and must not show in this result).
func (a *wasmAgg) pend(out *record.Batch, idx int, b *window.AccBox) {
	p := pendingResult{out: out, idx: idx, box: b}
	if a.adding && b.Err == "" {
		p.snap = true
		if b.Tag >= a.base {
			g := int(b.Tag - a.base)
			p.snapG, p.snapN = g, a.counts[g]
			p.snapBase = append([]byte(nil), b.Acc...)
		} else {
			p.acc = append([]byte{}, b.Acc...) // nothing of this batch yet
		}
	}
	a.pending = append(a.pending, p)
}

// merge folds src's accumulator into dst's at once (sessions merge rarely:
// when a record bridges two). The records gathered so far are folded in
// first, so both accumulators are current.
func (a *wasmAgg) merge(dst, src *window.AccBox) {
	wasmMerges.Add(1)
	ctx := context.Background()
	a.add(ctx)
	switch {
	case dst.Err != "":
	case src.Err != "":
		a.fail(dst, src.Err)
	case len(src.Acc) == 0:
	default:
		var err error
		if a.size > 0 {
			if len(dst.Acc) == 0 {
				dst.Acc = append(dst.Acc, a.fixedAcc(nil)...) // merged into in place
			}
			err = a.in.MergeFixed(ctx, dst.Acc, src.Acc, nil)
		} else {
			var accs [][]byte
			accs, err = a.in.CallAggregate(ctx, hostabi.AggMerge, []plugin.AggGroup{{Acc: dst.Acc, Others: [][]byte{src.Acc}}})
			if err == nil {
				dst.Acc = append(dst.Acc[:0], accs[0]...)
			}
		}
		if err != nil {
			a.fail(dst, "merging two sessions: "+err.Error())
		}
	}
}

func (a *wasmAgg) fail(b *window.AccBox, why string) {
	if b.Err == "" {
		wasmAggFailures.Add(1)
		b.Err = why
	}
}

// add folds the records gathered since the last add into their windows'
// accumulators (and those of the results emitted meanwhile), and starts a
// new batch of groups.
func (a *wasmAgg) add(ctx context.Context) {
	if len(a.boxes) == 0 {
		return
	}
	// The records in group order (counting sort; order within a group kept).
	a.ends = a.ends[:0]
	end := 0
	for _, c := range a.counts {
		end += c
		a.ends = append(a.ends, end)
	}
	if cap(a.grouped) < end {
		a.grouped = make([]record.Record, end, 2*end)
	}
	a.grouped = a.grouped[:end]
	next := a.counts // reused as the next free place of each group
	for g := range next {
		next[g] = a.ends[g] - next[g]
	}
	for i, g := range a.recG {
		a.grouped[next[g]] = *a.recP[i]
		next[g]++
	}
	// Accumulators and targets: the boxes', then the snapshots'.
	a.targets = a.targets[:0]
	a.accs, a.vaccs = a.accs[:0], a.vaccs[:0]
	for _, b := range a.boxes {
		a.stage(b.Acc)
		a.targets = append(a.targets, aggTarget{box: b, snap: -1})
	}
	for i := range a.pending {
		p := &a.pending[i]
		if !p.snap || p.acc != nil || p.err != "" {
			continue
		}
		start := 0
		if p.snapG > 0 {
			start = a.ends[p.snapG-1]
		}
		a.grouped = append(a.grouped, a.grouped[start:start+p.snapN]...)
		a.ends = append(a.ends, len(a.grouped))
		a.stage(p.snapBase)
		a.targets = append(a.targets, aggTarget{snap: i})
	}
	a.addRange(ctx, 0, len(a.targets))
	// Next batch of groups.
	a.base += 1 << 32
	clear(a.boxes)
	a.boxes, a.counts = a.boxes[:0], a.counts[:0]
	clear(a.recP)
	a.recG, a.recP = a.recG[:0], a.recP[:0]
	clear(a.grouped)
}

// fixedAcc is acc as a fixed-size module takes it: a window's empty
// accumulator (none yet) is S zero bytes.
func (a *wasmAgg) fixedAcc(acc []byte) []byte {
	if len(acc) == 0 {
		return a.zero
	}
	return acc
}

func (a *wasmAgg) stage(acc []byte) {
	if a.size > 0 {
		a.accs = append(a.accs, a.fixedAcc(acc)...)
	} else {
		a.vaccs = append(a.vaccs, acc)
	}
}

// addRange runs the add call for groups [lo, hi) of the staging, and on
// failure splits them until the failing groups are alone.
func (a *wasmAgg) addRange(ctx context.Context, lo, hi int) {
	if lo == hi {
		return
	}
	rlo := 0
	if lo > 0 {
		rlo = a.ends[lo-1]
	}
	recs := a.grouped[rlo:a.ends[hi-1]]
	// Reused: a frame needs its ends only until its call returns (the
	// halves after a failure make their own).
	a.rangeEnds = a.rangeEnds[:0]
	for i := lo; i < hi; i++ {
		a.rangeEnds = append(a.rangeEnds, a.ends[i]-rlo)
	}
	ends := a.rangeEnds
	var err error
	if a.size > 0 {
		accs := a.accs[lo*a.size : hi*a.size]
		if err = a.in.AddFixed(ctx, accs, recs, ends); err == nil {
			for i, t := range a.targets[lo:hi] {
				a.deliver(t, accs[i*a.size:(i+1)*a.size])
			}
		}
	} else {
		groups := make([]plugin.AggGroup, hi-lo)
		for i := range groups {
			from := 0
			if i > 0 {
				from = ends[i-1]
			}
			groups[i] = plugin.AggGroup{Acc: a.vaccs[lo+i], Records: recs[from:ends[i]]}
		}
		var out [][]byte
		if out, err = a.in.CallAggregate(ctx, hostabi.AggAdd, groups); err == nil {
			for i, t := range a.targets[lo:hi] {
				a.deliver(t, out[i])
			}
		}
	}
	if err == nil {
		return
	}
	if hi-lo == 1 {
		t := a.targets[lo]
		if t.snap >= 0 {
			a.pending[t.snap].err = err.Error()
		} else {
			a.fail(t.box, err.Error())
		}
		return
	}
	mid := (lo + hi) / 2
	a.addRange(ctx, lo, mid)
	a.addRange(ctx, mid, hi)
}

func (a *wasmAgg) deliver(t aggTarget, acc []byte) {
	if t.snap >= 0 {
		a.pending[t.snap].acc = append([]byte(nil), acc...)
		return
	}
	t.box.Acc = append(t.box.Acc[:0], acc...)
}

// finish completes the pending results with the aggregate's fields, or
// with "aggregate_error" where the aggregate failed, so no result is lost.
func (a *wasmAgg) finish(ctx context.Context) {
	if len(a.pending) == 0 {
		return
	}
	a.fin, a.vfin, a.finIdx = a.fin[:0], a.vfin[:0], a.finIdx[:0]
	for i := range a.pending {
		p := &a.pending[i]
		acc := p.box.Acc
		if p.snap {
			acc = p.acc
		}
		if p.failed() != "" {
			continue
		}
		a.finIdx = append(a.finIdx, i)
		if a.size > 0 {
			a.fin = append(a.fin, a.fixedAcc(acc)...)
		} else {
			a.vfin = append(a.vfin, acc)
		}
	}
	a.finishRange(ctx, 0, len(a.finIdx))
	for i := range a.pending {
		if p := &a.pending[i]; p.failed() != "" {
			a.splice(p, nil, p.failed())
		}
	}
	clear(a.pending)
	a.pending = a.pending[:0]
	clear(a.vfin)
}

func (a *wasmAgg) finishRange(ctx context.Context, lo, hi int) {
	if lo == hi {
		return
	}
	var objs [][]byte
	var err error
	if a.size > 0 {
		objs, err = a.in.FinishFixed(ctx, a.fin[lo*a.size:hi*a.size])
	} else {
		groups := make([]plugin.AggGroup, hi-lo)
		for i := range groups {
			groups[i].Acc = a.vfin[lo+i]
		}
		objs, err = a.in.CallAggregate(ctx, hostabi.AggFinish, groups)
	}
	switch {
	case err == nil:
		for i, k := range a.finIdx[lo:hi] {
			a.splice(&a.pending[k], objs[i], "")
		}
	case hi-lo == 1:
		wasmAggFailures.Add(1)
		a.splice(&a.pending[a.finIdx[lo]], nil, "finishing the window: "+err.Error())
	default:
		mid := (lo + hi) / 2
		a.finishRange(ctx, lo, mid)
		a.finishRange(ctx, mid, hi)
	}
}

// splice adds the fields of obj (the text of a JSON object), or an
// "aggregate_error" with why, to the result p.
func (a *wasmAgg) splice(p *pendingResult, obj []byte, why string) {
	r := &p.out.Records[p.idx]
	v := r.Value
	var extra []byte
	if why == "" {
		if o := bytes.TrimSpace(obj); len(o) >= 2 && o[0] == '{' && o[len(o)-1] == '}' {
			extra = bytes.TrimSpace(o[1 : len(o)-1])
		} else {
			why = fmt.Sprintf("the aggregate's result is not a JSON object: %q", o)
		}
	}
	if why != "" {
		extra = appendJSONString([]byte(`"aggregate_error":`), why)
	}
	if len(extra) == 0 {
		return
	}
	start := len(p.out.Arena)
	buf := append(p.out.Arena, v[:len(v)-1]...)
	buf = append(buf, ',')
	buf = append(buf, extra...)
	buf = append(buf, '}')
	p.out.Arena = buf
	r.Value = buf[start:len(buf):len(buf)]
}
