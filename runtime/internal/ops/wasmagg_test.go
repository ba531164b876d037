package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/wsp-project/wsp/runtime/internal/window"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// TestWasmAggregateFailures: the test guest trapagg fails on v = 666 (add)
// and on merging a sum of 777. Such a failure loses nothing: every record
// stays in its window's count, the failing window's results carry
// "aggregate_error" instead of the module's fields, and every other window,
// also of the same batch, keeps its Wasm result.
func TestWasmAggregateFailures(t *testing.T) {
	eng, err := plugin.NewEngine(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	m, err := eng.LoadFile(context.Background(), filepath.Join("..", "..", "..", "plugins", "testdata", "wasm", "go_trapagg.wasm"),
		plugin.Options{Function: plugin.Aggregate})
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := ParseAgg("sum", "sum(v)")
	type rec struct {
		key string
		t   int64
		v   int
	}
	type want struct {
		key           string
		count         int
		wasmCount     int // -1: an aggregate_error instead
		errorContains string
	}
	cases := []struct {
		name    string
		step    WindowStep
		batches [][]rec
		want    []want
	}{{
		name: "tumbling: only the window with the bad record",
		step: WindowStep{Size: 1000},
		batches: [][]rec{
			{{"a", 0, 1}},
			{{"a", 10, 2}, {"b", 15, 3}, {"a", 20, 666}, {"c", 30, 4}, {"a", 40, 5}},
			{{"a", 50, 6}}, // after the failure: counted, not given to the module
		},
		want: []want{{"a", 5, -1, "666 is refused"}, {"b", 1, 1, ""}, {"c", 1, 1, ""}},
	}, {
		name: "session: a bridge whose merge fails",
		step: WindowStep{Gap: 100},
		batches: [][]rec{
			{{"a", 0, 1}, {"a", 200, 777}, {"b", 0, 9}},
			{{"a", 100, 5}}, // bridges [0,100) and [200,300): merging 777 fails
		},
		want: []want{{"b", 1, 1, ""}, {"a", 3, -1, "merging two sessions"}},
	}, {
		name: "global: the failing window only; the key's next window is fine",
		step: WindowStep{Count: 2},
		batches: [][]rec{
			{{"a", 0, 666}, {"a", 1, 1}, {"a", 2, 2}, {"a", 3, 3}},
		},
		want: []want{{"a", 2, -1, "666"}, {"a", 2, 2, ""}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s := c.step
			s.StepName, s.KeyName, s.Aggs, s.Aggregate = "w", "id", []Agg{sum}, m
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			kw, err := s.NewWorker(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer kw.Close(ctx)
			failures := wasmAggFailures.Load()
			var got []string
			collect := func(res *plugin.Result) {
				for _, r := range res.Ports[0].Records {
					got = append(got, string(r.Value))
				}
				if len(res.Failed) != 0 {
					t.Fatalf("records failed (to the error output): %+v", res.Failed)
				}
			}
			for _, batch := range c.batches {
				b := &record.Batch{}
				for _, r := range batch {
					b.Records = append(b.Records, record.Record{Key: []byte(r.key), Time: r.t,
						Value: fmt.Appendf(nil, `{"v":%d}`, r.v), Flags: record.HasKey | record.HasTime})
				}
				res := &plugin.Result{Ports: make([]record.Batch, 2)}
				if err := kw.Add(ctx, b, res); err != nil {
					t.Fatalf("Add: %v (a failing aggregate must not fail the batch)", err)
				}
				collect(res)
			}
			for done := false; !done; {
				res := &plugin.Result{Ports: make([]record.Batch, 2)}
				if done, err = kw.Advance(ctx, window.EndOfTime, res); err != nil {
					t.Fatal(err)
				}
				collect(res)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d results, want %d: %q", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				var r struct {
					ID             string
					Count          int
					WasmCount      *int   `json:"wasm_count"`
					AggregateError string `json:"aggregate_error"`
				}
				if err := json.Unmarshal([]byte(got[i]), &r); err != nil {
					t.Fatalf("%s: %v", got[i], err)
				}
				ok := r.ID == w.key && r.Count == w.count
				if w.wasmCount < 0 {
					ok = ok && r.WasmCount == nil && r.AggregateError != "" && contains(r.AggregateError, w.errorContains)
				} else {
					ok = ok && r.WasmCount != nil && *r.WasmCount == w.wasmCount && r.AggregateError == ""
				}
				if !ok {
					t.Errorf("result %d: %s, want %+v", i, got[i], w)
				}
			}
			if wasmAggFailures.Load() == failures {
				t.Error("no aggregate failure counted")
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
