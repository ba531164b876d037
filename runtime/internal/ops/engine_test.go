package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/connect"
	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// sliceInput serves JSON lines in batches of bs, from several partitions
// in turn, and counts acks.
type sliceInput struct {
	lines [][]byte
	bs    int
	parts int
	next  int
	acked atomic.Int64
}

func (s *sliceInput) Read(ctx context.Context) (*record.Batch, connect.AckFunc, error) {
	if s.next >= len(s.lines) {
		return nil, nil, connect.ErrEndOfInput
	}
	b := &record.Batch{Source: record.Source{Input: "mem", Partition: "p" + strconv.Itoa(s.next/s.bs%s.parts)}}
	for i := 0; i < s.bs && s.next < len(s.lines); i++ {
		b.Records = append(b.Records, record.Record{Value: s.lines[s.next], Pos: int64(s.next + 1)})
		s.next++
	}
	n := int64(b.Len())
	return b, func(_ context.Context, err error) error {
		if err == nil {
			s.acked.Add(n)
		}
		return nil
	}, nil
}

func (s *sliceInput) Close(context.Context) error { return nil }

type sliceOutput struct {
	mu   sync.Mutex
	vals []string
}

func (o *sliceOutput) Write(_ context.Context, b *record.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range b.Records {
		o.vals = append(o.vals, string(r.Value))
	}
	return nil
}

func (o *sliceOutput) Close(context.Context) error { return nil }

// sensorLines makes n readings of keys sensors, event times rising with
// jitter below bound (so nothing is late with out-of-orderness bound).
func sensorLines(n, keys int, bound int64, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var out [][]byte
	for i := 0; i < n; i++ {
		ts := int64(i)*7 - 50_000 + r.Int64N(bound) // crosses zero: negative times too
		out = append(out, fmt.Appendf(nil, `{"id":"s-%03d","v":%.3f,"ts":%d}`, r.IntN(keys), 20+r.NormFloat64()*3, ts))
	}
	return out
}

