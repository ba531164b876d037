package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/window"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// # The keyed stage
//
//	sequencer ──route by key group──▶ keyed worker × N ──▶ writers
//
// A pipeline with a window has a keyed stage after its stateless steps
// (Config.Steps). The sequencer, which sees input batches in input order,
// does three things per batch for it:
//
//   - updates the watermark tracker with the batch's largest event time per
//     input partition, and computes the watermark after the batch;
//   - splits the batch by key group (window.KeyGroup) into one sub-batch
//     per keyed worker; worker i owns the contiguous groups
//     window.GroupRange(i, N, MaxParallelism);
//   - sends each keyed worker its sub-batch (or, when it has none but the
//     watermark moved, the watermark alone).
//
// A keyed worker (one goroutine per worker) owns a KeyedWorker (the window
// operator and its state) and one instance of each step after the window.
// For each message it adds the records under the watermark as it was before
// the batch, then advances to the new watermark, which fires windows; the
// results run through the steps after the window and go to the writers.
//
// Invariants:
//   - Every key is owned by exactly one keyed worker, which sees its records
//     in input order: per-key order holds and the state of a key is touched
//     by one goroutine.
//   - Every keyed worker sees the same sequence of watermarks, computed
//     from the data in input order, so with the idle timeout off a run over
//     the same data and batch boundaries gives the same results for any
//     number of workers.
//   - An input batch is acknowledged once its records are absorbed into
//     window state (or written to the error or late output), not when the
//     windows fire: until checkpoints exist, a crash loses open windows.
//   - The end of a bounded input raises the watermark to the maximum, so
//     every window fires before the writers close. A stop by signal does not
//     fire open windows (their results would be partial).

// Keyed configures the keyed stage. Zero values take the documented defaults.
type Keyed struct {
	// Chain is the stage's steps in pipeline order, the first a keyed step:
	// keyed steps (windows, time-series operators) and stateless steps
	// between and after them, all run by the keyed worker that owns the
	// record's key (they share the key partitioning: a later keyed step
	// keys by the same key). Their ports are in Config.PortOutputs after
	// those of Config.Steps.
	Chain []ChainStep
	// OutOfOrder is the bounded out-of-orderness in milliseconds (>= 0).
	OutOfOrder int64
	// IdleTimeout lets an input partition without records for that long
	// stop holding the watermark back; 0 (the default) never.
	IdleTimeout time.Duration
	// Tick is how often the watermark is recomputed without data (for the
	// idle timeout). Default 200 ms.
	Tick time.Duration
	// MaxParallelism is the number of key groups. Default 128.
	MaxParallelism int
	// Now is the processing-time clock; tests inject one. Default time.Now.
	Now func() time.Time
	// ProcessingTime: a step of the chain has processing-time windows
	// (it implements ProcTimer); every Tick, the keyed workers get the
	// clock's time.
	ProcessingTime bool
	// NoEventTime: no step of the chain needs an event time (processing-
	// time windows only), so records without one are accepted.
	NoEventTime bool
}

// ChainStep is one step of the keyed stage: exactly one of Keyed and Step.
type ChainStep struct {
	Keyed KeyedStep
	Step  Step
}

func (c ChainStep) named() namedStep {
	if c.Keyed != nil {
		return c.Keyed
	}
	return c.Step
}

// chainWorker is a keyed worker's instance of a ChainStep.
type chainWorker struct {
	kw KeyedWorker
	sw StepWorker
}

func (c chainWorker) close(ctx context.Context) {
	if c.kw != nil {
		_ = c.kw.Close(ctx)
	}
	if c.sw != nil {
		_ = c.sw.Close(ctx)
	}
}

// KeyedStep is a stateful step over keyed, timestamped records.
type KeyedStep interface {
	Name() string
	// Ports are named output ports (such as "late"), as for Step.
	Ports() []string
	NewWorker(ctx context.Context) (KeyedWorker, error)
}

