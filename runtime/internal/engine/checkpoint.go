package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/connect"
	"github.com/wsp-project/wsp/runtime/internal/state"
	"github.com/wsp-project/wsp/runtime/internal/window"
)

// # Checkpoints
//
// A checkpoint is one consistent cut of the keyed stage (semantics.md,
// "Checkpoints and recovery"), taken at the sequencer, which sees every
// input batch in input order:
//
//   - after dispatching job S, the sequencer records the watermark
//     tracker, the keyed stage's watermark and the last input position of
//     every partition (the meta), and sends a barrier down every keyed
//     worker's channel;
//   - the channels are FIFO, so a worker that meets the barrier has
//     absorbed every batch up to S and advanced: it snapshots each keyed
//     step's state (Snapshotter) and hands the bytes to the checkpoint's
//     collector, then goes on (the pause is the snapshot's time);
//   - the collector writes the parts and the meta to the state.Backend; once
//     durable, the input acks of the jobs up to S are released.
//
// With checkpoints on, an input batch is acknowledged only when both its
// writes are done and a durable checkpoint covers it; the in-flight slot is
// freed at the first, so MaxInFlight does not wait for checkpoints. A nack
// (a failed write) is passed on at once. At the end of the input, and at a
// stop, a last checkpoint is taken after the keyed stage is drained, so a
// restart neither loses nor repeats state.
//
// On start, Run restores the newest intact checkpoint: the tracker, the
// watermark, every keyed step's state (each worker keeps its key groups of
// every earlier worker's snapshot, so the worker count may change) and,
// through connect.Seeker, the input positions.

// Checkpoints configures durable state. The zero Interval means 1 s.
type Checkpoints struct {
	// Store is where checkpoints go: files or Pebble (state.Backend).
	Store    state.Backend
	Interval time.Duration
	// Now is the clock that says when a checkpoint is due; tests inject
	// one. Default time.Now.
	Now func() time.Time
	// RestoreFrom, when set, is where the state to start from is (a
	// savepoint) instead of Store's newest checkpoint; new checkpoints
	// still go to Store. It must hold a checkpoint. Savepoints are in the
	// files format whatever the backend.
	RestoreFrom *state.Store
	// Reset names keyed steps whose stored state is dropped once: on the
	// first start with the name in Reset (the checkpoint restored was taken
	// without it), a pipeline step starts empty and a step only the
	// checkpoint has (removed from the pipeline) has its state left behind
	// instead of refusing the start. The checkpoints after record Reset, so
	// restarts with the same Reset (a supervisor's) keep what the step has
	// built since; a name taken out of Reset and put back later drops
	// again. While a step is named, a stored state of it that does not
	// restore (a Wasm module's changed state layout) is dropped too, with
	// a warning, instead of refusing the start. A name that is a keyed step
	// neither of the pipeline nor of the checkpoint (nor in the
	// checkpoint's Reset) is an error.
	Reset []string
}

// Snapshotter is a KeyedWorker whose state can be checkpointed. Snapshot is
// called between batches; Restore before the first Add, once per snapshot
// to merge, keeping the keys keep accepts.
type Snapshotter interface {
	Snapshot(dst []byte) ([]byte, error)
	Restore(snap []byte, keep func(key []byte) bool) error
}

// LaterSnapshotter is a Snapshotter that can copy its state quickly at the
// barrier and encode the copy afterwards on another goroutine, so the
// worker's pause is the copy only.
type LaterSnapshotter interface {
	SnapshotLater() (encode func() ([]byte, error), err error)
}

// ckptPart is one worker's snapshot of one keyed step.
type ckptPart struct {
	worker, step int
	b            []byte
	encode       func() ([]byte, error) // when set, makes b (on the collector's goroutine)
	err          error
	pause        time.Duration
}

// ckpt is the checkpoint coordinator. The sequencer goroutine triggers
// checkpoints (trigger, positions); workers send parts; one collector
// goroutine at a time writes a checkpoint; acks are deferred under mu.
type ckpt struct {
	e        *engine
	cfg      Checkpoints
	reset    []string // Reset, checked and sorted: written in every meta
	nextID   uint64
	last     time.Time         // when the last checkpoint was triggered (sequencer)
	busy     bool              // a checkpoint is being taken (sequencer)
	finished chan error        // the collector's result, read by the sequencer
	parts    chan ckptPart     // from the keyed workers
	pos      map[string][]byte // last position per partition (sequencer)
	steps    []int             // indexes in the chain of the keyed steps
	names    map[int]string    // the keyed steps' names, by chain index
	flushed  *sync.WaitGroup   // the outputs' markers of the checkpoint being taken

	mu      sync.Mutex
	covered uint64        // jobs with seq < covered are in a durable checkpoint
	waiting []deferredAck // acks of done jobs not covered yet, by seq
	stats   CheckpointStats
}