// runWindowPipeline runs key -> event_time -> window over lines.
func runWindowPipeline(t *testing.T, lines [][]byte, workers, bs, parts int, win *WindowStep, bound int64) ([]string, *engine.Metrics, *sliceInput) {
	t.Helper()
	key := &KeyStep{StepName: "key", From: Source{Field: "id"}}
	ts := &TimeStep{StepName: "ts", From: Source{Field: "ts"}}
	w := *win
	for _, v := range []interface{ Validate() error }{key, ts, &w} {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	in := &sliceInput{lines: lines, bs: bs, parts: parts}
	out, errs := &sliceOutput{}, &sliceOutput{}
	m := engine.NewMetrics()
	err := engine.Run(context.Background(), context.Background(), engine.Config{
		Input: in, Steps: []engine.Step{key, ts}, Workers: workers, Metrics: m,
		Keyed:  &engine.Keyed{Chain: []engine.ChainStep{{Keyed: &w}}, OutOfOrder: bound},
		Output: engine.Output{Out: out}, ErrorOutput: engine.Output{Out: errs},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs.vals) > 0 {
		t.Fatalf("error output: %v", errs.vals[:1])
	}
	return out.vals, m, in
}

func windowAggs(t *testing.T) []Agg {
	var out []Agg
	for _, a := range [][2]string{{"sum", "sum(v)"}, {"mean", "mean(v)"}, {"var", "var_pop(v)"}, {"min", "min(v)"}, {"last", "last(v)"},
		{"p95", "quantile(v, 0.95)"}, {"n", "distinct(v)"}} {
		agg, err := ParseAgg(a[0], a[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, agg)
	}
	return out
}

// byWindow indexes results by key and window start.
func byWindow(t *testing.T, vals []string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, v := range vals {
		var m map[string]any
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprint(m["id"], "@", m["window_start"])
		if _, dup := out[k]; dup {
			t.Fatalf("window %s fired twice", k)
		}
		out[k] = m
	}
	return out
}

func sameResults(a, b map[string]map[string]any) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d windows vs %d", len(a), len(b))
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok {
			return "missing " + k
		}
		for f, xv := range x {
			xf, isF := xv.(float64)
			yf, _ := y[f].(float64)
			if isF && math.Abs(xf-yf) > 1e-9*math.Max(1, math.Abs(xf)) || !isF && xv != y[f] {
				return fmt.Sprintf("%s.%s: %v vs %v", k, f, xv, y[f])
			}
		}
	}
	return ""
}

// TestWindowPropertyWorkersAndBatches: for data within the out-of-orderness
// bound, window results do not depend on the number of workers, the batch
// size or the number of input partitions (semantics.md; issue "windowing").
func TestWindowPropertyWorkersAndBatches(t *testing.T) {
	const bound = 300
	lines := sensorLines(20_000, 37, bound, 1)
	for _, win := range []*WindowStep{
		{StepName: "tumbling", Size: 1000, Offset: 250, KeyName: "id", Aggs: windowAggs(t)},
		{StepName: "sliding", Size: 1000, Slide: 300, KeyName: "id", Aggs: windowAggs(t)},
		{StepName: "session", Gap: 150, KeyName: "id", Aggs: windowAggs(t)},
	} {
		t.Run(win.StepName, func(t *testing.T) {
			var ref map[string]map[string]any
			for _, c := range []struct{ workers, bs, parts int }{{1, 1000, 1}, {1, 1, 1}, {2, 7, 1}, {4, 100, 3}, {3, 4096, 2}} {
				vals, m, in := runWindowPipeline(t, lines, c.workers, c.bs, c.parts, win, bound)
				got := byWindow(t, vals)
				if in.acked.Load() != int64(len(lines)) {
					t.Fatalf("%+v: acked %d of %d", c, in.acked.Load(), len(lines))
				}
				s := m.Snapshot()
				if ws := s.Steps[2]; ws.In != int64(len(lines)) || ws.Dropped != 0 || ws.Failed != 0 || ws.Out != int64(len(vals)) {
					t.Fatalf("%+v: window counters %+v, %d results", c, ws, len(vals))
				}
				if ref == nil {
					ref = got
					total := 0.0
					for _, r := range got {
						total += r["count"].(float64)
					}
					if win.Slide == 0 && total != float64(len(lines)) {
						t.Fatalf("counts sum to %v, want %d", total, len(lines))
					}
					continue
				}
				if d := sameResults(ref, got); d != "" {
					t.Fatalf("workers %d, batch %d, partitions %d differ from workers 1, batch 1000: %s", c.workers, c.bs, c.parts, d)
				}
			}
			if win.Gap == 0 {
				checkDirect(t, lines, win, ref) // every window, computed directly
			} else {
				checkSessions(t, lines, win.Gap, ref)
			}
		})
	}
}

// checkDirect recomputes every window of the data the obvious way.
func checkDirect(t *testing.T, lines [][]byte, win *WindowStep, got map[string]map[string]any) {
	type acc struct {
		vals []float64
	}
	want := map[string]*acc{}
	slide := win.Slide
	if slide == 0 {
		slide = win.Size
	}
	for _, l := range lines {
		var r struct {
			ID string
			V  float64
			TS int64
		}
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		// every start s = k*slide + offset with s <= ts < s + size
		last := int64(math.Floor(float64(r.TS-win.Offset)/float64(slide)))*slide + win.Offset
		for s := last; s > r.TS-win.Size; s -= slide {
			k := fmt.Sprint(r.ID, "@", float64(s))
			if want[k] == nil {
				want[k] = &acc{}
			}
			want[k].vals = append(want[k].vals, r.V)
		}
	}
	if len(want) != len(got) {
		t.Fatalf("direct: %d windows, pipeline %d", len(want), len(got))
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := want[k].vals
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		mean := sum / float64(len(v))
		ss := 0.0
		for _, x := range v {
			ss += (x - mean) * (x - mean)
		}
		g := got[k]
		if g == nil {
			t.Fatalf("direct window %s missing", k)
		}
		if g["count"].(float64) != float64(len(v)) || math.Abs(g["mean"].(float64)-mean) > 1e-9*math.Abs(mean) ||
			math.Abs(g["var"].(float64)-ss/float64(len(v))) > 1e-9*math.Max(1, ss) {
			t.Fatalf("window %s: got %v, want count %d mean %v var %v", k, g, len(v), mean, ss/float64(len(v)))
		}
	}
}

// TestWindowRecordsWithoutKeyOrTime go to the error output with the reason.
func TestWindowRecordsWithoutKeyOrTime(t *testing.T) {
	ts := &TimeStep{StepName: "ts", From: Source{Field: "ts"}}
	w := &WindowStep{StepName: "w", Size: 10}
	for _, v := range []interface{ Validate() error }{ts, w} {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	in := &sliceInput{lines: [][]byte{[]byte(`{"ts":1}`), []byte(`{"ts":2}`)}, bs: 10, parts: 1}
	out, errs := &sliceOutput{}, &sliceOutput{}
	if err := engine.Run(context.Background(), context.Background(), engine.Config{
		Input: in, Steps: []engine.Step{ts}, Keyed: &engine.Keyed{Chain: []engine.ChainStep{{Keyed: w}}},
		Output: engine.Output{Out: out}, ErrorOutput: engine.Output{Out: errs},
	}); err != nil {
		t.Fatal(err)
	}
	if len(out.vals) != 0 || len(errs.vals) != 2 || in.acked.Load() != 2 {
		t.Fatalf("out %v errors %v acked %d", out.vals, errs.vals, in.acked.Load())
	}
	var e struct{ Error, Step string }
	_ = json.Unmarshal([]byte(errs.vals[0]), &e)
	if e.Step != "w" || e.Error != "the record has no key: add a key step before this keyed step" {
		t.Errorf("error record %+v", e)
	}
}

// checkSessions recomputes the sessions directly: per key, records sorted
// by time; a record within gap of the previous one (touching windows)
// continues its session.
func checkSessions(t *testing.T, lines [][]byte, gap int64, got map[string]map[string]any) {
	type pt struct {
		ts int64
		v  float64
	}
	per := map[string][]pt{}
	for _, l := range lines {
		var r struct {
			ID string
			V  float64
			TS int64
		}
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		per[r.ID] = append(per[r.ID], pt{r.TS, r.V})
	}
	n, merged := 0, 0
	for id, ps := range per {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].ts < ps[j].ts })
		for i := 0; i < len(ps); {
			j, sum := i+1, ps[i].v
			for j < len(ps) && ps[j].ts <= ps[j-1].ts+gap {
				sum += ps[j].v
				j++
			}
			k := fmt.Sprint(id, "@", float64(ps[i].ts))
			g := got[k]
			if g == nil || g["count"].(float64) != float64(j-i) || g["window_end"].(float64) != float64(ps[j-1].ts+gap) ||
				math.Abs(g["sum"].(float64)-sum) > 1e-9*math.Abs(sum) {
				t.Fatalf("session %s: got %v, want %d records ending %d, sum %v", k, g, j-i, ps[j-1].ts+gap, sum)
			}
			if j-i > 1 {
				merged++
			}
			n++
			i = j
		}
	}
	if n != len(got) || merged < 100 {
		t.Fatalf("%d sessions directly (%d of several records), %d from the pipeline", n, merged, len(got))
	}
}