// ProcTimer is a KeyedWorker with processing-time windows: AdvanceProc
// fires what ends by now (unix ms), as Advance does for event time.
type ProcTimer interface {
	AdvanceProc(ctx context.Context, now int64, res *plugin.Result) (done bool, err error)
}

// KeyedWorker is one keyed worker's share of a KeyedStep: the state of the
// key groups the worker owns. It is used by one goroutine.
type KeyedWorker interface {
	// Add absorbs the records of b, each with a key and an event time.
	// Results it emits at once (late firings) go to res.Ports[0], records
	// for named ports to res.Ports[i], rejected records to res.Failed,
	// records counted and dropped (late without a late output, or in no
	// window) to res.Dropped.
	Add(ctx context.Context, b *record.Batch, res *plugin.Result) error
	// Advance moves the watermark to wm and puts what fires in res.Ports[0].
	// It may stop early to keep batches small (done false): the engine then
	// sends res on and calls it again with the same wm and a fresh res.
	Advance(ctx context.Context, wm int64, res *plugin.Result) (done bool, err error)
	Close(ctx context.Context) error
}

func (k *Keyed) validate(workers int) error {
	if len(k.Chain) == 0 || k.Chain[0].Keyed == nil {
		return fmt.Errorf("engine: the keyed stage must start with a keyed step")
	}
	for i, c := range k.Chain {
		if (c.Keyed == nil) == (c.Step == nil) {
			return fmt.Errorf("engine: keyed stage step %d: set exactly one of Keyed and Step", i)
		}
	}
	if k.MaxParallelism == 0 {
		k.MaxParallelism = window.DefaultMaxParallelism
	}
	if err := window.ValidateParallelism(workers, k.MaxParallelism); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if k.OutOfOrder < 0 {
		return fmt.Errorf("engine: out-of-orderness %d ms is negative", k.OutOfOrder)
	}
	if k.Tick <= 0 {
		k.Tick = 200 * time.Millisecond
	}
	if k.Now == nil {
		k.Now = time.Now
	}
	return nil
}

// keyedMsg is one batch's share for one keyed worker.
type keyedMsg struct {
	b       *record.Batch // nil: a watermark only
	wm      int64         // the watermark after the batch
	t       *tracker      // the input batch's tracker (nil with b == nil)
	proc    int64         // > 0: a processing-time tick (unix ms)
	barrier uint64        // > 0: snapshot the state for this checkpoint
}

// keyedStage is the sequencer's side of the stage.
type keyedStage struct {
	cfg     *Keyed
	wmt     window.Tracker
	wm      int64
	chans   []chan keyedMsg
	base    int // index of the keyed step in Metrics.Steps and engine.ports
	workers int
}

func newKeyedStage(cfg *Keyed, workers, base, depth int) *keyedStage {
	k := &keyedStage{cfg: cfg, wm: window.NoWatermark, base: base, workers: workers}
	k.wmt = window.Tracker{OutOfOrder: cfg.OutOfOrder, IdleTimeout: cfg.IdleTimeout, Now: cfg.Now}
	for range workers {
		k.chans = append(k.chans, make(chan keyedMsg, depth))
	}
	return k
}

// route splits b by owner and returns the sub-batches (nil for workers
// without records) and the records that cannot enter the stage.
func (k *keyedStage) route(b *record.Batch) (subs []*record.Batch, bad []*record.Record, reasons []string) {
	subs = make([]*record.Batch, k.workers)
	maxT := int64(window.NoWatermark)
	anyTime := false
	for i := range b.Records {
		r := &b.Records[i]
		if r.Flags&record.HasKey == 0 || r.Flags&record.HasTime == 0 && !k.cfg.NoEventTime {
			bad = append(bad, r)
			reasons = append(reasons, missingReason(r.Flags))
			continue
		}
		if r.Flags&record.HasTime != 0 && (!anyTime || r.Time > maxT) {
			maxT, anyTime = r.Time, true
		}
		w := 0
		if k.workers > 1 {
			w = window.WorkerOf(window.KeyGroup(r.Key, k.cfg.MaxParallelism), k.cfg.MaxParallelism, k.workers)
		}
		s := subs[w]
		if s == nil {
			s = &record.Batch{Source: b.Source, Records: getRecords(len(b.Records)/k.workers + 1)}
			subs[w] = s
		}
		s.Records = append(s.Records, *r)
	}
	if anyTime {
		k.wmt.Observe(b.Source.Partition, maxT)
	}
	return subs, bad, reasons
}

