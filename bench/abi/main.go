package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	wsp "github.com/wsp-project/wsp/runtime"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

func main() {
	root := flag.String("root", ".", "repository root")
	benchtime := flag.Duration("benchtime", time.Second, "time per measurement")
	count := flag.Int("count", 1, "measurements per figure, interleaved Wasm/native; the table shows medians")
	only := flag.String("only", "", "run only the workloads whose name contains this text")
	sizes := flag.String("batches", "1,64,1024", "batch sizes, comma-separated")
	flag.Parse()
	cfg := config{benchtime: *benchtime, count: *count, only: *only}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench-abi: -batches: %q is not a positive integer\n", f)
			os.Exit(2)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if cfg.count < 1 {
		fmt.Fprintln(os.Stderr, "bench-abi: -count must be at least 1")
		os.Exit(2)
	}
	if err := run(*root, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench-abi:", err)
		os.Exit(1)
	}
}

type config struct {
	benchtime time.Duration
	count     int    // measurements per figure
	only      string // workload name filter
	sizes     []int  // batch sizes
}

// cost is one measurement: nanoseconds per record of wall-clock time and of
// CPU time (user + system) charged to the process.
type cost struct{ wall, cpu float64 }

// cpuNow returns the CPU time (user + system) the kernel has charged to this
// process. On a shared VM, time the hypervisor steals is not charged, so CPU
// time moves less between runs than wall time does.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure returns the cost per record of p over the batches, cycling through
// them for at least d.
func measure(p processor, bs []*record.Batch, d time.Duration) (cost, error) {
	var res plugin.Result
	var err error
	recs := 0
	for _, b := range bs {
		recs += b.Len()
	}
	// warm up
	for _, b := range bs {
		if err = p.Process(b, &res); err != nil {
			return cost{}, err
		}
	}
	start, cpu0 := time.Now(), cpuNow()
	done := 0
	for time.Since(start) < d {
		for _, b := range bs {
			if err = p.Process(b, &res); err != nil {
				return cost{}, err
			}
		}
		done += recs
	}
	wall, cpu := time.Since(start), cpuNow()-cpu0
	return cost{float64(wall.Nanoseconds()) / float64(done), float64(cpu.Nanoseconds()) / float64(done)}, nil
}

// median of xs (which it sorts).
func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// compare measures Wasm and native count times each, alternating which goes
// first, and returns the medians and the spread of the CPU-time overhead.
func compare(w, nat processor, bs []*record.Batch, cfg config) (row, error) {
	var ww, wc, nw, nc, ov []float64
	for i := 0; i < cfg.count; i++ {
		var a, b cost
		var err error
		if i%2 == 0 {
			if a, err = measure(w, bs, cfg.benchtime); err == nil {
				b, err = measure(nat, bs, cfg.benchtime)
			}
		} else {
			if b, err = measure(nat, bs, cfg.benchtime); err == nil {
				a, err = measure(w, bs, cfg.benchtime)
			}
		}
		if err != nil {
			return row{}, err
		}
		ww, wc, nw, nc = append(ww, a.wall), append(wc, a.cpu), append(nw, b.wall), append(nc, b.cpu)
		ov = append(ov, a.cpu-b.cpu)
	}
	r := row{wasmWall: median(ww), wasmCPU: median(wc), natWall: median(nw), natCPU: median(nc), overhead: median(ov)}
	r.lo, r.hi = ov[0], ov[len(ov)-1] // median sorted ov
	return r, nil
}

type row struct {
	wasmWall, wasmCPU, natWall, natCPU float64
	overhead, lo, hi                   float64 // CPU ns/record, Wasm minus native: median, min, max
}

func run(root string, cfg config) error {
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
	fmt.Printf("# wsp ABI benchmark (%s, GOMAXPROCS=1, %s per measurement, median of %d interleaved Wasm/native pairs)\n\n",
		runtime.Version(), cfg.benchtime, cfg.count)
	fmt.Println("CPU = user+system ns per record charged to the process; overhead = Wasm CPU minus native CPU (median, and min-max over the pairs).")
	fmt.Println()
	fmt.Println("| workload | batch | Wasm CPU ns/rec | native CPU ns/rec | overhead ns/rec | overhead min-max | Wasm wall ns/rec | native wall ns/rec | Wasm M rec/s (CPU) | native/Wasm |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
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
			if cfg.only != "" && !strings.Contains(name, cfg.only) {
				continue
			}
			m, err := eng.LoadFile(ctx, path, plugin.Options{Timeout: md.timeout})
			if err != nil {
				return err
			}
			in, err := m.Instance(ctx)
			if err != nil {
				return err
			}
			w := wasmProc{in}
			for _, n := range cfg.sizes {
				r, err := compare(w, g.native, batches(data[g.data], n), cfg)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %.1f-%.1f | %.1f | %.1f | %.2f | %.2f |\n",
					name, n, r.wasmCPU, r.natCPU, r.overhead, r.lo, r.hi, r.wasmWall, r.natWall, 1e3/r.wasmCPU, r.wasmCPU/r.natCPU)
			}
			// Fixed cost of one call: an empty batch (the guest still reads the
			// header and writes an empty chunk).
			empty := &record.Batch{Source: record.Source{Input: "bench"}}
			var res plugin.Result
			var per []float64
			for i := 0; i < cfg.count; i++ {
				cpu0 := cpuNow()
				start := time.Now()
				calls := 0
				for time.Since(start) < cfg.benchtime/4 {
					for j := 0; j < 1000; j++ {
						if err := in.Call(ctx, empty, &res); err != nil {
							return err
						}
					}
					calls += 1000
				}
				per = append(per, float64((cpuNow()-cpu0).Nanoseconds())/float64(calls))
			}
			fixed = append(fixed, fmt.Sprintf("| %s | %.0f |", name, median(per)))
			_ = in.Close(ctx)
			_ = m.Close(ctx)
		}
	}
	fmt.Println("\nFixed cost of one batch call (empty batch: export call, batch_read, batch_write, time-limit timer), CPU ns, median:")
	fmt.Println()
	fmt.Println("| workload | ns per call |")
	fmt.Println("|---|---:|")
	for _, f := range fixed {
		fmt.Println(f)
	}
	return nil
}
