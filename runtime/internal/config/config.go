// Package config parses a wsp pipeline file:
//
//	input:        any Benthos v4 input config
//	pipeline:     a list of steps: wasm, key, event_time, window
//	output:       any Benthos v4 output config
//	error_output: optional; any Benthos v4 output config for failed records
//
// `${VAR}` and `${VAR:default}` are expanded from the environment before
// parsing, as Benthos does; `${! ... }` interpolations are left for Benthos.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pipeline is a parsed pipeline file.
type Pipeline struct {
	// Path is the file it came from ("" when parsed from bytes); Dir is
	// the folder relative module paths are resolved against.
	Path, Dir string

	Input       map[string]any
	Steps       []Step
	Output      map[string]any
	ErrorOutput map[string]any // nil: the default (see DefaultErrorOutput)
}

// Step is one entry of `pipeline:`.
type Step struct {
	Name        string                    // `name:`, default "<kind><n>", the n-th step of its kind, e.g. "wasm1"
	defaultName bool                      // Name is the default
	Wasm        *Wasm                     // a Wasm step (also a key or event_time step given by a module)
	Key         *Extract                  // a key step read by the host
	EventTime   *Extract                  // an event_time step read by the host
	TimeRange   TimeRange                 // event_time: the plausible range (either kind of event_time step)
	Window      *Window                   // a window step
	TimeSeries  *TimeSeries               // a timeseries step
	Outputs     map[string]map[string]any // port name -> Benthos output config
	Line        int                       // line in the file, for errors
}

// Wasm configures a Wasm step.
type Wasm struct {
	// Module is a .wasm file or a Go source folder that wsp builds; a
	// relative path is resolved against the pipeline file's folder.
	Module      string
	Function    string        // process (default), key or timestamp
	Config      any           // handed to the guest as JSON
	Timeout     time.Duration // per call; 0 = plugin default (10 s); -1 = none (`timeout: none`)
	MemoryLimit int64         // bytes; 0 = plugin default (256 MiB)
	Grants      Grants
	// Watermark settings for a module with keyed state, when no window
	// before it sets them (`watermark: {out_of_orderness, idle_timeout}`).
	OutOfOrder, IdleTimeout time.Duration
}

// Extract says where a key or an event time is read: one of a JSON field
// path, a Bloblang query or (event time only) a metadata key.
type Extract struct {
	Field    string
	Bloblang string
	Metadata string
	Format   string // event time: auto (default), epoch_ms, epoch_s, rfc3339
}

// TimeRange is the plausible range of event times, relative to the
// processing clock: a record more than MaxAhead ahead of it, or (when
// MaxBehind > 0) more than MaxBehind behind it, goes to the error output
// instead of moving the watermark. Zero values: no bound.
type TimeRange struct {
	MaxAhead, MaxBehind time.Duration
}

// Window configures a window step. Durations are whole milliseconds.
type Window struct {
	Type                string // tumbling, sliding or session
	Size, Slide, Offset time.Duration
	Gap                 time.Duration // session
	Count               int64         // global: fire every Count records
	OutOfOrder          time.Duration // watermark.out_of_orderness
	IdleTimeout         time.Duration // watermark.idle_timeout; 0 = never
	Lateness            time.Duration // allowed_lateness
	KeyName             string        // the result's key field; default: the key field's name, else "key"
	Emit                string        // final (default) or updates
	EarlyEvery          time.Duration // updates: early results each time the watermark passes a multiple
	EarlyEveryRecords   int64         // updates: early results every N records of a window
	Aggregates          []NamedAgg    // in file order
	MaxParallelism      int           // key groups; 0 = 128
	Aggregate           *Wasm         // a Wasm aggregate module (function aggregate)
}

// TimeSeries configures a timeseries step: per-key helpers over one field.
type TimeSeries struct {
	Field   string
	Outputs []NamedAgg // name: helper(args), in file order
}

// NamedAgg is one entry of window.aggregates: name: kind(field).
type NamedAgg struct {
	Name, Expr string
	Line       int
}

// Grants widen a Wasm step's sandbox.
type Grants struct {
	Clock  bool     `yaml:"clock"`
	Random bool     `yaml:"random"`
	Env    []string `yaml:"env"`
}

// envRe matches ${VAR} and ${VAR:default}, not ${! ...}.
var envRe = regexp.MustCompile(`\$\{([0-9A-Za-z_.]+)(:((\$\{[^}]+\})|[^}])*)?\}`)

