package connect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"
)

// Choosing between the native connectors and Benthos.
//
// Every config is first parsed and linted by Benthos itself (as a resource
// of a private ResourceBuilder), so a config Benthos rejects is rejected with
// Benthos's own message, which names the offending field (for a `broker`,
// the message of the first child Benthos rejects, under the child's name:
// see inputBuilder). A config that passes goes native only if the native
// parser below understands every field of it, with exactly the types and
// values it supports; anything else — an unsupported scanner or codec, a
// `${...}` interpolation, processors, a value of an unexpected type — goes
// to Benthos, which constructs the component in NewInput/NewOutput and so
// reports the errors it only finds at that point. A plain `broker` input is
// taken apart before that choice, which each child then makes (broker.go).

const defaultBatchSize = 1024

// NewInput builds the input described by conf, the YAML mapping of an input
// section as a Benthos v4 user writes it, e.g.
//
//	{"file": {"paths": ["a.jsonl"], "scanner": {"lines": {}}}}
//
// possibly with `label` and `processors`. With opts.Native it returns wsp's
// native implementation for `file` and `stdin` inputs that ask only for
// lines (see nativeInput); a plain `broker` input (see brokerChildren) is
// merged by wsp from children built by NewInput, so that each child is a
// partition (broker.go); otherwise the input runs in Benthos. ctx bounds
// construction only.
func NewInput(ctx context.Context, conf map[string]any, opts Options) (Input, error) {
	opts = opts.withDefaults("input")
	b, label, err := inputBuilder(conf, opts.Name)
	if err != nil {
		return nil, err
	}
	if children, ok := brokerChildren(conf); ok {
		// Whatever opts.Native says: the children are partitions (broker.go);
		// each child runs natively or in Benthos as opts.Native decides.
		return newBrokerInput(ctx, children, opts)
	}
	if opts.Native {
		if spec, ok := nativeInput(conf); ok {
			if spec.kind == "stdin" {
				return newStreamInput(os.Stdin, spec.format, opts), nil
			}
			return newFileInput(spec, opts)
		}
	}
	in, err := newBenthosInput(ctx, b, label, opts)
	if err == nil {
		in.replayNacks = !nacksDropped(conf)
	}
	return in, err
}

// inputBuilder has Benthos parse and lint conf, the input named name, as a
// resource of a new builder, and returns the builder and the resource's
// label. When Benthos rejects a `broker` input, the error is that of the
// first child Benthos rejects on its own, if any, under the child's name
// ("input.broker.inputs[1]"): Benthos's message about the whole config
// gives only a line number in YAML the user never wrote.
func inputBuilder(conf map[string]any, name string) (*service.ResourceBuilder, string, error) {
	y, label, err := componentYAML(conf, name)
	if err != nil {
		return nil, "", fmt.Errorf("connect: input %q: %w", name, err)
	}
	b, err := newBuilder()
	if err != nil {
		return nil, "", fmt.Errorf("connect: input %q: %w", name, err)
	}
	if err := b.AddInputYAML(y); err != nil {
		if body, ok := conf["broker"].(map[string]any); ok {
			if children, ok := configList(body["inputs"]); ok {
				for i, c := range children {
					if _, _, cerr := inputBuilder(c, brokerChildName(name, i)); cerr != nil {
						return nil, "", cerr
					}
				}
			}
		}
		return nil, "", fmt.Errorf("connect: input %q: invalid config: %w", name, err)
	}
	return b, label, nil
}

// NewOutput builds the output described by conf, the YAML mapping of an
// output section as a Benthos v4 user writes it, e.g.
//
//	{"file": {"path": "out.jsonl", "codec": "lines"}}
//
// With opts.Native it returns wsp's native implementation for a `file`
// output with a static path and for `stdout`, with the lines, delim:x or
// append codec; otherwise the output runs in Benthos. ctx bounds
// construction only.
func NewOutput(ctx context.Context, conf map[string]any, opts Options) (Output, error) {
	opts = opts.withDefaults("output")
	y, label, err := componentYAML(conf, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("connect: output %q: %w", opts.Name, err)
	}
	b, err := newBuilder()
	if err != nil {
		return nil, fmt.Errorf("connect: output %q: %w", opts.Name, err)
	}
	if err := b.AddOutputYAML(y); err != nil {
		return nil, fmt.Errorf("connect: output %q: invalid config: %w", opts.Name, err)
	}
	if opts.Native {
		if spec, ok := nativeOutput(conf); ok {
			if spec.kind == "stdout" {
				return newStreamOutput(os.Stdout, spec, opts), nil
			}
			return newFileOutput(spec, opts), nil
		}
	}
	return newBenthosOutput(ctx, b, label, opts)
}

