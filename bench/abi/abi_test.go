package main

import (
	"context"
	"fmt"
	"os"
	"testing"

	wsp "github.com/wsp-project/wsp/runtime"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// TestWorkloadsAgree is the benchmark's twin: every Wasm workload must give
// the same records, failures and drops as its native counterpart, at every
// batch size the benchmark uses.
func TestWorkloadsAgree(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	eng, err := plugin.NewEngine("")
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	data := map[string][]record.Record{"100B": records100(3000), "sensor": sensorRecords(3000)}
	for _, g := range guestSpecs(repo()) {
		t.Run(g.name, func(t *testing.T) {
			path := g.path
			if wsp.IsGoSource(path) {
				if path, err = wsp.BuildGoPlugin(ctx, path, cache); err != nil {
					t.Fatal(err)
				}
			} else if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			m, err := eng.LoadFile(ctx, path, plugin.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			in, err := m.Instance(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close(ctx)
			for _, n := range []int{1, 64, 1024} {
				for bi, b := range batches(data[g.data], n) {
					var wr, nr plugin.Result
					if err := (wasmProc{in}).Process(b, &wr); err != nil {
						t.Fatal(err)
					}
					if err := g.native.Process(b, &nr); err != nil {
						t.Fatal(err)
					}
					if d := diff(&wr, &nr); d != "" {
						t.Fatalf("batch size %d, batch %d: %s", n, bi, d)
					}
				}
			}
		})
	}
}

func diff(w, n *plugin.Result) string {
	wo, no := w.Ports[0].Records, n.Ports[0].Records
	if len(wo) != len(no) {
		return fmt.Sprintf("wasm emitted %d records, native %d", len(wo), len(no))
	}
	for i := range wo {
		if string(wo[i].Value) != string(no[i].Value) || wo[i].Time != no[i].Time || wo[i].Pos != no[i].Pos {
			return fmt.Sprintf("record %d: wasm %q, native %q", i, wo[i].Value, no[i].Value)
		}
	}
	if len(w.Failed) != len(n.Failed) || w.Dropped != n.Dropped {
		return fmt.Sprintf("wasm %d failed %d dropped, native %d failed %d dropped", len(w.Failed), w.Dropped, len(n.Failed), n.Dropped)
	}
	for i := range w.Failed {
		if w.Failed[i] != n.Failed[i] {
			return fmt.Sprintf("failure %d: wasm %+v, native %+v", i, w.Failed[i], n.Failed[i])
		}
	}
	return ""
}
