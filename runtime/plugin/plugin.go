// Package plugin loads wsp guest modules (WebAssembly, ABI v1: see
// hostabi/ABI.md) on wazero and runs batches through them.
//
// Ownership and concurrency:
//
//  1. An Engine owns the on-disk compilation cache and is shared by every
//     module of a process. It is safe for concurrent use.
//  2. A Module is one loaded module version with its limits: its own wazero
//     runtime (memory limit is a runtime setting), its compiled code, and the
//     fields and ports its instances declared. It is safe for concurrent use;
//     compiled code is shared by all its instances.
//  3. An Instance is one instantiation. It belongs to one goroutine at a
//     time (a worker); it is never shared. After a fault (trap, time-out,
//     bad pointer, malformed output) it replaces its wazero module before the
//     next call, so a fault never leaks into later batches.
//
// Invariants: the host never calls a guest allocator, never keeps a guest
// pointer after a host function returns, and never panics on guest input:
// every guest fault becomes an *Error naming the module and the export.
package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/jsonfields"
)

// Function selects which batch export a step calls.
type Function string

// The batch functions of ABI v1.
const (
	Process   Function = "process"
	Key       Function = "key"
	Timestamp Function = "timestamp"
)

// Export is the Wasm export name of f.
func (f Function) Export() string {
	switch f {
	case Key:
		return hostabi.ExportKey
	case Timestamp:
		return hostabi.ExportTimestamp
	case Aggregate:
		return hostabi.ExportAggAdd
	default:
		return hostabi.ExportProcess
	}
}

// Grants widen the sandbox. The zero value grants nothing.
type Grants struct {
	// Clock gives the guest the real wall and monotonic clocks. Default
	// false: a clock that starts at the epoch and ticks deterministically.
	Clock bool
	// Random gives the guest crypto/rand. Default false: a fixed-seed source.
	Random bool
	// Env lists environment variables copied into the guest. Default none.
	Env []string
}

// Options configure a Module. Zero values take the documented defaults.
type Options struct {
	// Name names the module in errors and logs; default the file name.
	Name string
	// Function is the batch export a step calls. Default Process.
	Function Function
	// Config is handed to the guest through config_read (JSON). Default empty.
	Config []byte
	// MemoryLimit caps guest linear memory, in bytes, rounded up to 64 KiB
	// pages. Default 256 MiB.
	MemoryLimit int64
	// Timeout caps one call into the guest (wsp_init or one batch). Default
	// 10 s. NoTimeout turns the limit off for a trusted module: wazero then
	// compiles no termination checks into its loops, which makes Go guests
	// (whose every function is a loop) about twice as fast, but a module
	// that never returns then hangs its worker.
	Timeout time.Duration
	// Grants widen the sandbox; default none.
	Grants Grants
	// Logger receives the guest's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultMemoryLimit = 256 << 20
	DefaultTimeout     = 10 * time.Second
	// NoTimeout disables the per-call time limit (Options.Timeout).
	NoTimeout time.Duration = -1
)

