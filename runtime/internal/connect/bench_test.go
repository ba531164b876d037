package connect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const benchLines = 100_000

// benchFile writes a JSON-lines file of benchLines ~100-byte records.
func benchFile(b *testing.B) (string, int64) {
	b.Helper()
	var sb strings.Builder
	for n := range benchLines {
		fmt.Fprintf(&sb, `{"id":%d,"sensor":"s-%03d","temperature":%d.%d,"unit":"celsius","site":"north-west-%d"}`+"\n",
			n, n%997, 15+n%20, n%10, n%7)
	}
	path := filepath.Join(b.TempDir(), "bench.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path, int64(sb.Len())
}

func benchInput(b *testing.B, opts Options) {
	path, size := benchFile(b)
	conf := map[string]any{"file": map[string]any{"paths": []any{path}}}
	ctx := context.Background()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	total := 0
	for b.Loop() {
		in, err := NewInput(ctx, conf, opts)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			batch, ack, err := in.Read(ctx)
			if errors.Is(err, ErrEndOfInput) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += batch.Len()
			if err := ack(ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := in.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if n != benchLines {
			b.Fatalf("%d records, want %d", n, benchLines)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkNativeFileInput reads a 100k-line file with the native input.
func BenchmarkNativeFileInput(b *testing.B) { benchInput(b, Options{Native: true}) }

// BenchmarkBenthosFileInput reads the same file through Benthos.
func BenchmarkBenthosFileInput(b *testing.B) { benchInput(b, Options{Native: false}) }