func missingReason(f record.Flags) string {
	switch {
	case f&record.HasKey == 0 && f&record.HasTime == 0:
		return "the record has no key and no event time: add key and event_time steps before this keyed step"
	case f&record.HasKey == 0:
		return "the record has no key: add a key step before this keyed step"
	default:
		return "the record has no event time: add an event_time step before this keyed step"
	}
}

// advance recomputes the watermark; it returns true when it moved.
func (k *keyedStage) advance() bool {
	w := k.wmt.Watermark()
	if w > k.wm {
		k.wm = w
		return true
	}
	return false
}

// broadcast sends the current watermark to every worker without a batch.
func (k *keyedStage) broadcast(except []*record.Batch) {
	for i, c := range k.chans {
		if except != nil && except[i] != nil {
			continue
		}
		c <- keyedMsg{wm: k.wm}
	}
}

// finish sends the end-of-input watermark, runs final (the last
// checkpoint, while the workers still listen) and closes the workers'
// queues.
func (k *keyedStage) finish(ended bool, final func()) {
	if ended {
		k.wm = window.EndOfTime
		k.broadcast(nil)
	}
	final()
	for _, c := range k.chans {
		close(c)
	}
}

// dispatchKeyed routes a job's main batch into the keyed stage. It returns
// the number of keyed messages that carry the job's tracker, and adds a
// dest for the records that cannot enter.
func (e *engine) dispatchKeyed(j *job, b *record.Batch) []*record.Batch {
	k := e.keyed
	subs, bad, reasons := k.route(b)
	if len(bad) > 0 {
		errs := &record.Batch{Source: b.Source}
		for i, r := range bad {
			errs.Records = append(errs.Records, failedRecord(b.Source, r, e.cfg.Keyed.Chain[0].Keyed.Name(), reasons[i]))
		}
		e.m.Steps[k.base].In.Add(int64(len(bad)))
		e.m.Steps[k.base].Failed.Add(int64(len(bad)))
		j.dests = append(j.dests, dest{out: 1, b: errs})
	}
	return subs
}

// keyedWorker is the goroutine of keyed worker i; ws are its instances of
// the chain's steps.
func (e *engine) keyedWorker(ctx context.Context, i int, ws []chainWorker) {
	k := e.keyed
	var wm int64 = window.NoWatermark
	for msg := range k.chans[i] {
		if msg.barrier != 0 {
			e.ck.snapshot(i, ws)
			continue
		}
		if msg.b != nil {
			dests := e.flow(ctx, i, ws, 0, msg.b, nil)
			// The input batch's share is absorbed: pass what must still be
			// written to the writers under its tracker, then release ours.
			msg.t.add(len(dests))
			for _, d := range dests {
				e.chans[d.out] <- write{b: d.b, t: msg.t}
			}
			msg.t.done(nil)
			putRecords(msg.b.Records) // nothing refers to the sub-batch now
		}
		if msg.proc > 0 {
			e.advanceChain(ctx, i, ws, func(c chainWorker, res *plugin.Result) (bool, error) {
				if pt, ok := c.kw.(ProcTimer); ok {
					return pt.AdvanceProc(ctx, msg.proc, res)
				}
				return true, nil
			})
		}
		if msg.wm <= wm {
			continue
		}
		wm = msg.wm
		e.advanceChain(ctx, i, ws, func(c chainWorker, res *plugin.Result) (bool, error) { return c.kw.Advance(ctx, wm, res) })
	}
}

