// Package runtime is wsp's public API: load a pipeline file and run it.
//
//	p, err := runtime.Load("pipeline.yaml")
//	sum, err := p.Run(ctx, runtime.Options{Workers: 2})
//
// Everything else (the engine, connectors, config parsing) is internal; the
// plugin host is runtime/plugin and the record types are runtime/record.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/config"
	"github.com/wsp-project/wsp/runtime/internal/connect"
	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/internal/gobuild"
	"github.com/wsp-project/wsp/runtime/internal/ops"
	"github.com/wsp-project/wsp/runtime/internal/state"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// Options are the runtime settings of a run. Zero values take the defaults.
type Options struct {
	// Workers is the number of worker goroutines, each with its own
	// instance of every Wasm step. Default: the number of CPUs.
	Workers int
	// BatchSize is the largest batch wsp's own inputs produce. Default 1024.
	BatchSize int
	// MaxInFlight bounds input batches between read and acknowledgement
	// (memory bound and backpressure). Default 4 × Workers.
	MaxInFlight int
	// CacheDir holds compiled modules and built Go plugins. Default
	// $XDG_CACHE_HOME/wsp (usually ~/.cache/wsp).
	CacheDir string
	// StateDir, when set, holds checkpoints of the keyed state (windows,
	// timeseries), the watermarks and the input positions: wsp restores the
	// newest intact one at start and resumes from its positions. Default
	// "": no checkpoints (a crash loses open windows).
	StateDir string
	// CheckpointInterval is how often a checkpoint is taken with a StateDir.
	// Default 1 s.
	CheckpointInterval time.Duration
	// StateBackend is where checkpoints go in the StateDir: BackendPebble
	// (a Pebble database that writes only what changed since the last
	// checkpoint) or BackendFiles (a folder of files per checkpoint). The
	// working state is in memory with either. Default: the backend whose
	// checkpoints the folder holds, else Pebble.
	StateBackend string
	// FromSavepoint, when set (with a StateDir), is a savepoint folder (see
	// Savepoint) to start from instead of the StateDir's newest checkpoint.
	FromSavepoint string
	// ResetState names keyed steps (windows, timeseries helpers, Wasm
	// steps with keyed state) whose stored state is dropped once: they
	// start empty, and the state of a step removed from the pipeline is
	// left behind. Restarts with the same setting keep the state built
	// since (see engine.Checkpoints.Reset). It needs a StateDir. Default
	// none.
	ResetState []string
	// BenthosConnectors runs every input and output through Benthos, even
	// those wsp implements natively (file, stdin, stdout). Default false.
	BenthosConnectors bool
	// RetryInitial and RetryMax bound output retry backoff. Defaults 100 ms, 10 s.
	RetryInitial, RetryMax time.Duration
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives live counters (for the HTTP endpoints). Default a fresh set.
	Metrics *Metrics
	// HardStop, when done, abandons output retries during a graceful
	// stop (their input batches are nacked). Default: never.
	HardStop context.Context
	// Input, when set, replaces the pipeline's input section: an
	// application (or a benchmark) feeds batches itself. Default: the
	// pipeline's input.
	Input Input
	// Output, when set, replaces the pipeline's output section: results
	// are delivered to the application. Default: the pipeline's output.
	Output Output
}

// Input is a source of record batches (see Options.Input). Read returns the
// next batch and the function that acknowledges it, or ErrEndOfInput when a
// bounded input is done. It is called from one goroutine.
type Input = connect.Input

// Output receives result batches (see Options.Output), from one goroutine,
// in order; it returns nil once it has taken every record of the batch and
// keeps no reference to the batch afterwards.
type Output = connect.Output

// AckFunc acknowledges a batch handed out by an Input (a nil error) or
// reports that it could not be delivered.
type AckFunc = connect.AckFunc

// ErrEndOfInput is what an Input's Read returns at the end of a bounded input.
var ErrEndOfInput = connect.ErrEndOfInput

// Metrics are the live counters of a run.
type Metrics = engine.Metrics

// Summary is the counters at the end of a run.
type Summary = engine.Snapshot

// NewMetrics makes a counter set to pass in Options.Metrics.
func NewMetrics() *Metrics { return engine.NewMetrics() }