// TestChainedWindows: window results flow into a second window of the same
// key (1 s counts summed into 5 s windows): the 5 s sums equal the 5 s
// counts computed directly, for any number of workers.
func TestChainedWindows(t *testing.T) {
	const bound = 300
	lines := sensorLines(20_000, 11, bound, 5)
	key := &KeyStep{StepName: "key", From: Source{Field: "id"}}
	ts := &TimeStep{StepName: "ts", From: Source{Field: "ts"}}
	sum, _ := ParseAgg("n", "sum(count)")
	direct := map[string]float64{}
	for _, l := range lines {
		var r struct {
			ID string
			TS int64
		}
		_ = json.Unmarshal(l, &r)
		direct[fmt.Sprint(r.ID, "@", float64(r.TS-((r.TS%5000)+5000)%5000))]++
	}
	for _, workers := range []int{1, 3} {
		w1 := &WindowStep{StepName: "w1", Size: 1000, KeyName: "id"}
		w2 := &WindowStep{StepName: "w2", Size: 5000, KeyName: "id", Aggs: []Agg{sum}}
		for _, v := range []interface{ Validate() error }{key, ts, w1, w2} {
			if err := v.Validate(); err != nil {
				t.Fatal(err)
			}
		}
		in := &sliceInput{lines: lines, bs: 500, parts: 1}
		out, errs := &sliceOutput{}, &sliceOutput{}
		m := engine.NewMetrics()
		if err := engine.Run(context.Background(), context.Background(), engine.Config{
			Input: in, Steps: []engine.Step{key, ts}, Workers: workers, Metrics: m,
			Keyed:  &engine.Keyed{Chain: []engine.ChainStep{{Keyed: w1}, {Keyed: w2}}, OutOfOrder: bound},
			Output: engine.Output{Out: out}, ErrorOutput: engine.Output{Out: errs},
		}); err != nil {
			t.Fatal(err)
		}
		got := byWindow(t, out.vals)
		if len(errs.vals) > 0 || len(got) != len(direct) {
			t.Fatalf("workers %d: %d windows (want %d), errors %v", workers, len(got), len(direct), errs.vals)
		}
		for k, n := range direct {
			if g := got[k]; g == nil || g["n"] != n || g["count"].(float64) > 5 {
				t.Fatalf("workers %d: window %s = %v, want n=%v", workers, k, got[k], n)
			}
		}
		if s := m.Snapshot(); s.Steps[2].Out != s.Steps[3].In || s.Steps[3].Dropped != 0 || s.Steps[3].Out != int64(len(direct)) {
			t.Fatalf("counters %+v", s.Steps)
		}
	}
}