// advanceChain runs advance on each keyed step of the chain in order; what
// fires flows through the rest of the chain (a later keyed step adds it
// before it advances itself, so results are never late for it).
func (e *engine) advanceChain(ctx context.Context, wi int, ws []chainWorker, advance func(chainWorker, *plugin.Result) (bool, error)) {
	k := e.keyed
	noAck := func(n int) *tracker {
		return &tracker{pending: n, ack: func(context.Context, error) error { return nil }, release: func() {}, onAckErr: e.ackFailed}
	}
	for ci, c := range ws {
		if c.kw == nil {
			continue
		}
		st := e.cfg.Keyed.Chain[ci].Keyed
		for done := false; !done; {
			res := newResult(len(st.Ports())+1, record.Source{Input: st.Name()})
			var err error
			if done, err = advance(c, res); err != nil {
				e.cfg.Logger.Error("keyed step advance failed", "step", st.Name(), "error", err)
				break
			}
			next, dests := e.keyedOutputs(k.base+ci, nil, res, nil)
			if next.Len() > 0 {
				dests = e.flow(ctx, wi, ws, ci+1, next, dests)
			}
			if len(dests) > 0 {
				t := noAck(len(dests))
				for _, d := range dests {
					e.chans[d.out] <- write{b: d.b, t: t}
				}
			}
		}
	}
}

// flow runs cur through the chain from step `from` on and returns the
// dests of everything that comes out: the main output, the error output,
// ports.
func (e *engine) flow(ctx context.Context, wi int, ws []chainWorker, from int, cur *record.Batch, dests []dest) []dest {
	k := e.keyed
	for ci := from; ci < len(ws) && cur != nil && cur.Len() > 0; ci++ {
		si := k.base + ci
		c := ws[ci]
		if c.sw != nil {
			cur, dests = e.runStep(ctx, c.sw, si, cur, dests)
			continue
		}
		st := e.cfg.Keyed.Chain[ci].Keyed
		if ci > 0 {
			cur, dests = e.ownKeys(wi, si, st.Name(), cur, dests)
		}
		e.m.Steps[si].In.Add(int64(cur.Len()))
		res := newResult(len(st.Ports())+1, cur.Source)
		if err := c.kw.Add(ctx, cur, res); err != nil {
			e.m.Steps[si].Failed.Add(int64(cur.Len()))
			errs := &record.Batch{Source: cur.Source}
			for ri := range cur.Records {
				r := &cur.Records[ri]
				errs.Records = append(errs.Records, failedRecord(cur.Source, r, st.Name(), err.Error()))
			}
			return append(dests, dest{out: 1, b: errs})
		}
		cur, dests = e.keyedOutputs(si, cur, res, dests)
	}
	if cur != nil && cur.Len() > 0 {
		dests = append(dests, dest{out: 0, b: cur})
	}
	return dests
}

