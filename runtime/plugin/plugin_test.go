package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/record"
)

// guest returns the path of a hand-written test guest in plugins/testdata/wasm.
func guest(name string) string {
	return filepath.Join("..", "..", "plugins", "testdata", "wasm", name+".wasm")
}

func testEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := NewEngine(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func load(t *testing.T, e *Engine, name string, opts Options) *Module {
	t.Helper()
	m, err := e.LoadFile(context.Background(), guest(name), opts)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

func batchOf(n int) *record.Batch {
	b := &record.Batch{Source: record.Source{Input: "test"}}
	for i := 0; i < n; i++ {
		b.Records = append(b.Records, record.Record{
			Key:   []byte(fmt.Sprintf("k%d", i)),
			Value: []byte(fmt.Sprintf(`{"i":%d}`, i)),
			Time:  int64(1000 + i), Flags: record.HasTime | record.HasKey, Pos: int64(i + 1),
			Meta: []record.KV{{Key: "m", Value: []byte("v")}},
		})
	}
	return b
}

// TestLoadRefusals: every bad module is refused at load with a message that
// names what is wrong, and the file.
func TestLoadRefusals(t *testing.T) {
	e := testEngine(t)
	cases := []struct {
		guest string
		opts  Options
		want  string
	}{
		{"not_wasm", Options{}, "not a WebAssembly module"},
		{"bad_version", Options{}, "ABI version 2"},
		{"missing_abi", Options{}, "missing export wsp_abi"},
		{"no_process", Options{}, "missing export wsp_process"},
		{"wrong_sig", Options{}, "export wsp_process has signature () -> (), want (i32) -> (i32)"},
		{"command", Options{}, "command module"},
		{"future_feature", Options{}, "requires feature(s) [unknown-bit-10]"},
		{"init_fails", Options{}, "bad config"},
		{"bad_field", Options{}, "declare_fields refused a..b"},
		{"clear_stop", Options{}, "invalid module"},
		{"start_loop", Options{Timeout: 200 * time.Millisecond}, "start section"},
		{"noop_keep", Options{Function: Key}, "missing export wsp_key"},
		{"noop_keep", Options{Function: "bogus"}, "unknown function"},
	}
	for _, c := range cases {
		t.Run(c.guest, func(t *testing.T) {
			_, err := e.LoadFile(context.Background(), guest(c.guest), c.opts)
			if err == nil {
				t.Fatal("loaded; want refusal")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if c.opts.Function != "bogus" && !strings.Contains(err.Error(), c.guest+".wasm") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestNoopKeep(t *testing.T) {
	e := testEngine(t)
	for _, name := range []string{"noop_keep", "noop_copy", "go_noop", "go_noopbatch", "go_noopcopy"} {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(guest(name)); err != nil {
				t.Fatalf("guest missing: %v", err)
			}
			m := load(t, e, name, Options{})
			in, err := m.Instance(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close(context.Background())
			for _, n := range []int{1, 7, 1024, 3000} {
				b := batchOf(n)
				var res Result
				if err := in.Call(context.Background(), b, &res); err != nil {
					t.Fatalf("n=%d: %v", n, err)
				}
				out := res.Ports[0].Records
				if len(out) != n || res.Dropped != 0 || len(res.Failed) != 0 {
					t.Fatalf("n=%d: %d out, %d dropped, %d failed", n, len(out), res.Dropped, len(res.Failed))
				}
				for i := range out {
					w := &b.Records[i]
					g := &out[i]
					if string(g.Value) != string(w.Value) || string(g.Key) != string(w.Key) ||
						g.Time != w.Time || g.Flags != w.Flags || g.Pos != w.Pos || len(g.Meta) != 1 {
						t.Fatalf("n=%d record %d: got %+v want %+v", n, i, g, w)
					}
				}
			}
		})
	}
}

// TestGuestFaults: each broken guest gives its clear error, and the same
// instance keeps working afterwards (the host recovers).
func TestGuestFaults(t *testing.T) {
	e := testEngine(t)
	cases := []struct {
		guest string
		kind  ErrorKind
		want  string
	}{
		{"trap", Trap, "unreachable"},
		{"loop", Timeout, "did not return within 200ms"},
		{"oob_read", Fault, "batch_read: pointer 0xfffffff0 length"},
		{"oob_write", Fault, "batch_write: pointer"},
		{"malformed", Malformed, "malformed output"},
	}
	for _, c := range cases {
		t.Run(c.guest, func(t *testing.T) {
			m := load(t, e, c.guest, Options{Timeout: 200 * time.Millisecond})
			in, err := m.Instance(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close(context.Background())
			for round := 0; round < 3; round++ {
				start := time.Now()
				err := in.Call(context.Background(), batchOf(4), &Result{})
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("round %d: error %v is not a *plugin.Error", round, err)
				}
				if pe.Kind != c.kind {
					t.Errorf("kind = %v, want %v (%v)", pe.Kind, c.kind, err)
				}
				if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.guest+".wasm") ||
					!strings.Contains(err.Error(), "wsp_process") {
					t.Errorf("error %q should name the module, wsp_process and contain %q", err, c.want)
				}
				if c.kind == Timeout && time.Since(start) > 5*time.Second {
					t.Errorf("time-out took %s", time.Since(start))
				}
			}
		})
	}
	// The host is still healthy: a good module still runs on the same engine.
	m := load(t, e, "noop_keep", Options{})
	in, _ := m.Instance(context.Background())
	defer in.Close(context.Background())
	if err := in.Call(context.Background(), batchOf(3), &Result{}); err != nil {
		t.Fatal(err)
	}
}

func TestFailFlatmapRoute(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()

	m := load(t, e, "fail_each", Options{})
	in, _ := m.Instance(ctx)
	defer in.Close(ctx)
	var res Result
	if err := in.Call(ctx, batchOf(5), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Ports[0].Records) != 3 || len(res.Failed) != 2 || res.Failed[0].Index != 1 || res.Failed[1].Reason != "odd" {
		t.Fatalf("fail_each: %d out, failed %+v", len(res.Ports[0].Records), res.Failed)
	}

	m = load(t, e, "flatmap", Options{})
	in2, _ := m.Instance(ctx)
	defer in2.Close(ctx)
	res = Result{}
	if err := in2.Call(ctx, batchOf(4), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Ports[0].Records) != 8 || res.Dropped != 0 {
		t.Fatalf("flatmap: %d out, %d dropped", len(res.Ports[0].Records), res.Dropped)
	}
	if string(res.Ports[0].Records[2].Value) != `{"i":1}` {
		t.Errorf("flatmap order: %s", res.Ports[0].Records[2].Value)
	}

	m = load(t, e, "route", Options{})
	if got := m.Ports(); len(got) != 1 || got[0] != "alerts" {
		t.Fatalf("route ports = %v", got)
	}
	in3, _ := m.Instance(ctx)
	defer in3.Close(ctx)
	res = Result{}
	if err := in3.Call(ctx, batchOf(5), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Ports) != 2 || len(res.Ports[0].Records) != 3 || len(res.Ports[1].Records) != 2 {
		t.Fatalf("route: ports %d, main %d", len(res.Ports), len(res.Ports[0].Records))
	}
}

// TestCompilationCache: a second engine on the same folder finds compiled code.
func TestCompilationCache(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		e, err := NewEngine(dir)
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.LoadFile(context.Background(), guest("go_noop"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Close(context.Background())
		_ = e.Close(context.Background())
	}
	var files int
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatal("no compiled code was cached on disk")
	}
}
