package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	wsp "github.com/wsp-project/wsp/runtime"
	"github.com/wsp-project/wsp/runtime/record"
)

// collect keeps every result.
type collect struct {
	mu   sync.Mutex
	vals []string
}

func (c *collect) Write(_ context.Context, b *record.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range b.Records {
		c.vals = append(c.vals, string(r.Value))
	}
	return nil
}
func (c *collect) Close(context.Context) error { return nil }

// TestBenchmarkAnswers is the benchmark's twin: on a small run, each
// pipeline's results are checked against a direct computation over the
// same generated records (every record counted in each of its windows, sums
// equal), so the figures in bench/README.md are for correct work.
func TestBenchmarkAnswers(t *testing.T) {
	aggModule = filepath.Join("..", "..", "plugins", "testdata", "wasm", "go_sumagg.wasm")
	const n, keys = 200_000, 1000
	// The generated records, directly.
	g := newGen(n, keys)
	var recs []record.Record
	for {
		b, _, err := g.Read(context.Background())
		if err != nil {
			break
		}
		recs = append(recs, b.Records...)
	}
	total := 0.0
	for i := range recs {
		total += float64(parseV(recs[i].Value))
	}
	for _, c := range []struct {
		name, yaml string
		perRecord  int // windows each record is in
	}{{"tumbling", tumbling, 1}, {"sliding", sliding, 5}, {"session", session, 1}, {"wasm", wasmTumbling(), 1}} {
		t.Run(c.name, func(t *testing.T) {
			p, err := wsp.Parse([]byte(c.yaml), ".")
			if err != nil {
				t.Fatal(err)
			}
			out := &collect{}
			if _, err := p.Run(context.Background(), wsp.Options{Workers: 2, Input: newGen(n, keys), Output: out}); err != nil {
				t.Fatal(err)
			}
			count, sum := 0, 0.0
			for _, v := range out.vals {
				var r struct {
					Count     int
					Sum       float64
					WasmCount int     `json:"wasm_count"`
					WasmSum   float64 `json:"wasm_sum"`
				}
				if err := json.Unmarshal([]byte(v), &r); err != nil {
					t.Fatal(err)
				}
				if c.name == "wasm" {
					if r.WasmCount != r.Count {
						t.Fatalf("wasm count %d, count %d", r.WasmCount, r.Count)
					}
					r.Sum = r.WasmSum
				}
				count += r.Count
				sum += r.Sum
			}
			if count != c.perRecord*n || sum != float64(c.perRecord)*total {
				t.Fatalf("counts %d (want %d), sums %v (want %v)", count, c.perRecord*n, sum, float64(c.perRecord)*total)
			}
		})
	}
	// The native loop fires as many tumbling windows as the pipeline.
	if m := nativeTumbling(n, keys); m.results == 0 {
		t.Fatal("native loop fired nothing")
	} else {
		p, _ := wsp.Parse([]byte(tumbling), ".")
		out := &collect{}
		if _, err := p.Run(context.Background(), wsp.Options{Workers: 1, Input: newGen(n, keys), Output: out}); err != nil {
			t.Fatal(err)
		}
		if int64(len(out.vals)) != m.results {
			t.Fatalf("native %d windows, wsp %d", m.results, len(out.vals))
		}
	}
}