// TestEarlyResultsDeterministic: with emission "updates", early results
// come from the data: a run gives the same results, early ones included,
// for any number of workers, for aligned and session windows. Early results by record count do not depend
// on batch sizes either; those by watermark do (the watermark moves per
// batch), as semantics.md says of watermarks.
func TestEarlyResultsDeterministic(t *testing.T) {
	const bound = 300
	lines := sensorLines(10_000, 13, bound, 7)
	for _, win := range []*WindowStep{
		{StepName: "every_ms", Size: 5000, KeyName: "id", Aggs: windowAggs(t), EarlyEveryMs: 1000},
		{StepName: "every_records", Size: 5000, KeyName: "id", Aggs: windowAggs(t), EarlyEveryRecords: 10},
		{StepName: "session_every_ms", Gap: 50, KeyName: "id", Aggs: windowAggs(t), EarlyEveryMs: 1000},
		{StepName: "session_every_records", Gap: 50, KeyName: "id", Aggs: windowAggs(t), EarlyEveryRecords: 10},
	} {
		var ref []string
		runs := []struct{ workers, bs int }{{1, 64}, {3, 64}}
		if win.EarlyEveryRecords > 0 && win.Gap == 0 {
			// Sessions depend on batch sizes beyond early results: a
			// record on time can touch a session that already closed
			// (then an update), which depends on where the watermark is.
			runs[0].bs = 1000
		}
		for _, c := range runs {
			vals, _, _ := runWindowPipeline(t, lines, c.workers, c.bs, 1, win, bound)
			early, final := 0, 0
			for _, v := range vals {
				switch {
				case strings.Contains(v, `"early":true`):
					early++
				case strings.Contains(v, `"early":false`):
					final++
				default:
					t.Fatalf("%s: a result without the early field: %s", win.StepName, v)
				}
			}
			sort.Strings(vals)
			if ref == nil {
				ref = vals
				if early == 0 || final == 0 {
					t.Fatalf("%s: %d early and %d final results", win.StepName, early, final)
				}
				continue
			}
			if strings.Join(vals, "\n") != strings.Join(ref, "\n") {
				t.Fatalf("%s: results differ with %d workers, batch %d", win.StepName, c.workers, c.bs)
			}
		}
	}
}

