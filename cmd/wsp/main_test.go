package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
	"github.com/wsp-project/wsp/examples/sensors/rules"
)

// cacheDir is shared by the package's tests so the Go plugin builds once.
var cacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "wsp-cmd-test")
	if err != nil {
		panic(err)
	}
	cacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func repoPath(p string) string { return filepath.Join("..", "..", p) }

// runWSP runs the CLI in-process and returns exit code, stdout, stderr.
func runWSP(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// expected applies the rules natively to every input line.
type expected struct {
	clean   []string
	reasons []string // per failed line, in order
	lines   []int    // 1-based line numbers of failed lines
	dropped int
}

func expect(t *testing.T, input string) expected {
	var e expected
	for i, l := range readLines(t, input) {
		out, v, reason := rules.CleanJSON(nil, []byte(l))
		switch v {
		case rules.Keep:
			e.clean = append(e.clean, string(out))
		case rules.Fail:
			e.reasons = append(e.reasons, reason)
			e.lines = append(e.lines, i+1)
		default:
			e.dropped++
		}
	}
	return e
}

var summaryRe = regexp.MustCompile(`step clean\s+in (\d+), out (\d+), routed (\d+), to error output (\d+), dropped (\d+)`)

// TestSensorExample runs the example pipeline through wsp's own connectors
// and through Benthos's, and checks every record against the native rules.
func TestSensorExample(t *testing.T) {
	n := 20000
	if os.Getenv("WSP_TEST_LONG") != "" {
		n = 1000000
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "readings.jsonl")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(f, n, 42); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := expect(t, input)
	if len(want.reasons) == 0 || want.dropped == 0 || len(want.clean) == 0 {
		t.Fatalf("generated data lacks bad readings: %d failed, %d dropped", len(want.reasons), want.dropped)
	}
	for _, mode := range []string{"native", "benthos"} {
		t.Run(mode, func(t *testing.T) {
			out := filepath.Join(dir, mode)
			t.Setenv("SENSORS_INPUT", input)
			t.Setenv("SENSORS_OUT", out)
			args := []string{"run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", "2", "--batch-size", "500"}
			if mode == "benthos" {
				args = append(args, "--benthos-connectors")
			}
			args = append(args, repoPath("examples/sensors/clean.yaml"))
			code, _, stderr := runWSP(t, args...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			got := readLines(t, filepath.Join(out, "clean.jsonl"))
			if len(got) != len(want.clean) {
				t.Fatalf("%d clean records, want %d", len(got), len(want.clean))
			}
			for i := range got {
				if got[i] != want.clean[i] {
					t.Fatalf("clean record %d = %s, want %s (order must be kept)", i, got[i], want.clean[i])
				}
			}
			errs := readLines(t, filepath.Join(out, "errors.jsonl"))
			if len(errs) != len(want.reasons) {
				t.Fatalf("%d error records, want %d", len(errs), len(want.reasons))
			}
			for i, l := range errs {
				var e struct {
					Error, Step, Source, Record string
					Position                    int
				}
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatal(err)
				}
				if e.Error != want.reasons[i] || e.Step != "clean" {
					t.Fatalf("error %d = %+v, want reason %q", i, e, want.reasons[i])
				}
				// wsp's own input reports line numbers; Benthos's reports
				// message numbers, which for one file are the same.
				if e.Position != want.lines[i] {
					t.Fatalf("error %d at position %d, want line %d", i, e.Position, want.lines[i])
				}
				if mode == "native" && !strings.Contains(e.Source, input) {
					t.Fatalf("error source %q does not name the file", e.Source)
				}
			}
			m := summaryRe.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("no summary in:\n%s", stderr)
			}
			in, _ := strconv.Atoi(m[1])
			outN, _ := strconv.Atoi(m[2])
			failed, _ := strconv.Atoi(m[4])
			dropped, _ := strconv.Atoi(m[5])
			if in != n || outN != len(want.clean) || failed != len(want.reasons) || dropped != want.dropped {
				t.Fatalf("summary in %d out %d failed %d dropped %d; want %d %d %d %d",
					in, outN, failed, dropped, n, len(want.clean), len(want.reasons), want.dropped)
			}
			// Every input record is accounted for.
			if outN+failed+dropped != in {
				t.Fatalf("balance: %d + %d + %d != %d", outN, failed, dropped, in)
			}
		})
	}
}

