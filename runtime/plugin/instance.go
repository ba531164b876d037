package plugin

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/jsonfields"
	"github.com/wsp-project/wsp/runtime/record"
)

// ErrorKind classifies a guest fault.
type ErrorKind int

// Kinds of *Error.
const (
	Trap      ErrorKind = iota + 1 // the guest trapped (unreachable, out-of-bounds access, stack overflow, panic)
	Timeout                        // the call ran past Options.Timeout
	Fault                          // a host function was given bad pointers or arguments
	Malformed                      // the output chunk did not parse or broke a rule of the ABI
	Returned                       // the export returned non-zero (the guest failed the batch)
	Init                           // _initialize, wsp_abi or wsp_init failed
)

var kindNames = map[ErrorKind]string{Trap: "trap", Timeout: "timeout", Fault: "fault",
	Malformed: "malformed output", Returned: "failed", Init: "init"}

func (k ErrorKind) String() string { return kindNames[k] }

// Error is a guest fault, naming the module and the export that was running.
type Error struct {
	Module string
	Export string
	Kind   ErrorKind
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("plugin %s: %s: %s: %v", e.Module, e.Export, e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Failure is one input record the guest failed, with its reason.
type Failure struct {
	Index  int
	Reason string
}

// Result holds what one call produced. Reuse it across calls to save
// allocations; Call resets it.
type Result struct {
	// Ports[0] is the main output; Ports[i] is the module's port i
	// (Module.Ports()[i-1]). Records keep the output order.
	Ports []record.Batch
	// Failed lists the input records the guest failed.
	Failed []Failure
	// Dropped counts input records that produced neither output nor failure.
	Dropped int
	// State lists the state changes of a CallState or CallTimers, in output
	// order (state.go).
	State []StateUpdate
	// Failing is what Failed indexes into when that is not the batch the
	// caller passed in (a keyed step's fired timers).
	Failing *record.Batch

	stateArena []byte
}

func (r *Result) reset(ports int, src record.Source) {
	if cap(r.Ports) < ports {
		r.Ports = make([]record.Batch, ports)
	}
	r.Ports = r.Ports[:ports]
	for i := range r.Ports {
		r.Ports[i].Reset()
		r.Ports[i].Source = src
	}
	r.Failed = r.Failed[:0]
	r.Dropped = 0
	r.State = r.State[:0]
	r.stateArena = r.stateArena[:0]
}

type phase int32

const (
	phaseIdle phase = iota
	phaseInit
	phaseCall
)

type instKey struct{}

// Instance is one instantiation of a Module, owned by one goroutine at a time.
type Instance struct {
	m       *Module
	mod     api.Module // nil after a fault, until re-instantiated
	fn      api.Function
	timerFn api.Function                        // wsp_on_timer, with FeatureTimers
	feats   hostabi.Feature                     // the module's features (Module.Features, without its lock)
	aggFns  [hostabi.AggFinish + 1]api.Function // with Function Aggregate, by op
	ctx     context.Context                     // carries the instance to host functions; cancelled on time-out
	cancel  context.CancelFunc
	stack   [1]uint64

	// Time limit. The timer fires on its own goroutine. tmu orders it
	// against the calling goroutine: it acts only while a call runs, and
	// whatever it set is undone if that call returned successfully after
	// all, so a late firing never reaches the next call.
	timer    *time.Timer
	tmu      sync.Mutex
	running  bool
	deadline int64
	timedOut atomic.Bool
	// callDeadline is the running call's deadline (unix ns) for modules
	// rewritten to check it themselves (Module.byTick); 0 when none.
	// Only the calling goroutine touches it.
	callDeadline int64
	knownSize    uint64 // the staged batch's encoded size once worked out (0: not yet)

	phase  phase
	export string // the export running, for errors

	// The staged input of the running call.
	in      *record.Batch
	fields  []byte // encoded fields sections, back to back
	fEnd    []int  // fEnd[i]: end of record i's section in fields
	notJSON []bool
	scratch jsonfields.Scratch

	// What the running call produced.
	res         *Result
	lastIndex   int64  // last input index seen in output (ascending order rule)
	lastEmitted int64  // last input index that produced output or a failure
	emitted     int    // distinct input indexes that produced output
	stateSec    []byte // the state section of a CallState or CallTimers (nil otherwise)
	timers      bool   // in a CallTimers: each record's port field is timerDomain
	timerDomain hostabi.TimerDomain
	failMsg     string
	fault       error // set by a host function before it aborts the call

	// The staged aggregate call (aggregate.go), nil otherwise.
	agg      *aggCall
	aggFixed aggCall         // reused by the fixed-size calls
	flatRecs []record.Record // CallAggregate's records on a fixed-size module
	resEnds  []int           // formatResults' scratch
	resWidth int             // formatResults' estimate of a text's length (0: none yet)

	// Declarations made during wsp_init.
	declFields       []string
	declPorts        []string
	declAccSize      int                   // agg_size; 0 when not called
	declResults      []hostabi.ResultField // agg_result; nil when not called
	declStateVersion *uint32               // state_version; nil when not called
	declErr          error                 // a refused declaration: fails the load
}

// Instance returns an instance for one worker: the one made eagerly at load
// if it is still free, or a new one. Close it when the worker ends.
func (m *Module) Instance(ctx context.Context) (*Instance, error) {
	m.mu.Lock()
	in := m.eager
	m.eager = nil
	m.mu.Unlock()
	if in != nil {
		return in, nil
	}
	return m.newInstance(ctx)
}

func (m *Module) newInstance(ctx context.Context) (*Instance, error) {
	in := &Instance{m: m}
	in.timer = time.AfterFunc(time.Hour, in.onTimer)
	in.timer.Stop()
	if err := in.instantiate(ctx); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *Instance) onTimer() {
	in.tmu.Lock()
	defer in.tmu.Unlock()
	if !in.running {
		return
	}
	if rem := in.deadline - time.Now().UnixNano(); rem > 0 {
		in.timer.Reset(time.Duration(rem))
		return
	}
	in.timedOut.Store(true)
	in.cancel()
}

func (in *Instance) instantiate(ctx context.Context) error {
	m := in.m
	in.tmu.Lock()
	in.ctx, in.cancel = context.WithCancel(context.WithValue(context.Background(), instKey{}, in))
	in.tmu.Unlock()
	in.timedOut.Store(false)
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithStderr(&logWriter{m: m}).WithStdout(&logWriter{m: m})
	g := m.opts.Grants
	if g.Clock {
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	if g.Random {
		cfg = cfg.WithRandSource(crand.Reader)
	}
	for _, name := range g.Env {
		if v, ok := os.LookupEnv(name); ok {
			cfg = cfg.WithEnv(name, v)
		}
	}
	mod, err := m.rt.InstantiateModule(in.ctx, m.compiled, cfg)
	if err != nil {
		return &Error{Module: m.name, Export: "instantiate", Kind: Init, Err: err}
	}
	in.mod = mod
	fail := func(export string, err error) error {
		in.discard(ctx)
		var pe *Error
		if errors.As(err, &pe) {
			pe.Kind = Init
			return pe
		}
		return &Error{Module: m.name, Export: export, Kind: Init, Err: err}
	}
	if f := mod.ExportedFunction(hostabi.ExportInitialize); f != nil {
		if err := in.guard(hostabi.ExportInitialize, f, nil); err != nil {
			return fail(hostabi.ExportInitialize, err)
		}
	}
	if err := in.guard(hostabi.ExportABI, mod.ExportedFunction(hostabi.ExportABI), nil); err != nil {
		return fail(hostabi.ExportABI, err)
	}
	if err := m.checkABI(in.stack[0]); err != nil {
		return fail(hostabi.ExportABI, err)
	}
	in.feats = hostabi.Feature(in.stack[0] >> 32) // read per call: no lock then
	in.declFields, in.declPorts, in.declAccSize = nil, nil, 0
	in.declResults, in.declErr, in.declStateVersion = nil, nil, nil
	if f := mod.ExportedFunction(hostabi.ExportInit); f != nil {
		in.phase = phaseInit
		in.failMsg = ""
		err := in.guard(hostabi.ExportInit, f, nil)
		in.phase = phaseIdle
		if err != nil {
			return fail(hostabi.ExportInit, err)
		}
		if in.declErr != nil {
			return fail(hostabi.ExportInit, in.declErr)
		}
		if rc := int32(in.stack[0]); rc != 0 {
			msg := in.failMsg
			if msg == "" {
				msg = fmt.Sprintf("returned %d", rc)
			}
			return fail(hostabi.ExportInit, errors.New(msg))
		}
	}
	if err := m.declare(in.declFields, in.declPorts, in.declAccSize, in.declResults, in.declStateVersion); err != nil {
		return fail(hostabi.ExportInit, err)
	}
	in.fn = mod.ExportedFunction(m.opts.Function.Export())
	in.timerFn = mod.ExportedFunction(hostabi.ExportOnTimer)
	if m.opts.Function == Aggregate {
		// Looked up once: wazero makes a new call engine per lookup.
		for _, op := range []hostabi.AggOp{hostabi.AggAdd, hostabi.AggMerge, hostabi.AggFinish} {
			in.aggFns[op] = mod.ExportedFunction(op.Export())
		}
	}
	return nil
}

// guard calls f with the time limit, turning every failure into an *Error.
// The result is left in in.stack[0].
func (in *Instance) guard(export string, f api.Function, arg *uint64) error {
	in.export = export
	in.fault = nil
	stack := in.stack[:]
	if arg != nil {
		stack[0] = *arg
	}
	t := in.m.opts.Timeout
	in.timedOut.Store(false)
	var err error
	switch {
	case t == NoTimeout:
		err = f.CallWithStack(in.ctx, stack)
	case in.m.byTick:
		// The rewritten guest checks the deadline itself (interrupt.go).
		in.callDeadline = time.Now().Add(t).UnixNano()
		err = f.CallWithStack(in.ctx, stack)
		in.callDeadline = 0
	default:
		// wazero's termination mode: the timer cancels the context.
		in.tmu.Lock()
		in.running = true
		in.deadline = time.Now().Add(t).UnixNano()
		in.timer.Reset(t)
		in.tmu.Unlock()
		err = f.CallWithStack(in.ctx, stack)
		in.tmu.Lock()
		in.running = false
		in.timer.Stop()
		if err == nil && in.timedOut.Load() {
			// The deadline passed as the call was returning and the
			// context is cancelled: replace the module before the next call.
			in.timedOut.Store(false)
			in.tmu.Unlock()
			in.discard(context.Background())
			in.tmu.Lock()
		}
		in.tmu.Unlock()
	}
	if err == nil {
		return nil
	}
	e := &Error{Module: in.m.name, Export: export, Kind: Trap, Err: err}
	var exit *sys.ExitError
	switch {
	case in.timedOut.Load():
		e.Kind = Timeout
		e.Err = fmt.Errorf("did not return within %s", t)
	case in.fault != nil:
		e.Err = in.fault
		e.Kind = Fault
		var pe *hostabi.ParseError
		var me malformedError
		if errors.As(in.fault, &pe) || errors.As(in.fault, &me) {
			e.Kind = Malformed
		}
	case errors.As(err, &exit):
		e.Err = fmt.Errorf("guest exited with code %d", exit.ExitCode())
	}
	return e
}

// discard closes the wazero module after a fault; the next Call makes a new one.
func (in *Instance) discard(ctx context.Context) {
	if in.mod != nil {
		_ = in.mod.Close(ctx)
		in.mod = nil
	}
	in.cancel()
}

// Close releases the instance.
func (in *Instance) Close(ctx context.Context) error {
	in.timer.Stop()
	in.discard(ctx)
	return nil
}

// Call runs the module's batch function over b, filling res. A returned
// error is an *Error: the batch as a whole failed (the caller sends its
// records to the error output); the instance has already recovered, and the
// next Call runs on a fresh instantiation if the fault required one.
func (in *Instance) Call(ctx context.Context, b *record.Batch, res *Result) error {
	if in.feats&hostabi.FeatureState != 0 {
		return &Error{Module: in.m.name, Export: in.m.opts.Function.Export(), Kind: Fault,
			Err: errors.New("a module with keyed state runs as a keyed step (CallState)")}
	}
	return in.call(ctx, b, res, in.m.opts.Function.Export(), in.fn)
}

// call runs export fn (named export) over b, filling res.
func (in *Instance) call(ctx context.Context, b *record.Batch, res *Result, export string, fn api.Function) error {
	m := in.m
	if in.mod == nil {
		if err := in.instantiate(ctx); err != nil {
			return err
		}
		if export == hostabi.ExportOnTimer {
			fn = in.timerFn
		} else {
			fn = in.fn
		}
	}
	if fn == nil {
		return &Error{Module: m.name, Export: export, Kind: Fault, Err: errNoTimers}
	}
	res.reset(len(m.ports)+1, b.Source)
	if err := in.stage(b); err != nil {
		return &Error{Module: m.name, Export: export, Kind: Fault, Err: err}
	}
	in.res = res
	in.lastIndex, in.lastEmitted, in.emitted = -1, -1, 0
	in.failMsg = ""
	in.phase = phaseCall
	n := uint64(len(b.Records))
	err := in.guard(export, fn, &n)
	in.phase = phaseIdle
	in.in, in.res = nil, nil
	if err != nil {
		in.discard(ctx)
		res.State = res.State[:0]
		return err
	}
	if rc := int32(in.stack[0]); rc != 0 {
		msg := in.failMsg
		if msg == "" {
			msg = fmt.Sprintf("returned %d", rc)
		}
		res.State = res.State[:0]
		return &Error{Module: m.name, Export: export, Kind: Returned, Err: errors.New(msg)}
	}
	res.Dropped = len(b.Records) - in.emitted
	if m.opts.Function != Process {
		if err := in.checkOnePerInput(res, len(b.Records)); err != nil {
			return &Error{Module: m.name, Export: export, Kind: Malformed, Err: err}
		}
	}
	return nil
}

// checkOnePerInput enforces that key and timestamp functions answer every
// input exactly once, with the part they exist to provide.
func (in *Instance) checkOnePerInput(res *Result, n int) error {
	for p := 1; p < len(res.Ports); p++ {
		if res.Ports[p].Len() > 0 {
			return errors.New("a key or timestamp function may not route to ports")
		}
	}
	main := res.Ports[0].Records
	if len(main)+len(res.Failed) != n || in.emitted != n {
		return fmt.Errorf("a key or timestamp function must answer each of the %d inputs once; got %d records and %d failures",
			n, len(main), len(res.Failed))
	}
	want, what := record.HasKey, "key"
	if in.m.opts.Function == Timestamp {
		want, what = record.HasTime, "time"
	}
	for i := range main {
		if main[i].Flags&want == 0 {
			return fmt.Errorf("output record %d (input %d) carries no %s", i, main[i].Pos, what)
		}
	}
	return nil
}

// stage prepares b for batch_read: extracts the declared fields. The size
// of the encoded batch is worked out by encode itself.
func (in *Instance) stage(b *record.Batch) error {
	in.in = b
	in.knownSize = 0
	ex := in.m.extractor
	n := len(b.Records)
	if ex != nil {
		in.fields = in.fields[:0]
		if cap(in.fEnd) < n {
			in.fEnd = make([]int, n)
			in.notJSON = make([]bool, n)
		}
		in.fEnd, in.notJSON = in.fEnd[:n], in.notJSON[:n]
		for i := range b.Records {
			var ok bool
			in.fields, ok = ex.Append(in.fields, b.Records[i].Value, &in.scratch)
			in.fEnd[i] = len(in.fields)
			in.notJSON[i] = !ok
		}
	}
	return nil
}

// encode writes the staged batch into dst, the guest's buffer, in one pass
// over the records, and returns the encoded size. When the batch does not
// fit, it stops writing, counts the size the rest needs and returns the
// total (> len(dst)): the guest grows its buffer and asks again.
func (in *Instance) encode(dst []byte) uint64 {
	b := in.in
	if in.knownSize != 0 && uint64(len(dst)) < in.knownSize {
		return in.knownSize // asked again with a buffer still too small (or a tick)
	}
	if len(dst) < hostabi.BatchHeaderSize {
		return in.size(0, hostabi.BatchHeaderSize)
	}
	hostabi.PutBatchHeader(dst, uint32(len(b.Records)))
	p := hostabi.BatchHeaderSize
	for i := range b.Records {
		r := &b.Records[i]
		kl, vl := len(r.Key), len(r.Value)
		flags, t, metaLen, fsec := in.parts(r, i)
		end := p + hostabi.RecordHeaderSize + kl + vl + metaLen + len(fsec)
		if end > len(dst) {
			return in.size(i, uint64(p))
		}
		start := p
		p = putRecord(dst, p, i, r, flags, t, metaLen, fsec)
		if in.timers {
			binary.LittleEndian.PutUint16(dst[start+4:], uint16(in.timerDomain))
		}
	}
	if in.stateSec != nil {
		if len(dst)-p < len(in.stateSec) {
			return in.size(len(b.Records), uint64(p))
		}
		binary.LittleEndian.PutUint32(dst[4:], hostabi.BatchFlagState)
		p += copy(dst[p:], in.stateSec)
	}
	return uint64(p)
}

// parts works out what putRecord writes of r, the k-th staged record (of
// the batch, or of an aggregate call's records): its header flags, event
// time, meta size and fields section.
func (in *Instance) parts(r *record.Record, k int) (flags uint8, t int64, metaLen int, fsec []byte) {
	if r.Flags&record.HasTime != 0 {
		flags |= hostabi.FlagHasTime
		t = r.Time
	}
	if r.Flags&record.HasKey != 0 {
		flags |= hostabi.FlagHasKey
	}
	for _, kv := range r.Meta {
		metaLen += hostabi.MetaEntrySize(kv.Key, kv.Value)
	}
	if in.m.extractor != nil {
		start := 0
		if k > 0 {
			start = in.fEnd[k-1]
		}
		fsec = in.fields[start:in.fEnd[k]]
		if in.notJSON[k] {
			flags |= hostabi.FlagNotJSON
		}
	}
	return flags, t, metaLen, fsec
}

// putRecord writes input record r (number i in its batch) at dst[p:],
// which has room for it, and returns the offset after it.
func putRecord(dst []byte, p, i int, r *record.Record, flags uint8, t int64, metaLen int, fsec []byte) int {
	kl, vl := len(r.Key), len(r.Value)
	d := dst[p : p+hostabi.RecordHeaderSize+kl+vl]
	binary.LittleEndian.PutUint64(d[0:], uint64(uint32(i))|uint64(flags)<<56)
	binary.LittleEndian.PutUint64(d[8:], uint64(t))
	binary.LittleEndian.PutUint64(d[16:], uint64(uint32(kl))|uint64(uint32(vl))<<32)
	binary.LittleEndian.PutUint64(d[24:], uint64(uint32(metaLen))|uint64(uint32(len(fsec)))<<32)
	if kl > 0 {
		copy(d[hostabi.RecordHeaderSize:], r.Key)
	}
	copy(d[hostabi.RecordHeaderSize+kl:], r.Value)
	p += len(d)
	if metaLen > 0 {
		for _, kv := range r.Meta {
			p += hostabi.PutMetaEntry(dst[p:], kv.Key, kv.Value)
		}
	}
	if len(fsec) > 0 {
		p += copy(dst[p:], fsec)
	}
	return p
}

// size returns the encoded size of the staged batch, given the size of its
// first `from` records.
func (in *Instance) size(from int, size uint64) (total uint64) {
	defer func() { in.knownSize = total }()
	recs := in.in.Records
	for i := from; i < len(recs); i++ {
		r := &recs[i]
		size += uint64(hostabi.RecordHeaderSize + len(r.Key) + len(r.Value))
		for _, kv := range r.Meta {
			size += uint64(hostabi.MetaEntrySize(kv.Key, kv.Value))
		}
	}
	if in.m.extractor != nil && from < len(recs) {
		size += uint64(len(in.fields))
		if from > 0 {
			size -= uint64(in.fEnd[from-1])
		}
	}
	return size + uint64(len(in.stateSec))
}

// logWriter forwards guest stdout/stderr (e.g. a Go panic trace) to the log.
type logWriter struct{ m *Module }

func (w *logWriter) Write(p []byte) (int, error) {
	w.m.opts.Logger.Warn("guest output", "module", w.m.name, "text", string(p))
	return len(p), nil
}