// ownKeys keeps the records of cur that keyed worker wi owns, for a keyed
// step after the first: records come to it from the steps before it on the
// same worker, without a shuffle, so a record whose key a step changed (a
// Wasm step may emit any key) would reach state its worker does not own.
// Those, and records without a key, go to the error output, counted as
// failed by step si.
func (e *engine) ownKeys(wi, si int, name string, cur *record.Batch, dests []dest) (*record.Batch, []dest) {
	k := e.keyed
	bad := func(r *record.Record) string {
		if r.Flags&record.HasKey == 0 {
			return "the record has no key: a keyed step after another needs the key it was routed by"
		}
		if k.workers > 1 && window.WorkerOf(window.KeyGroup(r.Key, k.cfg.MaxParallelism), k.cfg.MaxParallelism, k.workers) != wi {
			return "the record's key was changed by a step after the first keyed step: re-keying needs a second shuffle, which this version does not do"
		}
		return ""
	}
	first := -1
	for i := range cur.Records {
		if bad(&cur.Records[i]) != "" {
			first = i
			break
		}
	}
	if first < 0 {
		return cur, dests // the common case: one pass, nothing copied
	}
	keep := &record.Batch{Source: cur.Source, Records: append(make([]record.Record, 0, cur.Len()), cur.Records[:first]...)}
	errs := &record.Batch{Source: cur.Source}
	for i := first; i < len(cur.Records); i++ {
		r := &cur.Records[i]
		if why := bad(r); why != "" {
			errs.Records = append(errs.Records, failedRecord(cur.Source, r, name, why))
			continue
		}
		keep.Records = append(keep.Records, *r)
	}
	n := errs.Len()
	e.m.Steps[si].In.Add(int64(n))
	e.m.Steps[si].Failed.Add(int64(n))
	return keep, append(dests, dest{out: 1, b: errs})
}

// failedRecord is the error-output record for r, which step failed.
func failedRecord(src record.Source, r *record.Record, step, why string) record.Record {
	return record.Record{Value: errorLine(nil, src, r, step, why), Pos: r.Pos, Key: r.Key, Time: r.Time, Flags: r.Flags}
}

// keyedOutputs counts a keyed step's result and turns its failures
// (indexes into in, or into res.Failing when set) and ports into dests; it
// returns the main output.
func (e *engine) keyedOutputs(si int, in *record.Batch, res *plugin.Result, dests []dest) (*record.Batch, []dest) {
	sm := &e.m.Steps[si]
	name := e.steps[si].Name()
	sm.Failed.Add(int64(len(res.Failed)))
	sm.Dropped.Add(int64(res.Dropped))
	failing := in
	if res.Failing != nil {
		failing = res.Failing // fired timers, say
	}
	if len(res.Failed) > 0 && failing != nil {
		errs := &record.Batch{Source: failing.Source}
		for _, f := range res.Failed {
			r := &failing.Records[f.Index]
			errs.Records = append(errs.Records, failedRecord(failing.Source, r, name, f.Reason))
		}
		dests = append(dests, dest{out: 1, b: errs})
	}
	for p := 1; p < len(res.Ports); p++ {
		pb := &res.Ports[p]
		if pb.Len() == 0 {
			continue
		}
		oi := e.ports[si][p-1]
		if oi < 0 {
			sm.Dropped.Add(int64(pb.Len()))
			continue
		}
		sm.Routed.Add(int64(pb.Len()))
		dests = append(dests, dest{out: oi, b: pb})
	}
	out := &res.Ports[0]
	sm.Out.Add(int64(out.Len()))
	return out, dests
}

func newResult(ports int, src record.Source) *plugin.Result {
	res := &plugin.Result{Ports: make([]record.Batch, ports)}
	for i := range res.Ports {
		res.Ports[i].Source = src
	}
	return res
}

// recordPool recycles the record arrays of keyed sub-batches: the keyed
// worker copies what it keeps (state, late records by value), so a
// sub-batch's array is free once Add returned and its failures are written
// out as error lines.
var recordPool sync.Pool

func getRecords(n int) []record.Record {
	if p, ok := recordPool.Get().(*[]record.Record); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]record.Record, 0, max(n, 1024))
}

func putRecords(rs []record.Record) {
	clear(rs)
	rs = rs[:0]
	recordPool.Put(&rs)
}

// add registers n more writes under t; the caller holds one unit.
func (t *tracker) add(n int) {
	t.mu.Lock()
	t.pending += n
	t.mu.Unlock()
}

// startKeyed starts the keyed workers; wait returns when all have ended.
func (e *engine) startKeyed(ctx context.Context, chains [][]chainWorker) (wait func()) {
	var wg sync.WaitGroup
	for i := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.keyedWorker(ctx, i, chains[i])
		}()
	}
	return wg.Wait
}
