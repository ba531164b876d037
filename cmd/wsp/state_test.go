package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateLayoutVersion: state stored by a module of layout version 1 is
// restored into a run of the same module, refused for a module of version
// 2 (naming both versions and the way out), and dropped with
// --reset-state, which drops nothing more when repeated; --reset-state
// naming no keyed step (of the pipeline or the checkpoint) is refused.
func TestStateLayoutVersion(t *testing.T) {
	dir := t.TempDir()
	in, in2 := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "in2.jsonl")
	if err := os.WriteFile(in, []byte("{\"k\":\"a\"}\n{\"k\":\"b\"}\n{\"k\":\"a\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in3 := filepath.Join(dir, "in3.jsonl") // a file the state has no position for
	for _, f := range []string{in2, in3} {
		if err := os.WriteFile(f, []byte("{\"k\":\"a\"}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pipeline := func(module, input, out string) string {
		p := filepath.Join(dir, "p-"+filepath.Base(module)+"-"+filepath.Base(out)+".yaml")
		abs, _ := filepath.Abs(filepath.Join("testdata", module))
		y := "input: {file: {paths: [" + input + "]}}\npipeline:\n  - key: {field: k}\n  - name: count\n    wasm: {module: " + abs +
			"}\noutput: {file: {path: " + out + ", codec: lines}}\n"
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	state := filepath.Join(dir, "state")
	run := func(args ...string) (int, string) {
		code, _, stderr := runWSP(t, append([]string{"run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", "1", "--state-dir", state}, args...)...)
		return code, stderr
	}
	out1 := filepath.Join(dir, "out1.jsonl")
	if code, se := run(pipeline("countv1", in, out1)); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, se)
	}
	if got := strings.Join(readLines(t, out1), ","); got != "1,1,2" {
		t.Fatalf("first run: %s", got)
	}
	// The same module goes on counting from the restored state.
	out2 := filepath.Join(dir, "out2.jsonl")
	if code, se := run(pipeline("countv1", in2, out2)); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, se)
	}
	if got := strings.Join(readLines(t, out2), ","); got != "3" {
		t.Fatalf("second run: %s, want 3 (a's count restored)", got)
	}
	out3 := filepath.Join(dir, "out3.jsonl")
	code, se := run(pipeline("countv2", in2, out3))
	if code == 0 || !strings.Contains(se, "layout version 1 and the module declares version 2") || !strings.Contains(se, "--reset-state count") {
		t.Fatalf("version 2 over version 1's state: exit %d: %s", code, se)
	}
	if code, se := run("--reset-state", "nosuch", pipeline("countv2", in2, out3)); code == 0 || !strings.Contains(se, `"nosuch" is a keyed step neither of the pipeline nor of checkpoint`) {
		t.Fatalf("--reset-state nosuch: exit %d: %s", code, se)
	}
	if code, se := run("--reset-state", "count", pipeline("countv2", in3, out3)); code != 0 {
		t.Fatalf("with --reset-state: exit %d: %s", code, se)
	}
	if got := strings.Join(readLines(t, out3), ","); got != "1" {
		t.Fatalf("after the reset: %s, want 1 (state dropped)", got)
	}
	// The same flags again (a supervisor's restart): the state now
	// restores, so nothing more is dropped.
	in4, out4 := filepath.Join(dir, "in4.jsonl"), filepath.Join(dir, "out4.jsonl")
	if err := os.WriteFile(in4, []byte("{\"k\":\"a\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, se := run("--reset-state", "count", pipeline("countv2", in4, out4)); code != 0 {
		t.Fatalf("again with --reset-state: exit %d: %s", code, se)
	}
	if got := strings.Join(readLines(t, out4), ","); got != "2" {
		t.Fatalf("again with --reset-state: %s, want 2 (the state kept)", got)
	}
}
