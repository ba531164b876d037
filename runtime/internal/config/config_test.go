package config

import (
	"strings"
	"testing"
	"time"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "x", "EMPTY": "", "N": "5"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		in, out string
		missing string
	}{
		{"a: ${A}", "a: x", ""},
		{"a: ${A:default}", "a: x", ""},
		{"a: ${B:fallback}", "a: fallback", ""},
		{"a: ${EMPTY:fallback}", "a: fallback", ""},
		{"a: ${B:}", "a: ", ""},
		{"a: ${B}", "a: ", "B"},
		{"a: ${! meta(\"k\") }", "a: ${! meta(\"k\") }", ""},
		{"a: ${A}-${N}", "a: x-5", ""},
		{"a: ${B:http://h:80/p}", "a: http://h:80/p", ""},
	}
	for _, c := range cases {
		out, missing := ExpandEnv([]byte(c.in), lookup)
		if string(out) != c.out || strings.Join(missing, ",") != c.missing {
			t.Errorf("%q -> %q (missing %v), want %q (missing %q)", c.in, out, missing, c.out, c.missing)
		}
	}
}

func TestParse(t *testing.T) {
	t.Setenv("WSP_CONFIG_TEST_PATH", "/data/in.jsonl")
	p, err := Parse([]byte(`
input:
  file:
    paths: [ "${WSP_CONFIG_TEST_PATH}" ]
pipeline:
  - wasm:
      module: ./p.wasm
      function: key
      config: { a: 1 }
      timeout: 250ms
      memory_limit: 64MiB
      grants: { clock: true, env: [HOME] }
  - name: second
    wasm: { module: /abs/q.wasm, timeout: none, watermark: { out_of_orderness: 2s, idle_timeout: 1m } }
    outputs:
      alerts: { stdout: {} }
output:
  stdout: {}
`), "/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	paths := p.Input["file"].(map[string]any)["paths"].([]any)
	if paths[0] != "/data/in.jsonl" {
		t.Errorf("paths = %v", paths)
	}
	s := p.Steps[0]
	if s.Name != "wasm1" || s.Wasm.Module != "/pipelines/p.wasm" || s.Wasm.Function != "key" ||
		s.Wasm.Timeout != 250*time.Millisecond || s.Wasm.MemoryLimit != 64<<20 || !s.Wasm.Grants.Clock ||
		s.Wasm.Grants.Env[0] != "HOME" || s.Line != 6 {
		t.Errorf("step 1 = %+v %+v", s, s.Wasm)
	}
	s = p.Steps[1]
	if s.Name != "second" || s.Wasm.Module != "/abs/q.wasm" || s.Wasm.Timeout != -1 || s.Outputs["alerts"] == nil ||
		s.Wasm.OutOfOrder != 2*time.Second || s.Wasm.IdleTimeout != time.Minute {
		t.Errorf("step 2 = %+v %+v", s, s.Wasm)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"- a\n", "YAML mapping"},
		{"input: [1]\noutput: {stdout: {}}\n", "line 1: input must be a mapping"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\nhttp: {}\n", "Benthos stream setting"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline: {a: 1}\n", "must be a list"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - name: x\n", "line 4: step 1 has no kind"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - wasm: {}\n", "wasm.module is required"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - wasm: {module: m, function: map}\n", `wasm.function "map"`},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - wasm: {module: m, memory_limit: lots}\n", "wasm.memory_limit"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - wasm: {module: m, bogus: 1}\n", "wasm.bogus: unknown field"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - wasm: {module: m, watermark: {lateness: 1s}}\n", "wasm.watermark.lateness: unknown field"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - {name: a, wasm: {module: m}}\n  - {name: a, wasm: {module: m}}\n", `step name "a" already used on line 4`},
		{"input: {file: {paths: [\"${WSP_SURELY_UNSET}\"]}}\noutput: {stdout: {}}\n", "WSP_SURELY_UNSET"},
		{"pipeline:\n  - key: {field: id, max_ahead: 1h}\n", "line 2: key.max_ahead: only an event_time step has a plausible range"},
		{"pipeline:\n  - event_time: {field: ts, max_ahead: soon}\n", "line 2: event_time.max_ahead"},
		{"pipeline:\n  - event_time: {field: ts, max_behind: -1h}\n", "event_time.max_behind: want a positive duration"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml), "/")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"256MiB": 256 << 20, "64 KiB": 64 << 10, "1GB": 1e9, "1048576": 1 << 20, "10B": 10} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("%q = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-5MiB", "0"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDefaultErrorOutput(t *testing.T) {
	got := DefaultErrorOutput(map[string]any{"file": map[string]any{"path": "out/clean.jsonl"}})
	if got["file"].(map[string]any)["path"] != "out/clean.errors.jsonl" {
		t.Errorf("file: %v", got)
	}
	got = DefaultErrorOutput(map[string]any{"stdout": map[string]any{}})
	if got["file"].(map[string]any)["path"] != "/dev/stderr" {
		t.Errorf("stdout: %v", got)
	}
	got = DefaultErrorOutput(map[string]any{"file": map[string]any{"path": "out/${! meta(\"k\") }.jsonl"}})
	if got["file"].(map[string]any)["path"] != "/dev/stderr" {
		t.Errorf("interpolated: %v", got)
	}
}

// TestParseTimeRange: an event_time step's plausible range, for either way
// of reading the time.
func TestParseTimeRange(t *testing.T) {
	p, err := Parse([]byte(`
pipeline:
  - event_time: { field: ts, max_ahead: 1h, max_behind: 720h }
  - event_time: { wasm: { module: /m.wasm }, max_ahead: 5m }
`), "/")
	if err != nil {
		t.Fatal(err)
	}
	if tr := p.Steps[0].TimeRange; tr.MaxAhead != time.Hour || tr.MaxBehind != 720*time.Hour {
		t.Errorf("step 1: %+v", tr)
	}
	if s := p.Steps[1]; s.TimeRange.MaxAhead != 5*time.Minute || s.TimeRange.MaxBehind != 0 || s.Wasm.Function != "timestamp" {
		t.Errorf("step 2: %+v", s)
	}
}

// TestDefaultStepNames: an unnamed step is named by its kind and its place
// among the steps of that kind, so adding a step of another kind before it
// does not rename it (keyed state is found by step name).
func TestDefaultStepNames(t *testing.T) {
	for _, c := range []struct{ pipeline, want string }{
		{"  - key: {field: k}\n  - event_time: {field: ts}\n  - window: {tumbling: {size: 5s}, aggregates: {n: count}}\n",
			"key1 event_time1 window1"},
		{"  - wasm: {module: ./m.wasm}\n  - key: {field: k}\n  - window: {tumbling: {size: 5s}, aggregates: {n: count}}\n" +
			"  - name: w\n    window: {tumbling: {size: 10s}, aggregates: {n: count}}\n  - window: {tumbling: {size: 1m}, aggregates: {n: count}}\n",
			"wasm1 key1 window1 w window3"},
	} {
		p, err := Parse([]byte("input: {stdin: {}}\npipeline:\n"+c.pipeline+"output: {stdout: {}}\n"), "/p")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range p.Steps {
			names = append(names, s.Name)
		}
		if got := strings.Join(names, " "); got != c.want {
			t.Errorf("names %q, want %q", got, c.want)
		}
	}
}

// TestDefaultNameClash: an explicit name equal to an unnamed step's default
// is refused with a message that says so.
func TestDefaultNameClash(t *testing.T) {
	for _, pl := range []string{
		"  - name: window2\n    window: {tumbling: {size: 5s}, aggregates: {n: count}}\n  - window: {tumbling: {size: 10s}, aggregates: {n: count}}\n",
		"  - window: {tumbling: {size: 5s}, aggregates: {n: count}}\n  - name: window1\n    window: {tumbling: {size: 10s}, aggregates: {n: count}}\n",
	} {
		_, err := Parse([]byte("input: {stdin: {}}\npipeline:\n  - key: {field: k}\n"+pl+"output: {stdout: {}}\n"), "/p")
		if err == nil || !strings.Contains(err.Error(), "already used") || !strings.Contains(err.Error(), "a default name of an unnamed step: give that step a name") {
			t.Errorf("err = %v", err)
		}
	}
}
