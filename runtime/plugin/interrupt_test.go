package plugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestInstrumentAllGuests: every test guest (WAT and Go) can be rewritten,
// the rewrite is used when a time limit is set, and not when the module may
// sleep in a host call (real clock) or has no limit.
func TestInstrumentAllGuests(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "plugins", "testdata", "wasm", "*.wasm"))
	if len(files) < 20 {
		t.Fatalf("only %d guests", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, "not_wasm.wasm") || strings.HasSuffix(f, "clear_stop.wasm") {
			continue // not a module; invalid on purpose
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := instrument(b)
		if err != nil {
			// Only guests without a batch_read import may be refused
			// (they fall back to wazero's termination mode).
			if !strings.Contains(err.Error(), "batch_read") || strings.Contains(string(b), "batch_read") {
				t.Errorf("%s: %v", filepath.Base(f), err)
			}
			continue
		}
		if len(out) <= len(b) {
			t.Errorf("%s: rewrite added nothing", filepath.Base(f))
		}
	}
	e := testEngine(t)
	cases := []struct {
		opts Options
		want bool
	}{
		{Options{}, true},
		{Options{Timeout: NoTimeout}, false},
		{Options{Grants: Grants{Clock: true}}, false},
	}
	for _, c := range cases {
		m := load(t, e, "go_noop", c.opts)
		if m.byTick != c.want {
			t.Errorf("%+v: stop by global = %v, want %v", c.opts, m.byTick, c.want)
		}
	}
}

// TestTimeoutByTick: a looping guest is stopped by the rewrite's deadline
// checks, again and again on the same instance.
func TestTimeoutByTick(t *testing.T) {
	e := testEngine(t)
	m := load(t, e, "loop_reader", Options{Timeout: 100 * time.Millisecond})
	if !m.byTick {
		t.Fatal("loop_reader guest not instrumented")
	}
	in, err := m.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	for i := 0; i < 3; i++ {
		err := in.Call(context.Background(), batchOf(1), &Result{})
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != Timeout {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	// A well-behaved instrumented module gives the same output as before.
	m2 := load(t, e, "flatmap", Options{})
	in2, _ := m2.Instance(context.Background())
	defer in2.Close(context.Background())
	var res Result
	if err := in2.Call(context.Background(), batchOf(3), &res); err != nil || len(res.Ports[0].Records) != 6 {
		t.Fatalf("flatmap after rewrite: %v, %d records", err, len(res.Ports[0].Records))
	}
}

func TestInstrumentRejects(t *testing.T) {
	// A module that writes the index the stop global would take is refused
	// by the rewrite (it could otherwise clear its own stop flag).
	b, err := os.ReadFile(guest("clear_stop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := instrument(b); err == nil {
		t.Error("clear_stop was rewritten")
	}
	for _, b := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x01\x00\x00\x00\x0a\x05\x01")} {
		if _, err := instrument(b); err == nil {
			t.Errorf("%q rewritten", b)
		}
	}
}

// TestGoGuestTimeout: a Go guest spinning in a loop is stopped at the time
// limit, while one doing long but finite work under the limit is not.
func TestGoGuestTimeout(t *testing.T) {
	e := testEngine(t)
	m := load(t, e, "go_spin", Options{Timeout: 300 * time.Millisecond})
	in, err := m.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	b := batchOf(1)
	b.Records[0].Value = []byte("forever")
	// The collector needs a processor of its own while the guest holds one
	// (wsp itself runs with at least two; see cmd/wsp).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	// Collect garbage all the while: a guest that never left native code
	// would block the stop-the-world and freeze the process.
	stopGC := make(chan struct{})
	gcDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stopGC:
				gcDone <- n
				return
			default:
				runtime.GC()
				n++
			}
		}
	}()
	start := time.Now()
	err = in.Call(context.Background(), b, &Result{})
	close(stopGC)
	if n := <-gcDone; n < 2 {
		t.Errorf("only %d collections ran while the guest spun", n)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != Timeout {
		t.Fatalf("spinning guest: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopped after %s", d)
	}
	m2 := load(t, e, "go_spin", Options{Timeout: 30 * time.Second})
	in2, _ := m2.Instance(context.Background())
	defer in2.Close(context.Background())
	var res Result
	if err := in2.Call(context.Background(), batchOf(1), &res); err != nil {
		t.Fatalf("finite work: %v", err)
	}
	if got := string(res.Ports[0].Records[0].Value); got != "25000000" {
		t.Fatalf("finite work gave %s", got)
	}
}

// FuzzInstrument: the rewrite never panics, whatever bytes it is given.
func FuzzInstrument(f *testing.F) {
	for _, g := range []string{"noop_keep", "loop", "route", "flatmap"} {
		if b, err := os.ReadFile(guest(g)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = instrument(b)
	})
}