func (o *Options) validate() error {
	if o.Workers <= 0 {
		o.Workers = goruntime.NumCPU()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1024
	}
	if o.BatchSize > 1<<20 {
		return fmt.Errorf("batch size %d is too large (max 1048576)", o.BatchSize)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4 * o.Workers
	}
	if o.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			d = os.TempDir()
		}
		o.CacheDir = filepath.Join(d, "wsp")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.HardStop == nil {
		o.HardStop = context.Background()
	}
	switch o.StateBackend {
	case "", BackendPebble, BackendFiles:
	default:
		return fmt.Errorf("state backend %q: want %s or %s", o.StateBackend, BackendPebble, BackendFiles)
	}
	return nil
}

// Pipeline is a parsed pipeline file.
type Pipeline struct {
	cfg *config.Pipeline
}

// Load reads a pipeline file. `${VAR}` and `${VAR:default}` are expanded
// from the environment; relative module paths resolve against the file's
// folder, connector paths against the working directory (as in Benthos).
func Load(path string) (*Pipeline, error) {
	c, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return &Pipeline{cfg: c}, nil
}

// Parse parses pipeline YAML; dir resolves relative module paths.
func Parse(yaml []byte, dir string) (*Pipeline, error) {
	c, err := config.Parse(yaml, dir)
	if err != nil {
		return nil, err
	}
	return &Pipeline{cfg: c}, nil
}

// Run runs the pipeline until its input ends or ctx is done. On ctx done it
// stops reading, drains what is in flight, and returns. The Summary holds
// the counters either way.
func (p *Pipeline) Run(ctx context.Context, opts Options) (Summary, error) {
	if err := opts.validate(); err != nil {
		return Summary{}, err
	}
	r := &run{p: p, opts: opts}
	defer r.close()
	cfg, err := r.build(ctx)
	if err != nil {
		return opts.Metrics.Snapshot(), err
	}
	err = engine.Run(ctx, opts.HardStop, cfg)
	return opts.Metrics.Snapshot(), err
}

// run holds what one Run opened, to close it in reverse.
type run struct {
	p       *Pipeline
	opts    Options
	eng     *plugin.Engine
	modules []*plugin.Module
	// keyedSet: a window has set the keyed stage's watermark settings.
	keyedSet bool
	closers  []func(context.Context) error
}

func (r *run) close() {
	ctx := context.Background()
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i](ctx); err != nil {
			r.opts.Logger.Warn("close", "error", err)
		}
	}
}

func (r *run) connOpts(name string) connect.Options {
	return connect.Options{Native: !r.opts.BenthosConnectors, BatchSize: r.opts.BatchSize, Name: name}
}

func (r *run) output(ctx context.Context, name string, conf map[string]any) (engine.Output, error) {
	o, err := connect.NewOutput(ctx, conf, r.connOpts(name))
	if err != nil {
		return engine.Output{}, fmt.Errorf("%s: %w", name, err)
	}
	r.closers = append(r.closers, o.Close)
	return engine.Output{Name: name, Out: o}, nil
}

