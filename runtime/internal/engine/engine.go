// Package engine moves batches from an input through steps to outputs.
//
// # Threads and data flow
//
//		reader ──jobs──▶ worker × N ──done──▶ sequencer ──▶ writer per output ──▶ ack
//
//	  - The reader (one goroutine) takes a slot from the in-flight semaphore,
//	    reads a batch, numbers it (seq) and hands it to the workers.
//	  - Each worker owns one instance of every step (a Wasm instance is never
//	    shared) and runs a batch through all steps in order. Steps here are
//	    stateless, so any worker may take any batch.
//	  - The sequencer restores input order (by seq) and hands each batch's
//	    results to the writers: main output, error output, step ports.
//	  - A writer (one goroutine per output) writes batches in order, retrying
//	    a failed write with backoff until it succeeds or the hard stop comes.
//	    When every result of an input batch is written, the input batch is
//	    acknowledged and its slot returned.
//
// # Invariants
//
//  1. An input batch is acknowledged only after every record derived from it
//     was accepted by an output, or counted as dropped (at-least-once).
//  2. Output order equals input order, so records keep their order per key
//     (and per input partition).
//  3. At most MaxInFlight input batches exist between Read and ack; every
//     queue is bounded, so a slow output slows the input (backpressure) and
//     memory stays bounded by MaxInFlight batches.
//  4. Every input record ends up in an output, the error output, or a
//     dropped counter: per step, in = emitted inputs + failed + dropped.
//
// A pipeline with a window adds a keyed stage after the stateless steps: a
// shuffle by key group to keyed workers that own the window state (keyed.go).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/connect"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// Step is a pipeline step. It makes one StepWorker per engine worker; what
// a step holds beyond its workers (a loaded module) is released by whoever
// built it, after Run returns.
type Step interface {
	Name() string
	// Ports are the step's named output ports; Result.Ports[i] is Ports()[i-1].
	Ports() []string
	NewWorker(ctx context.Context) (StepWorker, error)
}

// StepWorker processes batches for one worker goroutine; never shared.
type StepWorker interface {
	// Process returns the step's results for in. An error fails the whole
	// batch: its records go to the error output with the error as reason.
	// The returned Result must not be reused by the worker afterwards: it
	// travels to the outputs.
	Process(ctx context.Context, in *record.Batch) (*plugin.Result, error)
	Close(ctx context.Context) error
}

// Output is a named destination.
type Output struct {
	Name string
	Out  connect.Output
}

// Config is everything Run needs. Zero values take the documented defaults.
type Config struct {
	Input       connect.Input
	InputName   string // default "input"
	Steps       []Step
	Output      Output
	ErrorOutput Output
	// Keyed, when set, is the keyed stage (a window) after Steps.
	Keyed *Keyed
	// PortOutputs[i][port] is the output of step i's named port; with a
	// keyed stage, i counts Steps, then Keyed.Chain.
	PortOutputs []map[string]Output
	// Workers is the number of worker goroutines. Default 1.
	Workers int
	// MaxInFlight bounds input batches between read and ack. Default 4 × Workers.
	MaxInFlight int
	// RetryInitial and RetryMax bound the backoff between output retries.
	// Defaults 100 ms and 10 s.
	RetryInitial, RetryMax time.Duration
	// Sleep waits between retries; tests inject a fake. Default: a timer.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
	// Metrics receives the counters; default a fresh set.
	Metrics *Metrics
	// Checkpoints, when set (with a keyed stage), makes the keyed stage's
	// state durable and restores it at start (see checkpoint.go).
	Checkpoints *Checkpoints
}