// ExpandEnv replaces ${VAR} and ${VAR:default} with environment values.
// An unset variable without a default expands to "" and is reported in missing.
func ExpandEnv(b []byte, lookup func(string) (string, bool)) (out []byte, missing []string) {
	out = envRe.ReplaceAllFunc(b, func(m []byte) []byte {
		inner := string(m[2 : len(m)-1])
		name, def, hasDef := strings.Cut(inner, ":")
		if v, ok := lookup(name); ok && v != "" {
			return []byte(v)
		}
		if hasDef {
			return []byte(def)
		}
		missing = append(missing, name)
		return nil
	})
	return out, missing
}

// Load reads and parses a pipeline file.
func Load(path string) (*Pipeline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, _ := filepath.Abs(path)
	p, err := Parse(b, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	p.Path = path
	return p, nil
}

// Parse parses pipeline YAML; dir resolves relative module paths.
func Parse(b []byte, dir string) (*Pipeline, error) {
	b, missing := ExpandEnv(b, os.LookupEnv)
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("environment variable(s) not set and without a default: %s", strings.Join(missing, ", "))
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("a pipeline file must be a YAML mapping with input, pipeline and output")
	}
	p := &Pipeline{Dir: dir}
	doc := root.Content[0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		var err error
		switch k.Value {
		case "input":
			p.Input, err = component(v, "input")
		case "output":
			p.Output, err = component(v, "output")
		case "error_output":
			p.ErrorOutput, err = component(v, "error_output")
		case "pipeline":
			p.Steps, err = steps(v, dir)
		case "http", "logger", "metrics", "tracer", "shutdown_timeout", "input_resources", "output_resources":
			err = fmt.Errorf("line %d: %q is a Benthos stream setting; wsp takes runtime settings from flags, WSP_* variables or its config file", k.Line, k.Value)
		default:
			err = fmt.Errorf("line %d: unknown section %q (want input, pipeline, output, error_output)", k.Line, k.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	// A missing input or output is reported when the pipeline runs: an
	// application may supply its own (runtime.Options.Input, Output).
	return p, nil
}

func component(n *yaml.Node, what string) (map[string]any, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: %s must be a mapping (a Benthos %s config)", n.Line, what, strings.TrimPrefix(what, "error_"))
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return nil, fmt.Errorf("line %d: %s: %w", n.Line, what, err)
	}
	return m, nil
}

func steps(n *yaml.Node, dir string) ([]Step, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: pipeline must be a list of steps", n.Line)
	}
	var out []Step
	type named struct {
		line  int
		deflt bool // the name is a default
	}
	seen := map[string]named{}
	ofKind := map[string]int{} // steps of each kind so far, for default names
	for i, sn := range n.Content {
		s, err := step(sn, i, dir, ofKind)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[s.Name]; dup {
			why := ""
			if s.defaultName || prev.deflt {
				why = " (a default name of an unnamed step: give that step a name)"
			}
			return nil, fmt.Errorf("line %d: step name %q already used on line %d%s", sn.Line, s.Name, prev.line, why)
		}
		seen[s.Name] = named{sn.Line, s.defaultName}
		out = append(out, s)
	}
	return out, nil
}

func step(n *yaml.Node, i int, dir string, ofKind map[string]int) (Step, error) {
	s := Step{Line: n.Line}
	var kinds []string
	if n.Kind != yaml.MappingNode {
		return s, fmt.Errorf("line %d: step %d must be a mapping such as {wasm: {module: ...}}", n.Line, i+1)
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		switch k.Value {
		case "name":
			s.Name = v.Value
		case "wasm":
			w, err := wasm(v, dir)
			if err != nil {
				return s, err
			}
			s.Wasm = w
		case "key", "event_time":
			e, w, tr, err := extract(k.Value, v, dir)
			if err != nil {
				return s, err
			}
			s.TimeRange = tr
			if w != nil {
				w.Function = map[string]string{"key": "key", "event_time": "timestamp"}[k.Value]
				s.Wasm = w
			} else if k.Value == "key" {
				if e.Format != "" || e.Metadata != "" {
					return s, fmt.Errorf("line %d: key: want field, bloblang or wasm", v.Line)
				}
				s.Key = e
			} else {
				s.EventTime = e
			}
			kinds = append(kinds, k.Value)
		case "window":
			w, err := windowConf(v, dir)
			if err != nil {
				return s, err
			}
			s.Window = w
			kinds = append(kinds, k.Value)
		case "timeseries":
			ts, err := timeSeriesConf(v)
			if err != nil {
				return s, err
			}
			s.TimeSeries = ts
			kinds = append(kinds, k.Value)
		case "outputs":
			if v.Kind != yaml.MappingNode {
				return s, fmt.Errorf("line %d: outputs must map port names to output configs", v.Line)
			}
			s.Outputs = map[string]map[string]any{}
			for p := 0; p+1 < len(v.Content); p += 2 {
				c, err := component(v.Content[p+1], "outputs."+v.Content[p].Value)
				if err != nil {
					return s, err
				}
				s.Outputs[v.Content[p].Value] = c
			}
		default:
			return s, fmt.Errorf("line %d: unknown step field %q (want name, wasm, key, event_time, window, timeseries, outputs)", k.Line, k.Value)
		}
		if k.Value == "wasm" {
			kinds = append(kinds, k.Value)
		}
	}
	switch len(kinds) {
	case 0:
		return s, fmt.Errorf("line %d: step %d has no kind (want wasm, key, event_time, window or timeseries)", n.Line, i+1)
	case 1:
	default:
		return s, fmt.Errorf("line %d: step %d has several kinds (%s): one per step", n.Line, i+1, strings.Join(kinds, ", "))
	}
	// The default name counts the steps of its kind only, so a step of
	// another kind added before it does not rename it (keyed state is
	// found by name across pipeline edits).
	ofKind[kinds[0]]++
	if s.Name == "" {
		s.Name, s.defaultName = fmt.Sprintf("%s%d", kinds[0], ofKind[kinds[0]]), true
	}
	return s, nil
}

// dur parses a duration of whole milliseconds.
func dur(v *yaml.Node, d *time.Duration) error {
	x, err := time.ParseDuration(v.Value)
	if err != nil {
		return err
	}
	if x%time.Millisecond != 0 {
		return fmt.Errorf("%s: windows count whole milliseconds", v.Value)
	}
	*d = x
	return nil
}

// fields parses a mapping of durations (what names it in errors).
func fields(v *yaml.Node, what string, set map[string]*time.Duration) error {
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("%s must be a mapping", what)
	}
	for j := 0; j+1 < len(v.Content); j += 2 {
		k := v.Content[j]
		d, ok := set[k.Value]
		if !ok {
			return fmt.Errorf("line %d: %s.%s: unknown field", k.Line, what, k.Value)
		}
		if err := dur(v.Content[j+1], d); err != nil {
			return fmt.Errorf("line %d: %s.%s: %w", k.Line, what, k.Value, err)
		}
	}
	return nil
}