func (o Options) withDefaults(name string) Options {
	if o.BatchSize <= 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.Name == "" {
		o.Name = name
	}
	return o
}

// componentYAML renders conf for Benthos, adding a label derived from the
// connector's name when conf has none.
func componentYAML(conf map[string]any, name string) (string, string, error) {
	if len(conf) == 0 {
		return "", "", errors.New("empty config")
	}
	label, _ := conf["label"].(string)
	c := make(map[string]any, len(conf)+1)
	for k, v := range conf {
		c[k] = v
	}
	if label == "" {
		label = labelFor(name)
		c["label"] = label
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		return "", "", fmt.Errorf("config: %w", err)
	}
	return string(y), label, nil
}

// labelFor makes a valid Benthos label (/^[a-z0-9_-]+$/, not starting with
// '_' or '-') from a connector name.
func labelFor(name string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	l := sb.String()
	if l == "" || l[0] == '_' || l[0] == '-' {
		l = "wsp" + l
	}
	return l
}

// --- native eligibility --------------------------------------------------------

// nativeInputSpec is a config the native inputs implement.
type nativeInputSpec struct {
	kind           string // "file" or "stdin"
	paths          []string
	format         lineFormat
	deleteOnFinish bool
	autoReplay     bool
}

// nativeOutputSpec is a config the native outputs implement.
type nativeOutputSpec struct {
	kind   string // "file" or "stdout"
	path   string
	suffix []byte // nil for the append codec
}