// TestGlobalCountWindows: a window per key every 7 records, the rest at
// the end of the input; the same results for any workers and batch sizes
// (per-key order is kept), and every record counted once.
func TestGlobalCountWindows(t *testing.T) {
	lines := sensorLines(5_000, 9, 100, 11)
	var ref []string
	for _, c := range []struct{ workers, bs int }{{1, 1000}, {3, 17}} {
		win := &WindowStep{StepName: "global", Count: 7, KeyName: "id", Aggs: windowAggs(t)}
		vals, _, _ := runWindowPipeline(t, lines, c.workers, c.bs, 1, win, 100)
		total, partial := 0, 0
		for _, v := range vals {
			var r struct{ Count int }
			_ = json.Unmarshal([]byte(v), &r)
			total += r.Count
			if r.Count != 7 {
				partial++
			}
		}
		if total != len(lines) || partial > 9 {
			t.Fatalf("%+v: counts add to %d (want %d), %d partial windows", c, total, len(lines), partial)
		}
		sort.Strings(vals)
		if ref == nil {
			ref = vals
		} else if strings.Join(ref, "\n") != strings.Join(vals, "\n") {
			t.Fatalf("%+v: results differ", c)
		}
	}
}

// TestWasmAggregateMatchesBuiltIn: a Wasm aggregate (the Go SDK test guests
// sumagg, with fixed-size accumulators, and sumaggvar, variable-size: count
// and sum of v) gives the same results as the built-in count() and sum(v),
// in tumbling, sliding, session (whose accumulators merge) and global
// windows, with early results, for one and several workers.
func TestWasmAggregateMatchesBuiltIn(t *testing.T) {
	for _, guest := range []string{"go_sumagg", "go_sumaggvar"} {
		t.Run(guest, func(t *testing.T) { wasmAggregateMatches(t, guest) })
	}
}