func wasm(n *yaml.Node, dir string) (*Wasm, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: wasm must be a mapping with at least module", n.Line)
	}
	w := &Wasm{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		var err error
		switch k.Value {
		case "module":
			w.Module = v.Value
		case "function":
			w.Function = v.Value
			switch w.Function {
			case "process", "key", "timestamp":
			default:
				err = fmt.Errorf("line %d: wasm.function %q: want process, key or timestamp", v.Line, v.Value)
			}
		case "config":
			err = v.Decode(&w.Config)
		case "timeout":
			if v.Value == "none" {
				w.Timeout = -1 // plugin.NoTimeout
				break
			}
			w.Timeout, err = time.ParseDuration(v.Value)
			if err == nil && w.Timeout <= 0 {
				err = errors.New(`must be positive, or "none" for a trusted module`)
			}
		case "memory_limit":
			w.MemoryLimit, err = ParseBytes(v.Value)
		case "grants":
			err = v.Decode(&w.Grants)
		case "watermark":
			err = fields(v, "wasm.watermark", map[string]*time.Duration{"out_of_orderness": &w.OutOfOrder, "idle_timeout": &w.IdleTimeout})
		default:
			err = fmt.Errorf("unknown field (want module, function, config, timeout, memory_limit, grants, watermark)")
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: wasm.%s: %w", k.Line, k.Value, err)
		}
	}
	if w.Module == "" {
		return nil, fmt.Errorf("line %d: wasm.module is required (a .wasm file or a Go source folder)", n.Line)
	}
	if !filepath.IsAbs(w.Module) {
		w.Module = filepath.Join(dir, w.Module)
	}
	return w, nil
}