// component splits conf into its component name and body, if conf is a
// single `file`/`stdin`/`stdout` component with at most a label and an empty
// processors list besides.
func component(conf map[string]any, kinds ...string) (string, map[string]any, bool) {
	kind := ""
	var body map[string]any
	for k, v := range conf {
		switch {
		case k == "label":
			if _, ok := v.(string); !ok {
				return "", nil, false
			}
		case k == "processors":
			if l, ok := v.([]any); !(v == nil || ok && len(l) == 0) {
				return "", nil, false
			}
		case kind == "" && contains(kinds, k):
			kind = k
			switch v := v.(type) {
			case map[string]any:
				body = v
			case nil:
			default:
				return "", nil, false
			}
		default:
			return "", nil, false
		}
	}
	return kind, body, kind != ""
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// nativeInput reports whether conf is a file or stdin input the native
// implementation supports, and how to run it. It supports exactly:
//
//	file:
//	  paths: [...]            # glob patterns allowed
//	  scanner:                # optional; default lines
//	    lines:
//	      custom_delimiter: x # optional
//	      max_buffer_size: n  # > 0; default 65536
//	      omit_empty: bool
//	  codec: lines | delim:x  # deprecated; takes precedence over scanner
//	  max_buffer: n           # deprecated, with codec; 0 means 1000000
//	  delete_on_finish: bool
//	  auto_replay_nacks: bool
//
// and the same without paths and delete_on_finish for stdin. Strings
// containing "${" (environment variables or interpolations) are left to
// Benthos.
func nativeInput(conf map[string]any) (nativeInputSpec, bool) {
	kind, body, ok := component(conf, "file", "stdin")
	if !ok {
		return nativeInputSpec{}, false
	}
	spec := nativeInputSpec{kind: kind, format: defaultLineFormat(), autoReplay: true}
	_, hasCodec := body["codec"]
	maxBuffer := defaultCodecMaxBuffer
	for k, v := range body {
		switch {
		case k == "paths" && kind == "file":
			if spec.paths, ok = stringList(v); !ok {
				return spec, false
			}
		case k == "delete_on_finish" && kind == "file":
			if spec.deleteOnFinish, ok = v.(bool); !ok {
				return spec, false
			}
		case k == "auto_replay_nacks":
			if spec.autoReplay, ok = v.(bool); !ok {
				return spec, false
			}
		case k == "max_buffer":
			n, ok := intValue(v)
			if !ok || n < 0 {
				return spec, false
			}
			if n > 0 {
				maxBuffer = n
			}
		case k == "codec":
			s, ok := plainString(v)
			if !ok {
				return spec, false
			}
			switch d, isDelim := strings.CutPrefix(s, "delim:"); {
			case s == "lines":
			case isDelim && d != "":
				spec.format.delim, spec.format.dropCR = []byte(d), false
			default:
				return spec, false
			}
		case k == "scanner" && !hasCodec:
			if !linesScanner(v, &spec.format) {
				return spec, false
			}
		default:
			return spec, false
		}
	}
	if kind == "file" && spec.paths == nil {
		return spec, false // Benthos requires paths (and would read nothing)
	}
	if hasCodec {
		spec.format.maxLen, spec.format.maxField = maxBuffer, "max_buffer"
	}
	return spec, true
}

// linesScanner parses a `scanner: {lines: {...}}` value into f.
func linesScanner(v any, f *lineFormat) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	lv, ok := m["lines"]
	if !ok {
		return false
	}
	var lines map[string]any
	switch lv := lv.(type) {
	case map[string]any:
		lines = lv
	case nil:
	default:
		return false
	}
	for k, v := range lines {
		switch k {
		case "custom_delimiter":
			s, ok := plainString(v)
			if !ok {
				return false
			}
			if s != "" { // Benthos treats "" as no custom delimiter
				f.delim, f.dropCR = []byte(s), false
			}
		case "max_buffer_size":
			n, ok := intValue(v)
			if !ok || n <= 0 {
				return false
			}
			f.maxLen = n
		case "omit_empty":
			if f.omitEmpty, ok = v.(bool); !ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// nativeOutput reports whether conf is a file or stdout output the native
// implementation supports: `file` with a static `path` and `stdout`, each
// with codec lines (the default), delim:x or append.
func nativeOutput(conf map[string]any) (nativeOutputSpec, bool) {
	kind, body, ok := component(conf, "file", "stdout")
	if !ok {
		return nativeOutputSpec{}, false
	}
	spec := nativeOutputSpec{kind: kind, suffix: []byte("\n")}
	for k, v := range body {
		switch {
		case k == "path" && kind == "file":
			if spec.path, ok = plainString(v); !ok || spec.path == "" {
				return spec, false
			}
		case k == "codec":
			s, ok := plainString(v)
			if !ok {
				return spec, false
			}
			switch d, isDelim := strings.CutPrefix(s, "delim:"); {
			case s == "lines":
			case s == "append":
				spec.suffix = nil
			case isDelim && d != "":
				spec.suffix = []byte(d)
			default:
				return spec, false
			}
		default:
			return spec, false
		}
	}
	if kind == "file" && spec.path == "" {
		return spec, false
	}
	return spec, true
}

// plainString returns v if it is a string without "${".
func plainString(v any) (string, bool) {
	s, ok := v.(string)
	if !ok || strings.Contains(s, "${") {
		return "", false
	}
	return s, true
}

// stringList returns v as a non-nil list of plain strings.
func stringList(v any) ([]string, bool) {
	switch l := v.(type) {
	case []string:
		out := make([]string, 0, len(l))
		for _, s := range l {
			s, ok := plainString(s)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := plainString(e)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// intValue returns v as an int if it is an integer (YAML gives int; JSON
// decoding gives float64).
func intValue(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		if n >= math.MinInt && n <= math.MaxInt {
			return int(n), true
		}
	case uint64:
		if n <= math.MaxInt {
			return int(n), true
		}
	case float64:
		if n == math.Trunc(n) && math.Abs(n) <= 1<<53 {
			return int(n), true
		}
	}
	return 0, false
}

// nacksDropped says whether the input's config sets auto_replay_nacks:
// false (Benthos then drops nacked messages).
func nacksDropped(conf map[string]any) bool {
	for k, v := range conf {
		if k == "label" || k == "processors" {
			continue
		}
		if m, ok := v.(map[string]any); ok {
			if r, ok := m["auto_replay_nacks"].(bool); ok && !r {
				return true
			}
		}
	}
	return false
}