func (o *Options) validate() error {
	if o.Function == "" {
		o.Function = Process
	}
	switch o.Function {
	case Process, Key, Timestamp, Aggregate:
	default:
		return fmt.Errorf("unknown function %q (want process, key, timestamp or aggregate)", o.Function)
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = DefaultMemoryLimit
	}
	if o.MemoryLimit < 64<<10 || o.MemoryLimit > 4<<30 {
		return fmt.Errorf("memory_limit %d out of range [64KiB, 4GiB]", o.MemoryLimit)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < 0 && o.Timeout != NoTimeout {
		return fmt.Errorf("timeout %s must be positive", o.Timeout)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Engine compiles modules, caching compiled code on disk by content hash.
type Engine struct {
	cache wazero.CompilationCache
	dir   string
}

// NewEngine makes an engine whose compiled code is cached in dir ("" keeps
// it in memory only).
func NewEngine(dir string) (*Engine, error) {
	if dir == "" {
		return &Engine{cache: wazero.NewCompilationCache()}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plugin: compilation cache: %w", err)
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin: compilation cache %s: %w", dir, err)
	}
	return &Engine{cache: c, dir: dir}, nil
}

// Close releases the engine's cache (not the files on disk).
func (e *Engine) Close(ctx context.Context) error { return e.cache.Close(ctx) }

// Module is a loaded, validated module version.
type Module struct {
	name     string
	path     string
	hash     string
	opts     Options
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	features hostabi.Feature
	exports  map[string]api.FunctionDefinition
	// byTick: time-outs set the global the load-time rewrite added
	// (interrupt.go) instead of closing the module through wazero.
	byTick bool

	// Declared by the first instance's wsp_init; later instances must
	// declare the same (they run the same code with the same config).
	mu           sync.Mutex
	declared     bool
	fieldPaths   []string
	ports        []string              // ports[i] is port i+1
	accSize      int                   // agg_size: fixed accumulator size; 0 for variable
	stateVersion uint32                // state_version (0: none declared)
	results      []hostabi.ResultField // agg_result: typed result fields; nil for JSON text
	resultFmt    *hostabi.ResultFormat // formats results; nil when results is
	extractor    *jsonfields.Extractor

	eager *Instance // made at load to fail fast; handed to the first worker (under mu)
}

// Name is the module's name in errors.
func (m *Module) Name() string { return m.name }

// Hash is the hex SHA-256 of the module bytes.
func (m *Module) Hash() string { return m.hash }

// Features are the feature bits the module declared.
func (m *Module) Features() hostabi.Feature {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.features
}

// Fields are the JSON field paths the module declared, in order.
func (m *Module) Fields() []string { return m.fieldPaths }

// Ports are the output port names the module declared; port i+1 is Ports()[i].
func (m *Module) Ports() []string { return m.ports }

// Function is the batch export this module's instances call.
func (m *Module) Function() Function { return m.opts.Function }

// LoadFile reads and loads a module file.
func (e *Engine) LoadFile(ctx context.Context, path string, opts Options) (*Module, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plugin: %w", err)
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(path)
	}
	m, err := e.Load(ctx, b, opts)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	m.path = path
	return m, nil
}

var wasmMagic = []byte{0x00, 'a', 's', 'm'}

// Load compiles and validates module bytes, instantiating one instance
// eagerly so a bad module fails here and not on the first batch. Errors say
// what is wrong with the module; LoadFile adds the file name.
func (e *Engine) Load(ctx context.Context, wasm []byte, opts Options) (*Module, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], wasmMagic) {
		return nil, errors.New("not a WebAssembly module (missing the \\0asm header)")
	}
	if hasStart(wasm) {
		return nil, errors.New("module has a start section: its start function would run outside the time limit; ABI v1 modules are reactors and initialise in _initialize")
	}
	sum := sha256.Sum256(wasm)
	// Time limits: by the stop global the rewrite adds (cheap), or by
	// wazero's termination mode when the module cannot be rewritten or may
	// block in a host call (a real clock lets it sleep). See interrupt.go.
	limited := opts.Timeout != NoTimeout
	code, byTick := wasm, false
	if limited && !opts.Grants.Clock {
		if inst, err := instrument(wasm); err == nil {
			code, byTick = inst, true
		} else {
			opts.Logger.Debug("module not instrumented; using wazero's termination checks", "module", opts.Name, "error", err)
		}
	}
	pages := uint32((opts.MemoryLimit + 65535) / 65536)
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(limited && !byTick)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	m := &Module{name: opts.Name, hash: hex.EncodeToString(sum[:]), opts: opts, rt: rt, byTick: byTick}
	if m.name == "" {
		m.name = "module-" + m.hash[:12]
	}
	ok := false
	defer func() {
		if !ok {
			_ = rt.Close(ctx)
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, fmt.Errorf("wasi: %w", err)
	}
	if err := instantiateHost(ctx, rt); err != nil {
		return nil, err
	}
	compiled, err := rt.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("invalid module: %w", err)
	}
	m.compiled = compiled
	if err := m.checkShape(); err != nil {
		return nil, err
	}
	inst, err := m.newInstance(ctx)
	if err != nil {
		return nil, err
	}
	m.eager = inst
	ok = true
	return m, nil
}

// Close releases the module's runtime and every instance.
func (m *Module) Close(ctx context.Context) error { return m.rt.Close(ctx) }