// extract parses a key or event_time step: field, bloblang, metadata,
// format, or wasm (a module's key or timestamp export).
func extract(what string, n *yaml.Node, dir string) (*Extract, *Wasm, TimeRange, error) {
	var tr TimeRange
	if n.Kind != yaml.MappingNode {
		return nil, nil, tr, fmt.Errorf("line %d: %s must be a mapping such as {field: sensor_id}", n.Line, what)
	}
	e := &Extract{}
	var w *Wasm
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		var err error
		switch k.Value {
		case "field":
			e.Field = v.Value
		case "bloblang":
			e.Bloblang = v.Value
		case "metadata":
			e.Metadata = v.Value
		case "format":
			e.Format = v.Value
		case "wasm":
			w, err = wasm(v, dir)
			if err == nil && w.Function != "" {
				err = fmt.Errorf("function is set by the step (%s)", what)
			}
		case "max_ahead", "max_behind":
			var d time.Duration
			if what != "event_time" {
				err = errors.New("only an event_time step has a plausible range")
			} else if d, err = time.ParseDuration(v.Value); err == nil && d <= 0 {
				err = errors.New("want a positive duration such as 1h")
			}
			if k.Value == "max_ahead" {
				tr.MaxAhead = d
			} else {
				tr.MaxBehind = d
			}
		default:
			err = errors.New("unknown field (want field, bloblang, metadata, format, wasm, max_ahead or max_behind)")
		}
		if err != nil {
			return nil, nil, tr, fmt.Errorf("line %d: %s.%s: %w", k.Line, what, k.Value, err)
		}
	}
	set := 0
	for _, b := range []bool{e.Field != "", e.Bloblang != "", e.Metadata != "", w != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, nil, tr, fmt.Errorf("line %d: %s: set exactly one of field, bloblang, metadata or wasm", n.Line, what)
	}
	if w != nil && e.Format != "" {
		return nil, nil, tr, fmt.Errorf("line %d: %s: format applies to field, bloblang and metadata, not wasm", n.Line, what)
	}
	return e, w, tr, nil
}

// timeSeriesConf parses a timeseries step.
func timeSeriesConf(n *yaml.Node) (*TimeSeries, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: timeseries must be a mapping such as {field: value, outputs: {avg: moving_avg(30s)}}", n.Line)
	}
	ts := &TimeSeries{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		switch k.Value {
		case "field":
			ts.Field = v.Value
		case "outputs":
			if v.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("line %d: timeseries.outputs must map field names to helpers, e.g. {avg: moving_avg(30s)}", v.Line)
			}
			for a := 0; a+1 < len(v.Content); a += 2 {
				ts.Outputs = append(ts.Outputs, NamedAgg{Name: v.Content[a].Value, Expr: v.Content[a+1].Value, Line: v.Content[a].Line})
			}
		default:
			return nil, fmt.Errorf("line %d: timeseries.%s: unknown field (want field, outputs)", k.Line, k.Value)
		}
	}
	if ts.Field == "" || len(ts.Outputs) == 0 {
		return nil, fmt.Errorf("line %d: timeseries needs field and outputs", n.Line)
	}
	return ts, nil
}

