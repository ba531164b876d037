package gobuild

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const plugin = `package main

//go:wasmexport wsp_abi
func abi() int64 { return 1 }

func main() {}
`

// TestBuildCache: a build is reused while nothing changes, and redone when
// a source file changes or a new one appears.
func TestBuildCache(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "p")
	cache := filepath.Join(dir, "cache")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/p\n\ngo 1.24\n")
	write("main.go", plugin)
	if !IsSource(src) || IsSource(filepath.Join(src, "main.go")) {
		t.Fatal("IsSource")
	}
	ctx := context.Background()
	first, err := Build(ctx, src, cache)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(first); err != nil || len(b) < 8 || string(b[1:4]) != "asm" {
		t.Fatalf("not a wasm module: %v", err)
	}
	again, err := Build(ctx, src, cache)
	if err != nil || again != first {
		t.Fatalf("unchanged source rebuilt: %s vs %s (%v)", again, first, err)
	}
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	write("main.go", plugin+"\nvar _ = 1\n")
	edited, err := Build(ctx, src, cache)
	if err != nil || edited == first {
		t.Fatalf("edited source not rebuilt (%v)", err)
	}
	write("extra.go", "package main\n\nvar extra = 2\n")
	added, err := Build(ctx, src, cache)
	if err != nil || added == edited {
		t.Fatalf("new file not rebuilt (%v)", err)
	}
	write("broken.go", "package main\n\nfunc broken( {\n")
	if _, err := Build(ctx, src, cache); err == nil {
		t.Fatal("a broken plugin built")
	}
}