type deferredAck struct {
	seq uint64
	ack connect.AckFunc
}

// CheckpointStats are the figures of the checkpoints taken so far.
type CheckpointStats struct {
	Completed, Failed int64
	LastID            uint64
	// MaxPause is the longest time a keyed worker stopped to snapshot its
	// state; LastDuration the last checkpoint's time from barrier to durable.
	MaxPause, LastDuration time.Duration
	// BytesCheckpointed is the size of the checkpoints taken, BytesWritten
	// what writing them stored (less when the backend writes only what
	// changed since the last one).
	BytesCheckpointed, BytesWritten int64
	Restored                        uint64        // the checkpoint restored at start (0: none)
	RestoreTime                     time.Duration // how long reading and restoring it took
}

func newCkpt(e *engine, cfg Checkpoints) (*ckpt, error) {
	if cfg.Store == nil {
		return nil, errors.New("engine: checkpoints need a store")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &ckpt{e: e, cfg: cfg, nextID: 1, pos: map[string][]byte{}, parts: make(chan ckptPart, 64), finished: make(chan error, 1)}
	c.names = map[int]string{}
	for i, cs := range e.cfg.Keyed.Chain {
		if cs.Keyed != nil {
			n := cs.Keyed.Name()
			if c.isStep(n) {
				return nil, fmt.Errorf("engine: two keyed steps are named %q: checkpoints find a step's state by its name", n)
			}
			c.names[i] = n
			c.steps = append(c.steps, i)
		}
	}
	return c, nil
}

// deferAck runs ack once a durable checkpoint covers job seq.
func (c *ckpt) deferAck(seq uint64, ack connect.AckFunc) {
	c.mu.Lock()
	if seq < c.covered {
		c.mu.Unlock()
		c.run(ack)
		return
	}
	c.waiting = append(c.waiting, deferredAck{seq, ack})
	c.mu.Unlock()
}

func (c *ckpt) run(ack connect.AckFunc) {
	if err := ack(context.Background(), nil); err != nil {
		c.e.ackFailed(err)
	}
}

// cover releases the acks of jobs before seq.
func (c *ckpt) cover(seq uint64) {
	c.mu.Lock()
	if seq > c.covered {
		c.covered = seq
	}
	var ready []connect.AckFunc
	keep := c.waiting[:0]
	for _, d := range c.waiting {
		if d.seq < c.covered {
			ready = append(ready, d.ack)
		} else {
			keep = append(keep, d)
		}
	}
	clear(c.waiting[len(keep):])
	c.waiting = keep
	c.mu.Unlock()
	for _, a := range ready {
		c.run(a)
	}
}

// due says whether the sequencer should take a checkpoint now.
func (c *ckpt) due(now time.Time) bool {
	return !c.busy && now.Sub(c.last) >= c.cfg.Interval
}

// trigger starts checkpoint covering the jobs before seq (the sequencer has
// dispatched them all): it records the meta, sends the barriers and starts
// the collector. The sequencer must not trigger again before finished.
func (c *ckpt) trigger(seq uint64, now time.Time) {
	k := c.e.keyed
	id := c.nextID
	c.nextID++
	c.busy, c.last = true, now
	meta := c.meta(id, seq, k)
	// The outputs must have written what was emitted before the cut: the
	// writes of the jobs dispatched so far are queued on them now, and each
	// keyed worker queues a marker after its own results at the barrier.
	flushed := &sync.WaitGroup{}
	flushed.Add(len(c.e.chans) * (1 + len(k.chans)))
	c.flushed = flushed
	for _, ch := range c.e.chans {
		ch <- write{marker: flushed}
	}
	for _, ch := range k.chans {
		ch <- keyedMsg{barrier: id, wm: k.wm}
	}
	go func() { c.finished <- c.collect(id, seq, meta, now, flushed) }()
}

// collect gathers every worker's parts and writes the checkpoint.
func (c *ckpt) collect(id, seq uint64, meta []byte, start time.Time, flushed *sync.WaitGroup) error {
	want := len(c.e.keyed.chans) * len(c.steps)
	cp := &state.Checkpoint{ID: id, Meta: meta, Parts: map[string][]byte{}}
	var errs []error
	var pause time.Duration
	for range want {
		p := <-c.parts
		if p.encode != nil && p.err == nil {
			p.b, p.err = p.encode()
		}
		if p.err != nil {
			errs = append(errs, p.err)
			continue
		}
		pause = max(pause, p.pause)
		cp.Parts[partName(p.worker, p.step)] = p.b
	}
	flushed.Wait()
	if c.e.abandoned.Load() > 0 {
		errs = append(errs, errors.New("output writes were abandoned at a hard stop: what they held is not covered"))
	}
	err := errors.Join(errs...)
	if err == nil {
		err = c.cfg.Store.Write(cp)
	}
	// What the write cost: a backend that stores only what changed
	// (Pebble) says how much that was; the files backend writes it all.
	total := int64(len(cp.Meta))
	for _, b := range cp.Parts {
		total += int64(len(b))
	}
	written := total
	if lw, ok := c.cfg.Store.(lastWriter); ok && err == nil {
		if nb, tb := lw.LastWrite(); nb >= 0 {
			written, total = nb, tb
		}
	}
	c.mu.Lock()
	if err != nil {
		c.stats.Failed++
	} else {
		c.stats.BytesWritten += written
		c.stats.BytesCheckpointed += total
		c.stats.Completed++
		c.stats.LastID = id
		c.stats.MaxPause = max(c.stats.MaxPause, pause)
		c.stats.LastDuration = time.Since(start)
	}
	c.mu.Unlock()
	if err != nil {
		c.e.cfg.Logger.Error("checkpoint failed; the input acks wait for the next one", "checkpoint", id, "error", err)
		return err
	}
	c.cover(seq)
	return nil
}

// lastWriter is a backend that says what its last write cost: the bytes it
// stored (new) and the checkpoint's size; -1 when it stored everything.
type lastWriter interface {
	LastWrite() (newBytes, totalBytes int64)
}

func partName(worker, step int) string { return "w" + strconv.Itoa(worker) + ".s" + strconv.Itoa(step) }

// snapshot is the keyed worker's side of a barrier: it snapshots each
// keyed step of its chain and sends the parts.
func (c *ckpt) snapshot(worker int, ws []chainWorker) {
	for _, si := range c.steps {
		start := time.Now()
		p := ckptPart{worker: worker, step: si}
		if ls, ok := ws[si].kw.(LaterSnapshotter); ok {
			p.encode, p.err = ls.SnapshotLater()
		} else if s, ok := ws[si].kw.(Snapshotter); ok {
			p.b, p.err = s.Snapshot(nil)
		} else {
			p.err = fmt.Errorf("step %s: its state cannot be checkpointed", c.e.cfg.Keyed.Chain[si].named().Name())
		}
		p.pause = time.Since(start)
		c.parts <- p
	}
	// After this worker's results: the checkpoint waits for them written.
	for _, ch := range c.e.chans {
		ch <- write{marker: c.flushed}
	}
}

// The meta, format version 2: version | id | covered seq | keyed
// watermark | workers | max parallelism | tracker (len | bytes) |
// positions count | (partition (len | bytes) | position (len | bytes))* |
// keyed steps count | (name (len | bytes) | chain index)* |
// reset count | (name (len | bytes))* (the run's Reset: names whose
// state was dropped once already).
//
// A part is named by worker and chain index ("w1.s3"); the step list
// maps a step's name to the index it had, so a restore finds each step's
// state by name when steps were added, removed or moved. Format 1 (no
// step list) is read too: its steps are matched by index.
func (c *ckpt) meta(id, seq uint64, k *keyedStage) []byte {
	b := binary.AppendUvarint(nil, 2)
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendVarint(b, k.wm)
	b = binary.AppendUvarint(b, uint64(len(k.chans)))
	b = binary.AppendUvarint(b, uint64(c.e.cfg.Keyed.MaxParallelism))
	tr := k.wmt.Snapshot(nil)
	b = binary.AppendUvarint(b, uint64(len(tr)))
	b = append(b, tr...)
	names := make([]string, 0, len(c.pos))
	for n := range c.pos {
		names = append(names, n)
	}
	slices.Sort(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
		b = binary.AppendUvarint(b, uint64(len(c.pos[n])))
		b = append(b, c.pos[n]...)
	}
	b = binary.AppendUvarint(b, uint64(len(c.steps)))
	for _, si := range c.steps {
		n := c.names[si]
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
		b = binary.AppendUvarint(b, uint64(si))
	}
	b = binary.AppendUvarint(b, uint64(len(c.reset)))
	for _, n := range c.reset {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	return b
}

// restoredMeta is a decoded meta.
type restoredMeta struct {
	wm             int64
	workers        int
	maxParallelism int
	tracker        []byte
	positions      map[string][]byte
	// steps maps a keyed step's name to its chain index in the checkpoint
	// (nil for format 1, whose steps match by index).
	steps map[string]int
	reset []string // the Reset of the run that took it
}

func decodeMeta(b []byte) (*restoredMeta, error) {
	bad := errors.New("the checkpoint's meta is cut short or corrupt")
	u := func() uint64 {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return x
	}
	// count reads a count of entries, each at least one byte long.
	count := func() uint64 {
		n := u()
		if n > uint64(len(b)) {
			b = nil
			return 0
		}
		return n
	}
	chunk := func() []byte {
		n := u()
		if n > uint64(len(b)) {
			b = nil
			return nil
		}
		p := b[:n:n]
		b = b[n:]
		return p
	}
	v := u()
	if v != 1 && v != 2 {
		return nil, fmt.Errorf("checkpoint meta format version %d; this wsp reads versions 1 and 2", v)
	}
	u() // id
	u() // covered seq
	wm, n := binary.Varint(b)
	if n <= 0 {
		return nil, bad
	}
	b = b[n:]
	m := &restoredMeta{wm: wm, positions: map[string][]byte{}}
	m.workers, m.maxParallelism = int(u()), int(u())
	m.tracker = chunk()
	for range count() {
		name := chunk()
		m.positions[string(name)] = chunk()
	}
	if v >= 2 {
		m.steps = map[string]int{}
		for range count() {
			name := string(chunk())
			si := u()
			if _, dup := m.steps[name]; dup || si > 1<<20 {
				return nil, bad
			}
			m.steps[name] = int(si)
		}
		if len(b) > 0 { // (absent in metas of an earlier build of format 2)
			for range count() {
				m.reset = append(m.reset, string(chunk()))
			}
		}
	}
	if b == nil || m.workers <= 0 || m.maxParallelism <= 0 {
		return nil, bad
	}
	return m, nil
}

// restore loads the newest intact checkpoint into the tracker, the keyed
// workers' steps and the input, before anything runs.
func (c *ckpt) restore(ctx context.Context, chains [][]chainWorker) error {
	k := c.e.keyed
	start := time.Now()
	cp, skipped, err := c.source().Latest()
	for _, s := range skipped {
		c.e.cfg.Logger.Warn("checkpoint not usable; trying an earlier one", "reason", s)
	}
	if err != nil {
		return err
	}
	// New checkpoints are numbered after every one in the store (a
	// savepoint's id may be older than they are).
	next, err := c.cfg.Store.NextID()
	if err != nil {
		return err
	}
	c.nextID = next
	if cp == nil {
		if c.cfg.RestoreFrom != nil {
			return fmt.Errorf("no intact checkpoint in savepoint %s", c.cfg.RestoreFrom.Dir)
		}
		for _, n := range c.cfg.Reset {
			if !c.isStep(n) {
				return fmt.Errorf("reset-state: %q is not a keyed step of the pipeline, and there is no checkpoint", n)
			}
		}
		c.reset = slices.Sorted(slices.Values(c.cfg.Reset)) // nothing to drop now, nor on restarts with the same Reset
		c.reset = slices.Compact(c.reset)
		return nil
	}
	m, err := decodeMeta(cp.Meta)
	if err != nil {
		return fmt.Errorf("checkpoint %d: %w", cp.ID, err)
	}
	if m.maxParallelism != c.e.cfg.Keyed.MaxParallelism {
		return fmt.Errorf("checkpoint %d was taken with %d key groups (max_parallelism), the pipeline has %d: the key groups of a state are fixed for its life",
			cp.ID, m.maxParallelism, c.e.cfg.Keyed.MaxParallelism)
	}
	if err := k.wmt.Restore(m.tracker); err != nil {
		return fmt.Errorf("checkpoint %d: %w", cp.ID, err)
	}
	k.wm = m.wm
	oldIndex, err := c.stepMap(cp.ID, m)
	if err != nil {
		return err
	}
	for _, si := range c.steps {
		old, ok := oldIndex[si]
		if !ok {
			continue // a new step, or one whose state is dropped
		}
		err := c.restoreStep(cp, m, chains, si, old)
		name := c.names[si]
		if err == nil {
			continue
		}
		if !slices.Contains(c.reset, name) {
			return err
		}
		// Named in Reset: a state that does not restore is dropped too,
		// from every worker (some may have restored parts of it).
		c.e.cfg.Logger.Warn("reset-state: the step's stored state does not restore; it starts empty", "step", name, "checkpoint", cp.ID, "reason", err)
		for _, ws := range chains {
			_ = ws[si].kw.Close(ctx)
			if ws[si].kw, err = c.e.cfg.Keyed.Chain[si].Keyed.NewWorker(ctx); err != nil {
				return fmt.Errorf("step %s: %w", name, err)
			}
		}
	}
	if len(m.positions) > 0 {
		if sk, ok := c.e.cfg.Input.(connect.Seeker); ok {
			if err := sk.Seek(m.positions); err != nil {
				return fmt.Errorf("checkpoint %d: input positions: %w", cp.ID, err)
			}
		} else {
			c.e.cfg.Logger.Warn("the input cannot resume from a checkpoint's positions: it starts where it starts (records read before the crash may be lost or repeated)",
				"input", c.e.cfg.InputName)
		}
	}
	for n, p := range m.positions {
		c.pos[n] = p
	}
	c.nextID = max(c.nextID, cp.ID+1)
	c.stats.Restored, c.stats.RestoreTime = cp.ID, time.Since(start)
	c.e.cfg.Logger.Info("restored checkpoint", "checkpoint", cp.ID, "workers_then", m.workers, "workers_now", len(chains),
		"partitions", strings.Join(slices.Sorted(maps.Keys(m.positions)), ","))
	return nil
}

// checkNoKeyed is restore's check for a pipeline without keyed steps
// (which takes no checkpoints): keyed state in the newest checkpoint (or
// the savepoint) refuses the start, since this run would neither keep it
// nor record that it left it behind; Reset has nothing to name.
func (c *ckpt) checkNoKeyed() error {
	if len(c.cfg.Reset) > 0 {
		return fmt.Errorf("reset-state: %q: the pipeline has no keyed steps", c.cfg.Reset[0])
	}
	cp, _, err := c.source().Latest()
	if err != nil {
		return err
	}
	if cp == nil {
		if c.cfg.RestoreFrom != nil {
			return fmt.Errorf("no intact checkpoint in savepoint %s", c.cfg.RestoreFrom.Dir)
		}
		return nil
	}
	if len(cp.Parts) > 0 {
		m, err := decodeMeta(cp.Meta)
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w", cp.ID, err)
		}
		names := "keyed steps"
		if m.steps != nil {
			names = "steps " + strings.Join(slices.Sorted(maps.Keys(m.steps)), ", ")
		}
		return fmt.Errorf("checkpoint %d holds the state of %s, and this pipeline has no keyed step: "+
			"run it with another state folder (or none), or move this one away", cp.ID, names)
	}
	return nil
}

// isStep says whether the pipeline has a keyed step named n.
func (c *ckpt) isStep(n string) bool {
	for _, name := range c.names {
		if name == n {
			return true
		}
	}
	return false
}

// source is where a restore reads: the savepoint, else the store.
func (c *ckpt) source() state.Backend {
	if c.cfg.RestoreFrom != nil {
		return c.cfg.RestoreFrom
	}
	return c.cfg.Store
}

// restoreStep restores keyed step si of every worker from the parts of
// the step's chain index old in checkpoint cp.
func (c *ckpt) restoreStep(cp *state.Checkpoint, m *restoredMeta, chains [][]chainWorker, si, old int) error {
	name := c.names[si]
	workers := len(chains)
	for wi, ws := range chains {
		keep := func(key []byte) bool {
			return window.WorkerOf(window.KeyGroup(key, m.maxParallelism), m.maxParallelism, workers) == wi
		}
		s, ok := ws[si].kw.(Snapshotter)
		if !ok {
			return fmt.Errorf("step %s: its state cannot be restored", name)
		}
		for ow := range m.workers {
			part, ok := cp.Parts[partName(ow, old)]
			if !ok {
				return fmt.Errorf("checkpoint %d has no state for step %s of worker %d: it was taken with another pipeline", cp.ID, name, ow)
			}
			if err := s.Restore(part, keep); err != nil {
				return fmt.Errorf("checkpoint %d: step %s: %w", cp.ID, name, err)
			}
		}
	}
	return nil
}

// stepMap says, for each keyed step of the pipeline (by chain index) that
// restores state from checkpoint id, the chain index its state has there.
// Steps are matched by name (format 2) or by index (format 1). A step the
// checkpoint lacks starts empty; so does one Reset names for the first
// time (the checkpoint's own Reset lacks it). State of a step the pipeline
// no longer has refuses the start unless Reset names it (it is then left
// behind). It also checks Reset's names and keeps them for later metas.
func (c *ckpt) stepMap(id uint64, m *restoredMeta) (map[int]int, error) {
	done := map[string]bool{} // reset by an earlier run still told to
	for _, n := range m.reset {
		done[n] = true
	}
	reset := map[string]bool{}
	for _, n := range c.cfg.Reset {
		if _, inCkpt := m.steps[n]; !c.isStep(n) && !inCkpt && !done[n] {
			why := ""
			if m.steps == nil {
				why = " (its format lists no step names)"
			}
			return nil, fmt.Errorf("reset-state: %q is a keyed step neither of the pipeline nor of checkpoint %d%s", n, id, why)
		}
		reset[n] = true
	}
	c.reset = slices.Sorted(maps.Keys(reset))
	log := c.e.cfg.Logger
	var added []string
	out := map[int]int{}
	for _, si := range c.steps {
		name := c.names[si]
		old, ok := si, true
		if m.steps != nil {
			old, ok = m.steps[name]
		}
		switch {
		case !ok:
			added = append(added, name)
			log.Info("the checkpoint has no state for this step (a new step): it starts empty", "step", name, "checkpoint", id)
		case reset[name] && !done[name]:
			log.Warn("reset-state: dropping the step's stored state; it starts empty", "step", name, "checkpoint", id)
		default:
			if reset[name] {
				log.Info("reset-state: the step's state was dropped by an earlier start with this setting; its state since is kept", "step", name, "checkpoint", id)
			}
			out[si] = old
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.steps)) {
		switch {
		case c.isStep(name):
		case reset[name]:
			log.Warn("reset-state: leaving behind the state of a step the pipeline no longer has", "step", name, "checkpoint", id)
		default:
			hint := ""
			if len(added) > 0 {
				hint = fmt.Sprintf("if %s is that step (a step without a name is named by its kind and its number among the steps of that kind), give it `name: %s`; otherwise ",
					strings.Join(added, " or "), name)
			}
			return nil, fmt.Errorf("checkpoint %d holds the state of step %q, which the pipeline no longer has: "+
				"%srestore the step, or start with --reset-state %s to leave its state behind", id, name, hint, name)
		}
	}
	return out, nil
}

// pendingAcks says whether acks wait for a checkpoint (the sequencer takes
// one on its timer only then, so an idle pipeline writes none).
func (c *ckpt) pendingAcks() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting) > 0
}

// finalCheckpoint is the last checkpoint, at the end of the input or at a
// stop, once the sequencer has dispatched everything: a restart then
// resumes after all of it. If it fails, the acks still waiting are nacked
// (the input may deliver those records again).
func (e *engine) finalCheckpoint() {
	c := e.ck
	if c == nil {
		return
	}
	c.trigger(e.dispatched, c.cfg.Now())
	err := <-c.finished
	c.busy = false
	if err == nil {
		return
	}
	c.mu.Lock()
	w := c.waiting
	c.waiting = nil
	c.mu.Unlock()
	for _, d := range w {
		if aerr := d.ack(context.Background(), fmt.Errorf("engine: the final checkpoint failed: %w", err)); aerr != nil {
			e.ackFailed(aerr)
		}
	}
}

// CheckpointStats returns the figures of the checkpoints so far.
func (e *engine) checkpointStats() CheckpointStats {
	if e.ck == nil {
		return CheckpointStats{}
	}
	e.ck.mu.Lock()
	defer e.ck.mu.Unlock()
	return e.ck.stats
}