// checkShape validates exports and imports against ABI v1 before running
// anything.
func (m *Module) checkShape() error {
	c := m.compiled
	if len(c.ExportedMemories()) == 0 {
		return errors.New("module exports no memory (ABI v1 needs an export named \"memory\")")
	}
	if _, ok := c.ExportedMemories()[hostabi.ExportMemory]; !ok {
		return errors.New("module's memory is not exported as \"memory\"")
	}
	m.exports = c.ExportedFunctions()
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := []struct {
		name     string
		params   []api.ValueType
		results  []api.ValueType
		required bool
	}{
		{hostabi.ExportABI, nil, []api.ValueType{i64}, true},
		{hostabi.ExportInit, nil, []api.ValueType{i32}, false},
		{hostabi.ExportProcess, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{hostabi.ExportKey, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{hostabi.ExportTimestamp, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{hostabi.ExportAggAdd, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{hostabi.ExportAggMerge, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{hostabi.ExportAggFinish, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{hostabi.ExportOnTimer, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{hostabi.ExportInitialize, nil, nil, false},
	}
	if _, ok := m.exports[hostabi.ExportABI]; !ok {
		if _, start := m.exports[hostabi.ExportStart]; start {
			return errors.New("command module (exports _start but not wsp_abi): ABI v1 needs a reactor module (Go: -buildmode=c-shared; clang: -mexec-model=reactor)")
		}
		return errors.New("missing export wsp_abi: not a wsp module (see hostabi/ABI.md)")
	}
	for _, w := range want {
		def, ok := m.exports[w.name]
		if !ok {
			if w.required {
				return fmt.Errorf("missing export %s", w.name)
			}
			continue
		}
		if !sameTypes(def.ParamTypes(), w.params) || !sameTypes(def.ResultTypes(), w.results) {
			return fmt.Errorf("export %s has signature %s, want %s", w.name,
				sig(def.ParamTypes(), def.ResultTypes()), sig(w.params, w.results))
		}
	}
	fns := []string{m.opts.Function.Export()}
	if m.opts.Function == Aggregate {
		fns = []string{hostabi.ExportAggAdd, hostabi.ExportAggMerge, hostabi.ExportAggFinish}
	}
	for _, fn := range fns {
		if _, ok := m.exports[fn]; !ok {
			return fmt.Errorf("missing export %s (needed for function %q)", fn, m.opts.Function)
		}
	}
	for _, imp := range c.ImportedFunctions() {
		mod, name, _ := imp.Import()
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
		case hostabi.ImportModule:
			s, ok := hostSignatures[name]
			if !ok {
				return fmt.Errorf("imports unknown host function %s.%s (ABI v1 has %s)", mod, name, hostNames())
			}
			if !sameTypes(imp.ParamTypes(), s.params) || !sameTypes(imp.ResultTypes(), s.results) {
				return fmt.Errorf("imports %s.%s with signature %s, want %s", mod, name,
					sig(imp.ParamTypes(), imp.ResultTypes()), sig(s.params, s.results))
			}
		default:
			return fmt.Errorf("imports %s.%s from module %q: only %q and %q are provided",
				mod, name, mod, hostabi.ImportModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sig(params, results []api.ValueType) string {
	f := func(ts []api.ValueType) string {
		s := "("
		for i, t := range ts {
			if i > 0 {
				s += ", "
			}
			s += api.ValueTypeName(t)
		}
		return s + ")"
	}
	return f(params) + " -> " + f(results)
}

// checkABI validates the result of wsp_abi.
func (m *Module) checkABI(v uint64) error {
	version := uint32(v)
	feats := hostabi.Feature(v >> 32)
	if version != hostabi.Version {
		return fmt.Errorf("module is built for ABI version %d; this wsp implements version %d", version, hostabi.Version)
	}
	if extra := feats &^ hostabi.FeaturesV1; extra != 0 {
		return fmt.Errorf("module requires feature(s) %v, which this wsp does not implement", extra.Names())
	}
	if err := m.checkStateShape(feats); err != nil {
		return err
	}
	if m.opts.Function == Aggregate && feats&hostabi.FeatureAggregate == 0 {
		return errors.New("module is used as an aggregate but wsp_abi does not set the aggregate feature bit (is an Aggregate registered?)")
	}
	m.mu.Lock()
	m.features = feats
	m.mu.Unlock()
	return nil
}

// declare records the fields, ports, accumulator size and result fields
// an instance declared in wsp_init, checking that every instance declares
// the same.
func (m *Module) declare(fields, ports []string, accSize int, results []hostabi.ResultField, stateVersion *uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sv uint32
	if stateVersion != nil {
		if m.features&hostabi.FeatureState == 0 {
			return errors.New("state_version called by a module without the state feature")
		}
		sv = *stateVersion
	}
	if m.declared {
		if !equalStrings(fields, m.fieldPaths) || !equalStrings(ports, m.ports) || accSize != m.accSize ||
			!equalResults(results, m.results) || sv != m.stateVersion {
			return errors.New("wsp_init declared different fields, ports, accumulator size, results or state version than the first instance")
		}
		return nil
	}
	m.stateVersion = sv
	if len(fields) > 0 {
		ex, err := jsonfields.New(fields)
		if err != nil {
			return err
		}
		m.extractor = ex
	}
	if results != nil {
		m.resultFmt = hostabi.NewResultFormat(results)
	}
	m.fieldPaths, m.ports, m.accSize, m.results, m.declared = fields, ports, accSize, results, true
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Exports lists the module's exported function names.
func (m *Module) Exports() []string {
	out := make([]string, 0, len(m.exports))
	for n := range m.exports {
		out = append(out, n)
	}
	return out
}
