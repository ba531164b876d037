package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

type seen struct {
	NowMS int64  `json:"now_ms"`
	Home  string `json:"home"`
	File  bool   `json:"file"`
}

func look(t *testing.T, e *Engine, g Grants) seen {
	t.Helper()
	m := load(t, e, "go_sandbox", Options{Grants: g})
	in, err := m.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	var res Result
	if err := in.Call(context.Background(), batchOf(1), &res); err != nil {
		t.Fatal(err)
	}
	var s seen
	if err := json.Unmarshal(res.Ports[0].Records[0].Value, &s); err != nil {
		t.Fatalf("%s: %v", res.Ports[0].Records[0].Value, err)
	}
	return s
}

// TestSandboxDefaults: without grants the guest sees a deterministic clock
// (near 2022-01-01), no environment and no file system; grants open the clock
// and named variables, never the file system.
func TestSandboxDefaults(t *testing.T) {
	t.Setenv("HOME", "/home/wsp-test")
	e := testEngine(t)
	fake := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	s := look(t, e, Grants{})
	if s.NowMS < fake || s.NowMS > fake+60_000 || s.Home != "" || s.File {
		t.Fatalf("default sandbox leaked: %+v", s)
	}
	s = look(t, e, Grants{Clock: true, Env: []string{"HOME"}})
	if d := time.Now().UnixMilli() - s.NowMS; d < 0 || d > 60_000 || s.Home != "/home/wsp-test" || s.File {
		t.Fatalf("granted sandbox: %+v (clock off by %d ms)", s, d)
	}
}

// TestMemoryLimit: growing memory past the limit fails inside the guest (it
// traps here), and the same module runs under a larger limit.
func TestMemoryLimit(t *testing.T) {
	e := testEngine(t)
	m := load(t, e, "grow", Options{MemoryLimit: 64 << 20})
	in, _ := m.Instance(context.Background())
	defer in.Close(context.Background())
	err := in.Call(context.Background(), batchOf(1), &Result{})
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != Trap {
		t.Fatalf("growing past 64 MiB: err = %v, want a trap", err)
	}
	m2 := load(t, e, "grow", Options{MemoryLimit: 512 << 20})
	in2, _ := m2.Instance(context.Background())
	defer in2.Close(context.Background())
	if err := in2.Call(context.Background(), batchOf(1), &Result{}); err != nil {
		t.Fatalf("under 512 MiB: %v", err)
	}
	if _, err := e.Load(context.Background(), []byte("\x00asm\x01\x00\x00\x00"), Options{MemoryLimit: 1}); err == nil {
		t.Fatal("a 1-byte memory limit was accepted")
	}
}
