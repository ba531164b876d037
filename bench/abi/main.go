package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	wsp "github.com/wsp-project/wsp/runtime"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

func main() {
	root := flag.String("root", ".", "repository root")
	benchtime := flag.Duration("benchtime", time.Second, "time per measurement")
	flag.Parse()
	if err := run(*root, *benchtime); err != nil {
		fmt.Fprintln(os.Stderr, "bench-abi:", err)
		os.Exit(1)
	}
}

// measure returns ns per record of p over the batches, cycling through them.
func measure(p processor, bs []*record.Batch, d time.Duration) (float64, error) {
	var res plugin.Result
	var err error
	recs := 0
	for _, b := range bs {
		recs += b.Len()
	}
	// warm up
	for _, b := range bs {
		if err = p.Process(b, &res); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	done := 0
	for time.Since(start) < d {
		for _, b := range bs {
			if err = p.Process(b, &res); err != nil {
				return 0, err
			}
		}
		done += recs
	}
	return float64(time.Since(start).Nanoseconds()) / float64(done), nil
}

func run(root string, benchtime time.Duration) error {
	ctx := context.Background()
	cache, err := os.MkdirTemp("", "wsp-bench-abi")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	eng, err := plugin.NewEngine("")
	if err != nil {
		return err
	}
	defer eng.Close(ctx)
	runtime.GOMAXPROCS(1) // one core: per-core figures
	fmt.Printf("# wsp ABI benchmark (%s, GOMAXPROCS=1, %s per figure)\n\n", runtime.Version(), benchtime)
	fmt.Println("| workload | batch | Wasm ns/rec | native ns/rec | overhead ns/rec | Wasm M rec/s | native M rec/s | native/Wasm |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	data := map[string][]record.Record{"100B": records100(1 << 16), "sensor": sensorRecords(1 << 16)}
	var fixed []string
	type mode struct {
		label   string
		timeout time.Duration
	}
	modes := []mode{{"time limit on", 0}, {"time limit off", plugin.NoTimeout}}
	for _, g := range guestSpecs(root) {
		path := g.path
		if wsp.IsGoSource(path) {
			if path, err = wsp.BuildGoPlugin(ctx, path, cache); err != nil {
				return err
			}
		}
		for _, md := range modes {
			name := g.name + ", " + md.label
			m, err := eng.LoadFile(ctx, path, plugin.Options{Timeout: md.timeout})
			if err != nil {
				return err
			}
			in, err := m.Instance(ctx)
			if err != nil {
				return err
			}
			w := wasmProc{in}
			for _, n := range []int{1, 64, 1024} {
				bs := batches(data[g.data], n)
				wns, err := measure(w, bs, benchtime)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				nns, err := measure(g.native, bs, benchtime)
				if err != nil {
					return err
				}
				fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |\n",
					name, n, wns, nns, wns-nns, 1e3/wns, 1e3/nns, wns/nns)
			}
			// Fixed cost of one call: an empty batch (the guest still reads the
			// header and writes an empty chunk).
			empty := []*record.Batch{{Source: record.Source{Input: "bench"}}}
			var res plugin.Result
			start := time.Now()
			calls := 0
			for time.Since(start) < benchtime {
				for i := 0; i < 1000; i++ {
					if err := in.Call(ctx, empty[0], &res); err != nil {
						return err
					}
				}
				calls += 1000
			}
			fixed = append(fixed, fmt.Sprintf("| %s | %.0f |", name, float64(time.Since(start).Nanoseconds())/float64(calls)))
			_ = in.Close(ctx)
			_ = m.Close(ctx)
		}
	}
	fmt.Println("\nFixed cost of one batch call (empty batch: export call, batch_read, batch_write, time-limit timer):")
	fmt.Println()
	fmt.Println("| workload | ns per call |")
	fmt.Println("|---|---:|")
	for _, f := range fixed {
		fmt.Println(f)
	}
	return nil
}