// TestBenthosInputAndRouting: an input only Benthos provides (generate)
// feeds a Wasm step that routes records to a named port.
func TestBenthosInputAndRouting(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "p.yaml")
	wasm, _ := filepath.Abs(repoPath("plugins/testdata/wasm/route.wasm"))
	conf := fmt.Sprintf(`
input:
  generate:
    count: 100
    interval: ""
    mapping: 'root = {"n": count("gen")}'
pipeline:
  - name: route
    wasm:
      module: %s
    outputs:
      alerts:
        file: { path: %s/alerts.jsonl, codec: lines }
output:
  file: { path: %s/main.jsonl, codec: lines }
`, wasm, dir, dir)
	if err := os.WriteFile(pipe, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, pipe)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	main, alerts := readLines(t, filepath.Join(dir, "main.jsonl")), readLines(t, filepath.Join(dir, "alerts.jsonl"))
	if len(main)+len(alerts) != 100 || len(alerts) == 0 || len(main) == 0 {
		t.Fatalf("main %d + alerts %d != 100", len(main), len(alerts))
	}
	if main[0] != `{"n":1}` {
		t.Errorf("first main record %s", main[0])
	}
}

func TestInspect(t *testing.T) {
	code, out, stderr := runWSP(t, "plugin", "inspect", repoPath("plugins/testdata/wasm/route.wasm"))
	if code != 0 || !strings.Contains(out, "abi:       1") || !strings.Contains(out, "ports:     alerts") ||
		!strings.Contains(out, "wsp_process") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runWSP(t, "plugin", "inspect", repoPath("plugins/testdata/wasm/go_stateops.wasm"))
	if code != 0 || !strings.Contains(out, "features:  state, timers") || !strings.Contains(out, "state:     layout version 7") {
		t.Fatalf("stateops: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, bad := range []string{"not_wasm", "bad_version", "missing_abi"} {
		code, _, stderr := runWSP(t, "plugin", "inspect", repoPath("plugins/testdata/wasm/"+bad+".wasm"))
		if code != exitInspect || !strings.Contains(stderr, bad+".wasm") {
			t.Errorf("%s: exit %d, stderr %q", bad, code, stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	win := "input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - key: {field: a}\n  - event_time: {field: t}\n" +
		"  - window: {tumbling: {size: 1s}, watermark: {out_of_orderness: 1s}}\n"
	cases := []struct {
		yaml string
		want string
	}{
		{"input: {stdin: {}}\n", "no output section"},
		{"output: {stdout: {}}\n", "no input section"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\nfoo: 1\n", `unknown section "foo"`},
		{"input: {file: {paths: [\"${WSP_TEST_UNSET_VAR}\"]}}\noutput: {stdout: {}}\n", "WSP_TEST_UNSET_VAR"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - wasm: {module: nope.wasm}\n", "nope.wasm"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - wasm: {module: x, timeout: -1s}\n", "wasm.timeout"},
		{win + "  - key: {field: b}\n", "re-keys the stream"},
		{win + "  - window: {tumbling: {size: 5s}, watermark: {out_of_orderness: 3s}}\n", "shares the first one's watermark"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - window: {tumbling: {size: 1s}, aggregates: {m: \"median(v, 2)\"}}\n", "takes one field"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - window: {tumbling: {size: 1.5ms}}\n", "whole milliseconds"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - window: {hopping: {size: 1s}}\n", "unknown field"},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - event_time: {field: t, format: iso}\n", "format \"iso\""},
		{"input: {stdin: {}}\noutput: {stdout: {}}\npipeline:\n  - key: {field: a, bloblang: b}\n", "exactly one"},
	}
	for _, c := range cases {
		if err := os.WriteFile(p, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, p)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want it to mention %q", c.yaml, code, stderr, c.want)
		}
	}
	if code, _, _ := runWSP(t, "run", "--workers", "x", p); code != exitUsage {
		t.Errorf("bad flag: exit %d", code)
	}
	t.Setenv("WSP_LOG_LEVEL", "loud")
	if code, _, stderr := runWSP(t, "run", p); code != exitUsage || !strings.Contains(stderr, "log-level") {
		t.Errorf("bad WSP_LOG_LEVEL: exit %d %s", code, stderr)
	}
}