// windowConf parses a window step.
func windowConf(n *yaml.Node, dir string) (*Window, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: window must be a mapping such as {tumbling: {size: 5s}, aggregates: {...}}", n.Line)
	}
	w := &Window{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		var err error
		switch k.Value {
		case "tumbling", "sliding", "processing_time":
			if w.Type != "" {
				err = fmt.Errorf("the window type is already %s", w.Type)
				break
			}
			w.Type = k.Value
			set := map[string]*time.Duration{"size": &w.Size, "offset": &w.Offset}
			if k.Value != "tumbling" {
				set["slide"] = &w.Slide
			}
			err = fields(v, "window."+k.Value, set)
		case "session":
			if w.Type != "" {
				err = fmt.Errorf("the window type is already %s", w.Type)
				break
			}
			w.Type = k.Value
			err = fields(v, "window.session", map[string]*time.Duration{"gap": &w.Gap})
		case "global":
			if w.Type != "" {
				err = fmt.Errorf("the window type is already %s", w.Type)
				break
			}
			w.Type = k.Value
			var g struct {
				Count int64 `yaml:"count"`
			}
			if err = v.Decode(&g); err == nil && g.Count <= 0 {
				err = errors.New("count must be a positive number of records (a global window fires every count records)")
			}
			w.Count = g.Count
		case "watermark":
			err = fields(v, "window.watermark", map[string]*time.Duration{"out_of_orderness": &w.OutOfOrder, "idle_timeout": &w.IdleTimeout})
		case "allowed_lateness":
			err = dur(v, &w.Lateness)
		case "key_name":
			w.KeyName = v.Value
		case "emit":
			w.Emit = v.Value
			if w.Emit != "final" && w.Emit != "updates" {
				err = fmt.Errorf("%q: want final or updates", v.Value)
			}
		case "early_every":
			err = dur(v, &w.EarlyEvery)
		case "early_every_records":
			if err = v.Decode(&w.EarlyEveryRecords); err == nil && w.EarlyEveryRecords <= 0 {
				err = errors.New("must be a positive number of records")
			}
		case "max_parallelism":
			err = v.Decode(&w.MaxParallelism)
		case "aggregate":
			if w.Aggregate, err = wasm(v, dir); err == nil && w.Aggregate.Function != "" {
				err = errors.New("function is set by the step (aggregate)")
			}
		case "aggregates":
			if v.Kind != yaml.MappingNode {
				err = errors.New("must map result names to aggregates, e.g. {mean: mean(value)}")
				break
			}
			for a := 0; a+1 < len(v.Content); a += 2 {
				w.Aggregates = append(w.Aggregates, NamedAgg{Name: v.Content[a].Value, Expr: v.Content[a+1].Value, Line: v.Content[a].Line})
			}
		default:
			err = errors.New("unknown field (want tumbling, sliding, session, global, processing_time, watermark, allowed_lateness, key_name, emit, early_every, early_every_records, max_parallelism, aggregates, aggregate)")
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: window.%s: %w", k.Line, k.Value, err)
		}
	}
	if w.Type == "" {
		return nil, fmt.Errorf("line %d: window: set a window type (tumbling, sliding, session, global or processing_time)", n.Line)
	}
	switch {
	case w.Emit == "updates" && w.EarlyEvery == 0 && w.EarlyEveryRecords == 0:
		return nil, fmt.Errorf("line %d: window.emit updates: set early_every (event time) or early_every_records", n.Line)
	case w.Emit != "updates" && (w.EarlyEvery != 0 || w.EarlyEveryRecords != 0):
		return nil, fmt.Errorf("line %d: window: early_every and early_every_records need emit: updates", n.Line)
	}
	if w.Type == "global" {
		if w.Emit == "updates" || w.Lateness != 0 {
			return nil, fmt.Errorf("line %d: a global window has no early results or lateness: it fires every count records", n.Line)
		}
		return w, nil
	}
	if w.Type == "session" {
		if w.Gap <= 0 {
			return nil, fmt.Errorf("line %d: window.session.gap must be positive", n.Line)
		}
		return w, nil
	}
	if w.Size <= 0 {
		return nil, fmt.Errorf("line %d: window.%s.size must be positive", n.Line, w.Type)
	}
	if w.Type == "processing_time" && (w.Lateness != 0 || w.OutOfOrder != 0 || w.IdleTimeout != 0) {
		return nil, fmt.Errorf("line %d: processing-time windows have no watermark or lateness", n.Line)
	}
	if w.Type == "sliding" && w.Slide <= 0 {
		return nil, fmt.Errorf("line %d: window.sliding.slide must be positive", n.Line)
	}
	return w, nil
}

// ParseBytes reads sizes like "256MiB", "64MB", "1048576".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suf string
		mul int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suf) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.suf)), u.mul
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 256MiB)", s)
	}
	return n * mul, nil
}

// DefaultErrorOutput is where failed records go when error_output is not
// set: a file next to a file output (out/x.jsonl -> out/x.errors.jsonl),
// the process's stderr otherwise.
func DefaultErrorOutput(output map[string]any) map[string]any {
	if f, ok := output["file"].(map[string]any); ok {
		if path, ok := f["path"].(string); ok && path != "" && !strings.Contains(path, "${!") {
			ext := filepath.Ext(path)
			return map[string]any{"file": map[string]any{
				"path":  strings.TrimSuffix(path, ext) + ".errors.jsonl",
				"codec": "lines",
			}}
		}
	}
	return map[string]any{"file": map[string]any{"path": "/dev/stderr", "codec": "lines"}}
}
