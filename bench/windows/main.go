// Command windows measures wsp's keyed event-time windows on records already
// in memory (key and event time set, as a Nexmark generator hands them
// over), against a plain Go loop doing the same aggregation in the same run.
//
// The data (issue "windowing"): 10,000 keys chosen uniformly, event times
// rising 1 ms per record (so windows close all through the run), windows of
// 10 s, 10 M records. Each record's value is a small JSON object with the
// field `v` the aggregates read (the window step extracts it natively).
//
// Figures: records per CPU-second (user + system of this process: Nexmark's
// per-core measure) and records per wall-clock second with all workers.
//
//	go run ./bench/windows -n 10000000
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	wsp "github.com/wsp-project/wsp/runtime"
	"github.com/wsp-project/wsp/runtime/record"
)

func main() {
	n := flag.Int("n", 10_000_000, "records per run")
	keys := flag.Int("keys", 10_000, "distinct keys")
	workers := flag.Int("workers", 2, "wsp workers for the wall-clock run")
	count := flag.Int("count", 1, "rounds: each case runs once per round, after the native loop; the table gives medians")
	only := flag.String("only", "", "run only the cases whose name contains this")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	memProf := flag.String("memprofile", "", "write an allocation profile here at the end")
	root := flag.String("root", ".", "repository root (for the Wasm aggregate test guest)")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	aggModule = filepath.Join(*root, "plugins", "testdata", "wasm", "go_sumagg.wasm")
	stateModule = filepath.Join(*root, "plugins", "testdata", "wasm", "go_statesum.wasm")
	if err := run(*n, *keys, *workers, max(1, *count), *only); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench-windows:", err)
		os.Exit(1)
	}
	if *memProf != "" {
		f, err := os.Create(*memProf)
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// gen is an Input that makes records on the fly: key uniform over keys,
// time rising 1 ms per record from t0, value {"v":<int>}.
type gen struct {
	n, next, bs int
	keyBytes    [][]byte
	vals        [][]byte
	rng         *rand.Rand
	t0          int64
	acked       atomic.Int64
	stopAt      int    // > 0: call stop once this many records are read
	stop        func() // (a stop as by SIGTERM, for the recovery figure)
}

func newGen(n, keys int) *gen {
	g := &gen{n: n, bs: 1024, rng: rand.New(rand.NewPCG(1, 2)), t0: 1_700_000_000_000}
	for k := range keys {
		g.keyBytes = append(g.keyBytes, []byte(fmt.Sprintf("k-%05d", k)))
	}
	for v := range 1000 {
		g.vals = append(g.vals, []byte(`{"v":`+strconv.Itoa(v)+`}`))
	}
	return g
}

func (g *gen) Read(ctx context.Context) (*record.Batch, wsp.AckFunc, error) {
	if g.stopAt > 0 && g.next >= g.stopAt {
		g.stop()
		<-ctx.Done()
		return nil, nil, ctx.Err()
	}
	if g.next >= g.n {
		return nil, nil, wsp.ErrEndOfInput
	}
	m := min(g.bs, g.n-g.next)
	b := &record.Batch{Source: record.Source{Input: "gen"}, Records: make([]record.Record, m)}
	for i := range b.Records {
		r := &b.Records[i]
		r.Key = g.keyBytes[g.rng.IntN(len(g.keyBytes))]
		r.Time = g.t0 + int64(g.next)
		r.Value = g.vals[g.next%len(g.vals)]
		r.Flags = record.HasKey | record.HasTime
		r.Pos = int64(g.next)
		g.next++
	}
	return b, func(context.Context, error) error { g.acked.Add(int64(m)); return nil }, nil
}

func (g *gen) Close(context.Context) error { return nil }

// sink counts results.
type sink struct{ n atomic.Int64 }

func (s *sink) Write(_ context.Context, b *record.Batch) error { s.n.Add(int64(b.Len())); return nil }
func (s *sink) Close(context.Context) error                    { return nil }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type measured struct {
	wall, cpu time.Duration
	results   int64
}

// runPipeline runs yaml over n generated records.
func runPipeline(yaml string, n, keys, workers int) (measured, error) {
	p, err := wsp.Parse([]byte(yaml), ".")
	if err != nil {
		return measured{}, err
	}
	g := newGen(n, keys)
	out := &sink{}
	runtime.GC()
	start, cpu0 := time.Now(), cpuNow()
	sum, err := p.Run(context.Background(), wsp.Options{Workers: workers, Input: g, Output: out,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	m := measured{wall: time.Since(start), cpu: cpuNow() - cpu0, results: out.n.Load()}
	if err != nil {
		return m, err
	}
	if sum.InputRecords != int64(n) || g.acked.Load() != int64(n) {
		return m, fmt.Errorf("read %d, acked %d of %d", sum.InputRecords, g.acked.Load(), n)
	}
	return m, nil
}

const tumbling = `
pipeline:
  - window:
      tumbling: { size: 10s }
      aggregates: { sum: sum(v) }
`

// aggModule is the Go SDK test guest sumagg: count and sum of v.
var aggModule string

// wasmTumbling is tumbling with the count and sum in a Wasm aggregate
// instead of built in.
func wasmTumbling() string {
	abs, _ := filepath.Abs(aggModule)
	return fmt.Sprintf(`
pipeline:
  - window:
      tumbling: { size: 10s }
      aggregate: { module: %q }
`, abs)
}

// stateModule is the Go SDK test guest statesum: per key, count and sum
// of v in keyed state.
var stateModule string

// wasmState keeps the per-key count and sum in a Wasm function's keyed
// state (no window: the state step's own cost).
func wasmState() string {
	abs, _ := filepath.Abs(stateModule)
	return fmt.Sprintf(`
pipeline:
  - wasm: { module: %q }
`, abs)
}

const sliding = `
pipeline:
  - window:
      sliding: { size: 10s, slide: 2s }
      aggregates: { sum: sum(v) }
`

const session = `
pipeline:
  - window:
      session: { gap: 5s }
      aggregates: { sum: sum(v) }
`

// benchCase is one row of the table.
type benchCase struct {
	name    string
	workers int
	run     func() (measured, error)
	n       int // records per run
	runs    []measured
	ratios  []float64 // records per CPU-second over the native loop's in the same round
}

func run(n, keys, workers, count int, only string) error {
	fmt.Printf("# wsp windows benchmark: %d records, %d keys, times +1 ms per record, %s, %d CPUs, %d round(s)\n\n",
		n, keys, runtime.Version(), runtime.NumCPU(), count)
	want := func(name string) bool { return only == "" || strings.Contains(name, only) }
	native := &benchCase{name: "native Go loop: tumbling 10 s count+sum (one goroutine)", workers: 1, n: n,
		run: func() (measured, error) { return nativeTumbling(n, keys), nil }}
	cases := []*benchCase{native}
	for _, c := range []struct {
		name, yaml string
	}{{"wsp tumbling 10 s count+sum", tumbling}, {"wsp Wasm aggregate (Go SDK guest): tumbling 10 s count+sum", wasmTumbling()},
		{"wsp sliding 10 s / 2 s count+sum", sliding}, {"wsp session gap 5 s count+sum", session},
		{"wsp Wasm keyed state (Go SDK guest): per-key count+sum, no window", wasmState()}} {
		if !want(c.name) {
			continue
		}
		for _, w := range uniq(1, workers) {
			cases = append(cases, &benchCase{name: c.name, workers: w, n: n,
				run: func() (measured, error) { return runPipeline(c.yaml, n, keys, w) }})
		}
	}
	cases = append(cases, extraCases(n, keys, want)...)
	// Rounds: every case once per round, the native loop first, so each
	// case's ratio compares runs minutes apart at most on this noisy VM.
	for round := 0; round < count; round++ {
		for _, c := range cases {
			m, err := c.run()
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.runs = append(c.runs, m)
			c.ratios = append(c.ratios, perCPU(c.n, m)/perCPU(native.n, native.runs[round]))
		}
	}
	fmt.Println("| case | workers | records per CPU-second: median (min-max) | records/s wall: median | CPU s per run | per CPU-second / native loop's (median) | results per run |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, c := range cases {
		if len(c.runs) == 0 {
			continue
		}
		var pc, wall, cpu []float64
		for _, m := range c.runs {
			pc = append(pc, perCPU(c.n, m))
			wall = append(wall, float64(c.n)/m.wall.Seconds())
			cpu = append(cpu, m.cpu.Seconds())
		}
		fmt.Printf("| %s | %d | %.0f (%.0f-%.0f) | %.0f | %.2f | %.2f | %d |\n", c.name, c.workers, median(pc), slices.Min(pc), slices.Max(pc),
			median(wall), median(cpu), median(c.ratios), c.runs[0].results)
	}
	if want("memory") {
		fmt.Println()
		for _, shape := range [][2]int{{100_000, 10}, {1_000_000, 1}} {
			b, states := stateBytes(shape[0], shape[1])
			fmt.Printf("State memory, tumbling count+sum: %.0f bytes per (key, window) over %d open (key, window) states (%d keys x %d windows)\n",
				b, states, shape[0], shape[1])
		}
	}
	return nil
}

func perCPU(n int, m measured) float64 { return float64(n) / m.cpu.Seconds() }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// extraCases are cases defined in other files of the benchmark (nil when
// none).
var extraCases = func(n, keys int, want func(string) bool) []*benchCase { return nil }

func uniq(a, b int) []int {
	if a == b {
		return []int{a}
	}
	return []int{a, b}
}

// nativeTumbling is the physical limit: one loop, a map per key of open
// windows, fired as the watermark (max time - 1, no out-of-orderness)
// passes their end. Same generator, same JSON value read (a hand-written
// scan of {"v":N}).
func nativeTumbling(n, keys int) measured {
	g := newGen(n, keys)
	type acc struct {
		start    int64
		cnt      int64
		sum      float64
		inFiring bool
	}
	open := map[string]*acc{}
	var pending []*acc // windows in the current 10 s bucket, in order
	var results int64
	const size = 10_000
	cur := int64(-1)
	runtime.GC()
	start, cpu0 := time.Now(), cpuNow()
	var keysOf []string
	for {
		b, ack, err := g.Read(context.Background())
		if err != nil {
			break
		}
		for i := range b.Records {
			r := &b.Records[i]
			ws := r.Time - r.Time%size
			if ws != cur {
				// The watermark passed the previous window's end: fire it.
				for j, a := range pending {
					_ = a
					results++
					delete(open, keysOf[j])
				}
				pending, keysOf, cur = pending[:0], keysOf[:0], ws
			}
			a := open[string(r.Key)]
			if a == nil {
				a = &acc{start: ws}
				open[string(r.Key)] = a
				pending = append(pending, a)
				keysOf = append(keysOf, string(r.Key))
			}
			a.cnt++
			a.sum += float64(parseV(r.Value))
		}
		_ = ack(context.Background(), nil)
	}
	results += int64(len(pending))
	return measured{wall: time.Since(start), cpu: cpuNow() - cpu0, results: results}
}

// parseV reads N from {"v":N}.
func parseV(b []byte) int {
	n := 0
	for _, c := range b[5 : len(b)-1] {
		n = n*10 + int(c-'0')
	}
	return n
}

// stateBytes measures the heap held per open (key, window) state of a
// tumbling count+sum window: keys × wins windows added with the watermark
// held back, so nothing fires.
func stateBytes(keys, wins int) (float64, int) {
	yaml := `
pipeline:
  - window:
      tumbling: { size: 1s }
      watermark: { out_of_orderness: 1h }
      aggregates: { sum: sum(v) }
`
	p, err := wsp.Parse([]byte(yaml), ".")
	if err != nil {
		panic(err)
	}
	in := &stateInput{keys: keys, wins: wins, absorbed: make(chan struct{})}
	hold := make(chan struct{})
	in.done = hold
	debug.SetGCPercent(-1)
	defer debug.SetGCPercent(100)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Run(context.Background(), wsp.Options{Workers: 1, Input: in, Output: &sink{}})
		errc <- err
	}()
	<-in.absorbed
	runtime.GC()
	runtime.ReadMemStats(&after)
	close(hold)
	if err := <-errc; err != nil {
		panic(err)
	}
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(keys*wins), keys * wins
}

// stateInput sends keys × wins records, one per (key, window), then waits
// (holding the run open, so the windows stay open) until done is closed.
type stateInput struct {
	keys, wins, next int
	acked            atomic.Int64
	absorbed         chan struct{}
	done             chan struct{}
	once             bool
}

func (s *stateInput) Read(ctx context.Context) (*record.Batch, wsp.AckFunc, error) {
	total := s.keys * s.wins
	if s.next >= total {
		if !s.once {
			s.once = true
			// Every batch is acked once absorbed into window state.
			for s.acked.Load() < int64(total) {
				time.Sleep(time.Millisecond)
			}
			close(s.absorbed)
			<-s.done
		}
		return nil, nil, wsp.ErrEndOfInput
	}
	b := &record.Batch{Source: record.Source{Input: "state"}}
	for i := 0; i < 1024 && s.next < total; i++ {
		k, w := s.next%s.keys, s.next/s.keys
		b.Records = append(b.Records, record.Record{Key: []byte(fmt.Sprintf("k-%06d", k)), Time: int64(w) * 1000,
			Value: []byte(`{"v":1}`), Flags: record.HasKey | record.HasTime})
		s.next++
	}
	n := int64(b.Len())
	return b, func(context.Context, error) error { s.acked.Add(n); return nil }, nil
}

func (s *stateInput) Close(context.Context) error { return nil }
