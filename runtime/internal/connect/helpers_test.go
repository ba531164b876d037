package connect

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/record"
)

// got is one record as a test sees it.
type got struct {
	Value     string
	Pos       int64
	Partition string
}

// writeFiles creates files (name -> content) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testCtx is a context that fails the test if it hangs.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readAll reads in to its end, acking every batch after it is read, and
// closes it. It also returns the batches' sizes.
func readAll(t testing.TB, in Input) ([]got, []int) {
	t.Helper()
	ctx := testCtx(t)
	var out []got
	var sizes []int
	ended := map[string]bool{}
	for {
		b, ack, err := in.Read(ctx)
		if errors.Is(err, ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		// A partition's end is marked once, on its last batch (which may be
		// empty: then it is not counted in sizes).
		if ended[b.Source.Partition] {
			t.Fatalf("a batch of partition %q after its end", b.Source.Partition)
		}
		ended[b.Source.Partition] = b.Source.PartitionEnd
		if b.Len() == 0 {
			if !b.Source.PartitionEnd {
				t.Fatalf("an empty batch that marks nothing")
			}
			if err := ack(ctx, nil); err != nil {
				t.Fatalf("ack: %v", err)
			}
			continue
		}
		sizes = append(sizes, b.Len())
		out = append(out, records(b)...)
		if err := ack(ctx, nil); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if err := in.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out, sizes
}

func records(b *record.Batch) []got {
	var out []got
	for i := range b.Records {
		r := &b.Records[i]
		out = append(out, got{Value: string(r.Value), Pos: r.Pos, Partition: b.Source.Partition})
	}
	return out
}

func values(gs []got) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Value
	}
	return out
}

// batchOf makes a batch of values.
func batchOf(vals ...string) *record.Batch {
	b := &record.Batch{Source: record.Source{Input: "test"}}
	for i, v := range vals {
		b.Records = append(b.Records, record.Record{Value: []byte(v), Pos: int64(i + 1)})
	}
	return b
}

func mustInput(t testing.TB, conf map[string]any, opts Options) Input {
	t.Helper()
	in, err := NewInput(testCtx(t), conf, opts)
	if err != nil {
		t.Fatalf("NewInput: %v", err)
	}
	return in
}

func mustOutput(t testing.TB, conf map[string]any, opts Options) Output {
	t.Helper()
	out, err := NewOutput(testCtx(t), conf, opts)
	if err != nil {
		t.Fatalf("NewOutput: %v", err)
	}
	return out
}

var native = Options{Native: true}
var viaBenthos = Options{Native: false}