func wasmAggregateMatches(t *testing.T, guest string) {
	eng, err := plugin.NewEngine(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	m, err := eng.LoadFile(context.Background(), filepath.Join("..", "..", "..", "plugins", "testdata", "wasm", guest+".wasm"),
		plugin.Options{Function: plugin.Aggregate})
	if err != nil {
		t.Fatal(err)
	}
	if fixed := m.AccSize() > 0; fixed != (guest == "go_sumagg") {
		t.Fatalf("%s: AccSize %d", guest, m.AccSize())
	}
	sum, _ := ParseAgg("sum", "sum(v)")
	const bound = 300
	lines := sensorLines(20_000, 23, bound, 13)
	for _, win := range []*WindowStep{
		{StepName: "tumbling", Size: 1000, KeyName: "id", Aggs: []Agg{sum}, Aggregate: m},
		{StepName: "sliding", Size: 1000, Slide: 250, KeyName: "id", Aggs: []Agg{sum}, Aggregate: m, EarlyEveryRecords: 3},
		// Out-of-order records bridge sessions: the Wasm accumulators merge.
		{StepName: "session", Gap: 120, KeyName: "id", Aggs: []Agg{sum}, Aggregate: m},
		{StepName: "session_early", Gap: 120, KeyName: "id", Aggs: []Agg{sum}, Aggregate: m, EarlyEveryRecords: 4},
		{StepName: "global", Count: 7, KeyName: "id", Aggs: []Agg{sum}, Aggregate: m},
	} {
		for _, workers := range []int{1, 3} {
			vals, mt, _ := runWindowPipeline(t, lines, workers, 500, 1, win, bound)
			if len(vals) == 0 {
				t.Fatal("no results")
			}
			for _, v := range vals {
				var r struct {
					Count          int
					WasmCount      int `json:"wasm_count"`
					Sum            float64
					WasmSum        float64 `json:"wasm_sum"`
					AggregateError string  `json:"aggregate_error"`
				}
				if err := json.Unmarshal([]byte(v), &r); err != nil {
					t.Fatalf("%s: %v", v, err)
				}
				if r.AggregateError != "" || r.WasmCount != r.Count || math.Abs(r.WasmSum-r.Sum) > 1e-9*math.Max(1, math.Abs(r.Sum)) {
					t.Fatalf("%s, %d workers: %s", win.StepName, workers, v)
				}
			}
			if s := mt.Snapshot(); s.Steps[2].Failed != 0 {
				t.Fatalf("failures: %+v", s.Steps[2])
			}
			if win.Gap > 0 && wasmMerges.Load() == 0 {
				t.Fatal("no session merged: the data does not exercise merge")
			}
		}
	}
}

// seqFilesInput is two files read one after the other, as a file input
// does: "a" (times 0..99 s, its last batch marked as the partition's end),
// then "b" (times 100..299 s). Before ending, it waits until the output has
// seen a window of b's, so the test learns whether b's windows fire while
// the input is still open.
type seqFilesInput struct {
	batches  []*record.Batch
	next     int
	out      *sliceOutput
	until    func(vals []string) bool
	timedOut bool
}

func (s *seqFilesInput) Read(ctx context.Context) (*record.Batch, connect.AckFunc, error) {
	if s.next < len(s.batches) {
		b := s.batches[s.next]
		s.next++
		return b, func(context.Context, error) error { return nil }, nil
	}
	deadline := time.After(30 * time.Second) // a guard against a hang, not a measurement
	for {
		s.out.mu.Lock()
		ok := s.until(s.out.vals)
		s.out.mu.Unlock()
		if ok {
			return nil, nil, connect.ErrEndOfInput
		}
		select {
		case <-deadline:
			s.timedOut = true // end the input anyway: the test then fails, not hangs
			return nil, nil, connect.ErrEndOfInput
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (s *seqFilesInput) Close(context.Context) error { return nil }

// TestEndedPartitionReleasesWatermark: once a file has been read to its end
// (record.Source.PartitionEnd), it no longer holds the watermark back, so
// the next file's windows fire as its data goes, not only at the end of the
// whole input.
func TestEndedPartitionReleasesWatermark(t *testing.T) {
	var batches []*record.Batch
	for _, f := range []struct {
		name     string
		from, to int
	}{{"a", 0, 100}, {"b", 100, 300}} {
		for s := f.from; s < f.to; s += 10 {
			b := &record.Batch{Source: record.Source{Input: "files", Partition: f.name}}
			for t := s; t < s+10; t++ {
				b.Records = append(b.Records, record.Record{Value: fmt.Appendf(nil, `{"id":"k","v":1,"ts":%d}`, t*1000)})
			}
			b.Source.PartitionEnd = f.name == "a" && s+10 == f.to
			batches = append(batches, b)
		}
	}
	out, errs := &sliceOutput{}, &sliceOutput{}
	in := &seqFilesInput{batches: batches, out: out, until: func(vals []string) bool {
		for _, v := range vals {
			if strings.Contains(v, `"window_start":200000`) {
				return true
			}
		}
		return false
	}}
	key := &KeyStep{StepName: "key", From: Source{Field: "id"}}
	ts := &TimeStep{StepName: "ts", From: Source{Field: "ts"}}
	w := &WindowStep{StepName: "w", Size: 50_000, KeyName: "id"}
	for _, v := range []interface{ Validate() error }{key, ts, w} {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	err := engine.Run(context.Background(), context.Background(), engine.Config{
		Input: in, Steps: []engine.Step{key, ts}, Workers: 2, Metrics: engine.NewMetrics(),
		Keyed:  &engine.Keyed{Chain: []engine.ChainStep{{Keyed: w}}, OutOfOrder: 1000},
		Output: engine.Output{Out: out}, ErrorOutput: engine.Output{Out: errs},
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.timedOut {
		t.Fatal("the second file's windows did not fire before the end of input: the first file's end still holds the watermark")
	}
	if len(out.vals) != 6 || len(errs.vals) != 0 {
		t.Fatalf("%d results, %d errors: %v", len(out.vals), len(errs.vals), out.vals)
	}
}