func (c *Config) validate() error {
	if c.Input == nil || c.Output.Out == nil || c.ErrorOutput.Out == nil {
		return errors.New("engine: input, output and error output are required")
	}
	if c.InputName == "" {
		c.InputName = "input"
	}
	if c.Output.Name == "" {
		c.Output.Name = "output"
	}
	if c.ErrorOutput.Name == "" {
		c.ErrorOutput.Name = "error_output"
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4 * c.Workers
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 100 * time.Millisecond
	}
	if c.RetryMax < c.RetryInitial {
		c.RetryMax = 10 * time.Second
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Keyed != nil {
		if err := c.Keyed.validate(c.Workers); err != nil {
			return err
		}
	}
	if n := len(c.allSteps()); len(c.PortOutputs) < n {
		po := make([]map[string]Output, n)
		copy(po, c.PortOutputs)
		c.PortOutputs = po
	}
	return nil
}

// namedStep is what every kind of step shares.
type namedStep interface {
	Name() string
	Ports() []string
}

// allSteps lists the steps in pipeline order: Steps, then the keyed step
// and the steps after it.
func (c *Config) allSteps() []namedStep {
	var all []namedStep
	for _, s := range c.Steps {
		all = append(all, s)
	}
	if c.Keyed != nil {
		for _, s := range c.Keyed.Chain {
			all = append(all, s.named())
		}
	}
	return all
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dest is one result batch bound for one output.
type dest struct {
	out int // index into engine.outs, or toKeyed
	b   *record.Batch
}

// toKeyed marks the dest that enters the keyed stage.
const toKeyed = -1

// job is one input batch on its way through the engine.
type job struct {
	seq   uint64
	batch *record.Batch
	src   record.Source // the input batch's, kept for the keyed stage (partition end)
	pos   []byte        // the input batch's Position, for checkpoints
	ack   connect.AckFunc
	dests []dest
}

// tracker acknowledges an input batch once all its dests are written.
type tracker struct {
	mu       sync.Mutex
	pending  int
	err      error
	ack      connect.AckFunc
	release  func()
	onAckErr func(error)
}

func (t *tracker) done(err error) {
	t.mu.Lock()
	if err != nil && t.err == nil {
		t.err = err
	}
	t.pending--
	last := t.pending == 0
	t.mu.Unlock()
	if last {
		if err := t.ack(context.Background(), t.err); err != nil {
			t.onAckErr(err)
		}
		t.release()
	}
}

type write struct {
	b *record.Batch
	t *tracker
	// marker, when set (b nil), is signalled once every write queued
	// before it on this output is done (checkpoints wait for it).
	marker *sync.WaitGroup
}

type engine struct {
	cfg   Config
	outs  []Output
	chans []chan write
	ports [][]int // ports[step][port index] -> outs index, -1 if unrouted
	slots chan struct{}
	m     *Metrics
	keyed *keyedStage // nil without a window
	steps []namedStep // cfg.allSteps()
	ck    *ckpt       // with checkpoints
	// abandoned counts output writes given up at a hard stop: after one, no
	// checkpoint may count (it would cover records whose output is lost).
	abandoned atomic.Int64
	// dispatched is the number of jobs the sequencer dispatched, set when
	// it returns.
	dispatched uint64
}

// Run runs the pipeline until the input ends (returns nil) or ctx is done
// (stops reading, drains what is in flight, returns nil). hard, when done,
// also abandons output retries: their batches are nacked. A non-nil error
// means the pipeline could not start or an input failed for good.
func Run(ctx, hard context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	e := &engine{cfg: cfg, m: cfg.Metrics, slots: make(chan struct{}, cfg.MaxInFlight)}
	e.outs = []Output{cfg.Output, cfg.ErrorOutput}
	e.steps = cfg.allSteps()
	e.m.init(e.steps, cfg.Output.Name, cfg.ErrorOutput.Name)
	for si, st := range cfg.allSteps() {
		var idx []int
		for _, p := range st.Ports() {
			o, ok := cfg.PortOutputs[si][p]
			if !ok {
				cfg.Logger.Warn("port has no output; records routed there go to the error output",
					"step", st.Name(), "port", p)
				idx = append(idx, -1)
				continue
			}
			if o.Name == "" {
				o.Name = st.Name() + "." + p
			}
			idx = append(idx, len(e.outs))
			e.outs = append(e.outs, o)
			e.m.addOutput(o.Name)
		}
		e.ports = append(e.ports, idx)
	}
	// Make every worker's step instances before reading anything, so a
	// bad module fails the run at start.
	workers := make([][]StepWorker, cfg.Workers)
	closeWorkers := func() {
		for _, ws := range workers {
			for _, w := range ws {
				_ = w.Close(context.Background())
			}
		}
	}
	for i := range workers {
		for _, st := range cfg.Steps {
			w, err := st.NewWorker(ctx)
			if err != nil {
				closeWorkers()
				return fmt.Errorf("engine: step %s: %w", st.Name(), err)
			}
			workers[i] = append(workers[i], w)
		}
	}
	defer closeWorkers()
	var chains [][]chainWorker
	if k := cfg.Keyed; k != nil {
		defer func() {
			for _, ch := range chains {
				for _, c := range ch {
					c.close(context.Background())
				}
			}
		}()
		for range cfg.Workers {
			var ch []chainWorker
			for _, cs := range k.Chain {
				var c chainWorker
				var err error
				if cs.Keyed != nil {
					c.kw, err = cs.Keyed.NewWorker(ctx)
				} else {
					c.sw, err = cs.Step.NewWorker(ctx)
				}
				if err != nil {
					chains = append(chains, ch)
					return fmt.Errorf("engine: step %s: %w", cs.named().Name(), err)
				}
				ch = append(ch, c)
			}
			chains = append(chains, ch)
		}
		e.keyed = newKeyedStage(k, cfg.Workers, len(cfg.Steps), cfg.MaxInFlight)
		if pi, ok := cfg.Input.(connect.Partitioned); ok {
			for _, p := range pi.Partitions() {
				e.keyed.wmt.Expect(p)
			}
		}
		if cfg.Checkpoints != nil {
			ck, err := newCkpt(e, *cfg.Checkpoints)
			if err != nil {
				return err
			}
			if err := ck.restore(ctx, chains); err != nil {
				return fmt.Errorf("engine: restore: %w", err)
			}
			e.ck = ck
			e.m.mu.Lock()
			e.m.ckpt = e.checkpointStats
			e.m.mu.Unlock()
		}
	} else if cfg.Checkpoints != nil {
		// No keyed step: nothing to checkpoint, but keyed state the folder
		// holds must not be ignored silently.
		if err := (&ckpt{e: e, cfg: *cfg.Checkpoints}).checkNoKeyed(); err != nil {
			return fmt.Errorf("engine: restore: %w", err)
		}
		cfg.Logger.Info("checkpoints are off: the pipeline has no keyed state (no window or timeseries step)")
	}

	jobs := make(chan *job, cfg.Workers)
	done := make(chan *job, cfg.MaxInFlight)
	var wwg, owg sync.WaitGroup
	e.chans = make([]chan write, len(e.outs))
	for i := range e.outs {
		e.chans[i] = make(chan write, cfg.MaxInFlight)
		owg.Add(1)
		go func(i int) {
			defer owg.Done()
			e.writer(hard, i)
		}(i)
	}
	for i := range workers {
		wwg.Add(1)
		go func(ws []StepWorker) {
			defer wwg.Done()
			for j := range jobs {
				e.process(ctx, ws, j)
				done <- j
			}
		}(workers[i])
	}
	go func() {
		wwg.Wait()
		close(done)
	}()
	waitKeyed := func() {}
	if e.keyed != nil {
		waitKeyed = e.startKeyed(ctx, chains)
	}
	seqDone := make(chan struct{})
	go func() {
		e.sequence(done)
		close(seqDone)
	}()
	e.m.Ready.Store(true)
	ended, readErr := e.read(ctx, jobs)
	close(jobs)
	<-seqDone
	if e.keyed != nil {
		e.keyed.finish(ended && readErr == nil, e.finalCheckpoint)
		waitKeyed()
	}
	for _, c := range e.chans {
		close(c)
	}
	owg.Wait()
	// Every slot comes back once its batch is acked.
	for i := 0; i < cap(e.slots); i++ {
		e.slots <- struct{}{}
	}
	e.m.Ready.Store(false)
	e.m.finish()
	return readErr
}

// read is the reader loop; ended reports that the input reached its end.
func (e *engine) read(ctx context.Context, jobs chan<- *job) (ended bool, err error) {
	in := e.cfg.Input
	backoff := e.cfg.RetryInitial
	for seq := uint64(0); ; {
		select {
		case e.slots <- struct{}{}:
		case <-ctx.Done():
			return false, nil
		}
		b, ack, err := in.Read(ctx)
		if err != nil {
			<-e.slots
			switch {
			case errors.Is(err, connect.ErrEndOfInput):
				return true, nil
			case ctx.Err() != nil:
				return false, nil
			}
			e.m.InputErrors.Add(1)
			e.cfg.Logger.Warn("input read failed; retrying", "input", e.cfg.InputName, "error", err, "backoff", backoff)
			if e.cfg.Sleep(ctx, backoff) != nil {
				return false, nil
			}
			backoff = min(2*backoff, e.cfg.RetryMax)
			continue
		}
		backoff = e.cfg.RetryInitial
		e.m.InputRecords.Add(int64(b.Len() + len(b.Unreadable)))
		e.m.InputBatches.Add(1)
		if b.Len() == 0 && len(b.Unreadable) == 0 && !(b.Source.PartitionEnd && e.keyed != nil) {
			if err := ack(context.Background(), nil); err != nil {
				e.ackFailed(err)
			}
			<-e.slots
			continue
		}
		// An empty batch that ends a partition still goes through, in
		// order, so the keyed stage learns of the end after the
		// partition's last records.
		jobs <- &job{seq: seq, batch: b, src: b.Source, pos: b.Position, ack: ack}
		seq++
	}
}

// process runs one batch through the stateless steps on a worker.
func (e *engine) process(ctx context.Context, ws []StepWorker, j *job) {
	cur := j.batch
	if len(cur.Unreadable) > 0 {
		errs := &record.Batch{Source: cur.Source}
		for _, u := range cur.Unreadable {
			e.m.Unreadable.Add(1)
			r := &record.Record{Pos: u.Pos}
			errs.Records = append(errs.Records, record.Record{Value: errorLine(nil, cur.Source, r, "input", u.Reason), Pos: u.Pos})
		}
		j.dests = append(j.dests, dest{out: 1, b: errs})
		if cur.Len() == 0 {
			return
		}
	}
	if cur.Len() == 0 {
		return // only marks a partition's end
	}
	j.dests = e.runSteps(ctx, ws, 0, cur, j.dests)
	if e.keyed != nil {
		for i := range j.dests {
			if j.dests[i].out == 0 {
				j.dests[i].out = toKeyed
			}
		}
	}
}

// runSteps runs cur through ws, the workers of the steps from index base
// on, and appends the dests of the results: the main output (out 0), the
// error output (out 1) and the ports.
func (e *engine) runSteps(ctx context.Context, ws []StepWorker, base int, cur *record.Batch, dests []dest) []dest {
	for wi, w := range ws {
		if cur, dests = e.runStep(ctx, w, base+wi, cur, dests); cur == nil || cur.Len() == 0 {
			return dests
		}
	}
	return append(dests, dest{out: 0, b: cur})
}

// runStep runs cur through step si's worker w. It returns the step's main
// output (nil when the whole batch failed) and appends the dests of its
// failures and ports.
func (e *engine) runStep(ctx context.Context, w StepWorker, si int, cur *record.Batch, dests []dest) (*record.Batch, []dest) {
	var errs *record.Batch
	fail := func(src *record.Batch, r *record.Record, step, reason string) {
		if errs == nil {
			errs = &record.Batch{Source: cur.Source}
		}
		line := errorLine(nil, src.Source, r, step, reason)
		errs.Records = append(errs.Records, record.Record{Value: line, Pos: r.Pos, Key: r.Key, Time: r.Time, Flags: r.Flags})
	}
	st := e.steps[si]
	sm := &e.m.Steps[si]
	sm.In.Add(int64(cur.Len()))
	res, err := w.Process(ctx, cur)
	var next *record.Batch
	if err != nil {
		sm.Failed.Add(int64(cur.Len()))
		for i := range cur.Records {
			fail(cur, &cur.Records[i], st.Name(), err.Error())
		}
	} else {
		sm.Failed.Add(int64(len(res.Failed)))
		sm.Dropped.Add(int64(res.Dropped))
		for _, f := range res.Failed {
			fail(cur, &cur.Records[f.Index], st.Name(), f.Reason)
		}
		for p := 1; p < len(res.Ports); p++ {
			pb := &res.Ports[p]
			if pb.Len() == 0 {
				continue
			}
			oi := e.ports[si][p-1]
			if oi < 0 {
				// Not an output of the step's: these records fail.
				sm.Failed.Add(int64(pb.Len()))
				for i := range pb.Records {
					fail(pb, &pb.Records[i], st.Name(), fmt.Sprintf("routed to port %q, which has no output", st.Ports()[p-1]))
				}
				continue
			}
			sm.Routed.Add(int64(pb.Len()))
			dests = append(dests, dest{out: oi, b: pb})
		}
		next = &res.Ports[0]
		sm.Out.Add(int64(next.Len()))
	}
	if errs != nil {
		dests = append(dests, dest{out: 1, b: errs})
	}
	return next, dests
}

// sequence restores input order and dispatches results to the writers (and
// the keyed stage). With a keyed stage and an idle timeout it also
// recomputes the watermark every Keyed.Tick without data.
func (e *engine) sequence(done <-chan *job) {
	pending := map[uint64]*job{}
	next := uint64(0)
	defer func() { e.dispatched = next }()
	var tick, ckTick <-chan time.Time
	var ckDone <-chan error
	if e.keyed != nil && (e.cfg.Keyed.IdleTimeout > 0 || e.cfg.Keyed.ProcessingTime) {
		t := time.NewTicker(e.cfg.Keyed.Tick)
		defer t.Stop()
		tick = t.C
	}
	if e.ck != nil {
		t := time.NewTicker(e.ck.cfg.Interval / 4)
		defer t.Stop()
		ckTick, ckDone = t.C, e.ck.finished
		e.ck.last = e.ck.cfg.Now()
		// A checkpoint in flight when the input is done is waited for, so
		// the final one does not overlap it.
		defer func() {
			if e.ck.busy {
				<-e.ck.finished
				e.ck.busy = false
			}
		}()
	}
	for {
		select {
		case j, ok := <-done:
			if !ok {
				return
			}
			pending[j.seq] = j
			for {
				j, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				e.dispatch(j)
			}
			if e.ck != nil && e.ck.due(e.ck.cfg.Now()) {
				e.ck.trigger(next, e.ck.cfg.Now())
			}
		case <-ckTick:
			if now := e.ck.cfg.Now(); e.ck.due(now) && e.ck.pendingAcks() {
				e.ck.trigger(next, now)
			}
		case <-ckDone:
			e.ck.busy = false
		case <-tick:
			if e.keyed.advance() {
				e.keyed.broadcast(nil)
			}
			if e.cfg.Keyed.ProcessingTime {
				now := e.cfg.Keyed.Now().UnixMilli()
				for _, c := range e.keyed.chans {
					c <- keyedMsg{wm: e.keyed.wm, proc: now}
				}
			}
		}
	}
}

func (e *engine) dispatch(j *job) {
	var subs []*record.Batch
	for i := 0; i < len(j.dests); i++ {
		if j.dests[i].out == toKeyed {
			b := j.dests[i].b
			j.dests = append(j.dests[:i], j.dests[i+1:]...)
			subs = e.dispatchKeyed(j, b)
			break
		}
	}
	if e.ck != nil {
		if j.pos != nil {
			e.ck.pos[j.src.Partition] = j.pos
		}
		// The input ack waits for a durable checkpoint covering the job.
		ack, seq := j.ack, j.seq
		j.ack = func(ctx context.Context, err error) error {
			if err != nil {
				return ack(ctx, err)
			}
			e.ck.deferAck(seq, ack)
			return nil
		}
	}
	if e.keyed != nil && j.src.PartitionEnd {
		// After the partition's last records were observed (above, or in
		// earlier jobs: dispatch runs in input order).
		e.keyed.wmt.End(j.src.Partition)
	}
	nsubs := 0
	for _, s := range subs {
		if s != nil {
			nsubs++
		}
	}
	if len(j.dests) == 0 && nsubs == 0 { // everything dropped
		if err := j.ack(context.Background(), nil); err != nil {
			e.ackFailed(err)
		}
		<-e.slots
	} else {
		t := &tracker{pending: len(j.dests) + nsubs, ack: j.ack, release: func() { <-e.slots }, onAckErr: e.ackFailed}
		for _, d := range j.dests {
			e.chans[d.out] <- write{b: d.b, t: t}
		}
		if e.keyed != nil {
			moved := e.keyed.advance()
			for i, s := range subs {
				if s != nil {
					e.keyed.chans[i] <- keyedMsg{b: s, wm: e.keyed.wm, t: t}
				}
			}
			if moved {
				e.keyed.broadcast(subs)
			}
		}
		return
	}
	if e.keyed != nil && e.keyed.advance() {
		e.keyed.broadcast(nil)
	}
}

// ackFailed records an acknowledgement the input could not take (e.g. a
// nack it cannot redeliver): logged and counted as an input error.
func (e *engine) ackFailed(err error) {
	e.m.InputErrors.Add(1)
	e.cfg.Logger.Error("input acknowledgement failed", "input", e.cfg.InputName, "error", err)
}

// writer writes one output's batches in order, retrying with backoff.
func (e *engine) writer(hard context.Context, i int) {
	o := e.outs[i]
	om := e.m.output(o.Name)
	for w := range e.chans[i] {
		if w.marker != nil {
			w.marker.Done()
			continue
		}
		backoff := e.cfg.RetryInitial
		var err error
		for {
			err = o.Out.Write(hard, w.b)
			if err == nil {
				om.Written.Add(int64(w.b.Len()))
				om.Batches.Add(1)
				if w.b.Recycle != nil {
					w.b.Recycle(w.b)
				}
				break
			}
			om.Retries.Add(1)
			e.cfg.Logger.Warn("output write failed; retrying", "output", o.Name, "error", err, "backoff", backoff)
			if e.cfg.Sleep(hard, backoff) != nil {
				om.Abandoned.Add(int64(w.b.Len()))
				e.abandoned.Add(1)
				err = fmt.Errorf("output %s: abandoned at hard stop after error: %w", o.Name, err)
				break
			}
			backoff = min(2*backoff, e.cfg.RetryMax)
		}
		w.t.done(err)
	}
}