func (r *run) build(ctx context.Context) (engine.Config, error) {
	c := r.p.cfg
	o := r.opts
	eng, err := plugin.NewEngine(filepath.Join(o.CacheDir, "compiled"))
	if err != nil {
		return engine.Config{}, err
	}
	r.eng = eng
	r.closers = append(r.closers, eng.Close)
	cfg := engine.Config{
		InputName:    "input",
		Workers:      o.Workers,
		MaxInFlight:  o.MaxInFlight,
		RetryInitial: o.RetryInitial,
		RetryMax:     o.RetryMax,
		Logger:       o.Logger,
		Metrics:      o.Metrics,
	}
	if o.StateDir != "" {
		b, release, err := useBackend(o.StateDir, o.StateBackend)
		if err != nil {
			return engine.Config{}, err
		}
		r.closers = append(r.closers, func(context.Context) error { return release() })
		cfg.Checkpoints = &engine.Checkpoints{Store: b, Interval: o.CheckpointInterval, Reset: o.ResetState}
		if o.FromSavepoint != "" {
			cfg.Checkpoints.RestoreFrom = &state.Store{Dir: o.FromSavepoint}
		}
	} else if o.FromSavepoint != "" {
		return engine.Config{}, errors.New("from-savepoint needs a state-dir (where the run's own checkpoints go)")
	} else if len(o.ResetState) > 0 {
		return engine.Config{}, errors.New("reset-state needs a state-dir (the state it drops is there)")
	}
	lastKey := ""
	for _, s := range c.Steps {
		var st namedStep
		var err error
		switch {
		case s.Window != nil:
			var ws *ops.WindowStep
			if ws, err = r.windowStep(ctx, s, lastKey); err == nil {
				err = r.addKeyed(&cfg, s, ws)
				st = ws
			}
		case s.TimeSeries != nil:
			ts := &ops.TimeSeriesStep{StepName: s.Name, Field: s.TimeSeries.Field}
			for _, o := range s.TimeSeries.Outputs {
				out, perr := ops.ParseTSOutput(o.Name, o.Expr)
				if perr != nil {
					err = fmt.Errorf("step %s (line %d): %w", s.Name, o.Line, perr)
					break
				}
				ts.Outputs = append(ts.Outputs, out)
			}
			if err == nil {
				if err = ts.Validate(); err == nil {
					err = r.addKeyed(&cfg, s, ts)
					st = ts
				}
			}
		case s.Key != nil:
			if cfg.Keyed != nil {
				err = errors.New("a key step after a window re-keys the stream, which needs a second shuffle: not supported in this version (set the key before the first window)")
				break
			}
			ks := &ops.KeyStep{StepName: s.Name, From: ops.Source{Field: s.Key.Field, Bloblang: s.Key.Bloblang}}
			if err = ks.Validate(); err == nil {
				st = ks
			}
			lastKey = ""
			if f := s.Key.Field; f != "" {
				lastKey = f[strings.LastIndexByte(f, '.')+1:]
			}
		case s.EventTime != nil:
			e := s.EventTime
			ts := &ops.TimeStep{StepName: s.Name, From: ops.Source{Field: e.Field, Bloblang: e.Bloblang, Metadata: e.Metadata}, Format: ops.TimeFormat(e.Format)}
			if err = ts.Validate(); err == nil {
				st = ts
			}
		default:
			var ws *wasmStep
			if ws, err = r.wasmStep(ctx, s); err != nil {
				break
			}
			st = ws
			if s.Wasm.Function == "key" {
				lastKey = ""
			}
			if ws.m.Features()&hostabi.FeatureState != 0 {
				ss := &ops.StateStep{StepName: s.Name, Module: ws.m}
				err = r.addKeyed(&cfg, s, ss)
				st = ss
			}
		}
		// The plausible range of event times: a step of its own right after
		// the event_time step, whichever way that reads the time.
		var rangeStep *ops.TimeRangeStep
		if tr := s.TimeRange; err == nil && (tr.MaxAhead > 0 || tr.MaxBehind > 0) {
			rangeStep = &ops.TimeRangeStep{StepName: s.Name + ".range", MaxAhead: tr.MaxAhead, MaxBehind: tr.MaxBehind}
			err = rangeStep.Validate()
		}
		if err != nil {
			if strings.HasPrefix(err.Error(), "step ") {
				return cfg, err
			}
			return cfg, fmt.Errorf("step %s (line %d): %w", s.Name, s.Line, err)
		}
		if x, ok := st.(engine.Step); ok {
			appendStep(&cfg, x)
		}
		ports := map[string]engine.Output{}
		declared := map[string]bool{}
		for _, p := range st.Ports() {
			declared[p] = true
		}
		names := make([]string, 0, len(s.Outputs))
		for n := range s.Outputs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, pn := range names {
			if !declared[pn] {
				what := "the module declares"
				if s.Wasm == nil {
					what = "the step has"
				}
				return cfg, fmt.Errorf("step %s (line %d): outputs.%s: %s no port %q (it has: %s)",
					s.Name, s.Line, pn, what, pn, strings.Join(st.Ports(), ", "))
			}
			po, err := r.output(ctx, s.Name+"."+pn, s.Outputs[pn])
			if err != nil {
				return cfg, err
			}
			ports[pn] = po
		}
		cfg.PortOutputs = append(cfg.PortOutputs, ports)
		if rangeStep != nil {
			appendStep(&cfg, rangeStep)
			cfg.PortOutputs = append(cfg.PortOutputs, map[string]engine.Output{})
		}
	}
	if o.Input != nil {
		cfg.Input = o.Input
	} else if c.Input == nil {
		return cfg, errors.New("no input section")
	} else {
		in, err := connect.NewInput(ctx, c.Input, r.connOpts("input"))
		if err != nil {
			return cfg, fmt.Errorf("input: %w", err)
		}
		r.closers = append(r.closers, in.Close)
		cfg.Input = in
	}
	if o.Output != nil {
		cfg.Output = engine.Output{Name: "output", Out: o.Output}
	} else if c.Output == nil {
		return cfg, errors.New("no output section")
	} else if cfg.Output, err = r.output(ctx, "output", c.Output); err != nil {
		return cfg, err
	}
	eo := c.ErrorOutput
	if eo == nil {
		eo = config.DefaultErrorOutput(c.Output)
		if o.Output != nil {
			eo = config.DefaultErrorOutput(nil)
		}
	}
	if cfg.ErrorOutput, err = r.output(ctx, "error_output", eo); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// wasmStep loads a step's module, building Go sources first when needed.
func (r *run) wasmStep(ctx context.Context, s config.Step) (*wasmStep, error) {
	m, err := r.loadModule(ctx, s, s.Wasm)
	if err != nil {
		return nil, err
	}
	return &wasmStep{name: s.Name, m: m}, nil
}

// loadModule loads the module w of step s (building a Go source folder).
func (r *run) loadModule(ctx context.Context, s config.Step, w *config.Wasm) (*plugin.Module, error) {
	path := w.Module
	if gobuild.IsSource(path) {
		built, err := gobuild.Build(ctx, path, r.opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("step %s (line %d): %w", s.Name, s.Line, err)
		}
		path = built
	} else if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("step %s (line %d): module: %w", s.Name, s.Line, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("step %s (line %d): module %s is a folder without Go files", s.Name, s.Line, path)
	}
	var cfgJSON []byte
	if w.Config != nil {
		b, err := json.Marshal(w.Config)
		if err != nil {
			return nil, fmt.Errorf("step %s: config: %w", s.Name, err)
		}
		cfgJSON = b
	}
	m, err := r.eng.LoadFile(ctx, path, plugin.Options{
		Name:        s.Name + "(" + filepath.Base(w.Module) + ")",
		Function:    plugin.Function(w.Function),
		Config:      cfgJSON,
		MemoryLimit: w.MemoryLimit,
		Timeout:     w.Timeout,
		Grants:      plugin.Grants{Clock: w.Grants.Clock, Random: w.Grants.Random, Env: w.Grants.Env},
		Logger:      r.opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("step %s (line %d): %w", s.Name, s.Line, err)
	}
	r.closers = append(r.closers, m.Close)
	return m, nil
}

// wasmStep runs a Wasm module's batch function.
type wasmStep struct {
	name string
	m    *plugin.Module
}

func (s *wasmStep) Name() string    { return s.name }
func (s *wasmStep) Ports() []string { return s.m.Ports() }

func (s *wasmStep) NewWorker(ctx context.Context) (engine.StepWorker, error) {
	in, err := s.m.Instance(ctx)
	if err != nil {
		return nil, err
	}
	return &wasmWorker{in: in}, nil
}

type wasmWorker struct{ in *plugin.Instance }

func (w *wasmWorker) Process(ctx context.Context, b *record.Batch) (*plugin.Result, error) {
	res := &plugin.Result{}
	if err := w.in.Call(ctx, b, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (w *wasmWorker) Close(ctx context.Context) error { return w.in.Close(ctx) }

// IsGoSource reports whether path is a Go plugin source folder.
// namedStep is what the engine's Step and KeyedStep share.
type namedStep interface {
	Name() string
	Ports() []string
}

// windowStep builds a window step; keyName is the last key field's name.
func (r *run) windowStep(ctx context.Context, s config.Step, keyName string) (*ops.WindowStep, error) {
	w := s.Window
	ws := &ops.WindowStep{
		StepName: s.Name,
		Size:     w.Size.Milliseconds(),
		Offset:   w.Offset.Milliseconds(),
		Lateness: w.Lateness.Milliseconds(),
		KeyName:  w.KeyName,
		// emission "updates"
		EarlyEveryMs:      w.EarlyEvery.Milliseconds(),
		EarlyEveryRecords: w.EarlyEveryRecords,
	}
	switch w.Type {
	case "sliding":
		ws.Slide = w.Slide.Milliseconds()
	case "processing_time":
		ws.Slide = w.Slide.Milliseconds() // 0: tumbling
		ws.ProcessingTime = true
	case "session":
		ws.Gap = w.Gap.Milliseconds()
	case "global":
		ws.Count = w.Count
	}
	if ws.KeyName == "" {
		ws.KeyName = keyName
	}
	for _, a := range w.Aggregates {
		agg, err := ops.ParseAgg(a.Name, a.Expr)
		if err != nil {
			return nil, fmt.Errorf("step %s (line %d): %w", s.Name, a.Line, err)
		}
		ws.Aggs = append(ws.Aggs, agg)
	}
	if _, ok := s.Outputs["late"]; ok {
		ws.LateOutput = true
	}
	if w.Aggregate != nil {
		a := *w.Aggregate
		a.Function = string(plugin.Aggregate)
		m, err := r.loadModule(ctx, s, &a)
		if err != nil {
			return nil, err
		}
		ws.Aggregate = m
	}
	if err := ws.Validate(); err != nil {
		return nil, err
	}
	return ws, nil
}

// addKeyed appends a keyed step to the keyed stage, starting it with the
// first one. The stage's watermark settings come from its first window;
// later windows must agree or leave them unset.
func (r *run) addKeyed(cfg *engine.Config, s config.Step, st engine.KeyedStep) error {
	if cfg.Keyed == nil {
		cfg.Keyed = &engine.Keyed{}
	}
	// Watermark settings: a window's, or a keyed-state module's.
	var ooo, idle time.Duration
	var maxPar int
	set := false
	if w := s.Window; w != nil {
		ooo, idle, maxPar, set = w.OutOfOrder, w.IdleTimeout, w.MaxParallelism, true
	} else if w := s.Wasm; w != nil {
		ooo, idle, set = w.OutOfOrder, w.IdleTimeout, w.OutOfOrder != 0 || w.IdleTimeout != 0
	}
	if k := cfg.Keyed; set {
		if !r.keyedSet {
			r.keyedSet = true
			k.OutOfOrder, k.IdleTimeout, k.MaxParallelism = ooo.Milliseconds(), idle, maxPar
		} else if (ooo != 0 && ooo.Milliseconds() != k.OutOfOrder) || (idle != 0 && idle != k.IdleTimeout) ||
			(maxPar != 0 && maxPar != k.MaxParallelism) {
			return errors.New("a later keyed step shares the first one's watermark and key groups: leave its watermark and max_parallelism unset or equal")
		}
	}
	cfg.Keyed.Chain = append(cfg.Keyed.Chain, engine.ChainStep{Keyed: st})
	// Processing-time windows and keyed state (time-to-live, processing-
	// time timers) need the clock's ticks. Records need an event time only
	// for event-time windows and timeseries steps.
	needTime := false
	for _, c := range cfg.Keyed.Chain {
		switch x := c.Keyed.(type) {
		case *ops.WindowStep:
			if x.ProcessingTime {
				cfg.Keyed.ProcessingTime = true
			} else {
				needTime = true
			}
		case *ops.StateStep:
			cfg.Keyed.ProcessingTime = true
		case nil:
		default:
			needTime = true
		}
	}
	cfg.Keyed.NoEventTime = !needTime
	return nil
}

func IsGoSource(path string) bool { return gobuild.IsSource(path) }

// BuildGoPlugin builds a Go plugin source folder into a .wasm module under
// cacheDir (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared) and returns its
// path; an unchanged plugin is not rebuilt.
func BuildGoPlugin(ctx context.Context, dir, cacheDir string) (string, error) {
	return gobuild.Build(ctx, dir, cacheDir)
}

// appendStep adds a stateless step: to the keyed stage's chain once there
// is one (it then runs on the key's worker), else before it.
func appendStep(cfg *engine.Config, st engine.Step) {
	if cfg.Keyed != nil {
		cfg.Keyed.Chain = append(cfg.Keyed.Chain, engine.ChainStep{Step: st})
	} else {
		cfg.Steps = append(cfg.Steps, st)
	}
}
