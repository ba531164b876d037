package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/window"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

func batchOf(vals ...string) *record.Batch {
	b := &record.Batch{Source: record.Source{Input: "t"}}
	for i, v := range vals {
		b.Records = append(b.Records, record.Record{Value: []byte(v), Pos: int64(i + 1),
			Meta: []record.KV{{Key: "ts", Value: []byte("1700000000123")}}})
	}
	return b
}

func TestKeyStep(t *testing.T) {
	cases := []struct {
		name string
		src  Source
		in   string
		key  string // "" with a reason
		fail string
	}{
		{"string field", Source{Field: "id"}, `{"id":"s-1","v":1}`, "s-1", ""},
		{"nested field", Source{Field: "a.b"}, `{"a":{"b":"x"}}`, "x", ""},
		{"int field", Source{Field: "id"}, `{"id":42}`, "42", ""},
		{"float field", Source{Field: "id"}, `{"id":1.5}`, "1.5", ""},
		{"bool field", Source{Field: "id"}, `{"id":true}`, "true", ""},
		{"object field", Source{Field: "id"}, `{"id":{"x":1}}`, `{"x":1}`, ""},
		{"escaped string", Source{Field: "id"}, `{"id":"a\"b"}`, `a"b`, ""},
		{"missing", Source{Field: "id"}, `{"x":1}`, "", `key: field "id" is missing`},
		{"null", Source{Field: "id"}, `{"id":null}`, "", `key: key field "id" is null`},
		{"not json", Source{Field: "id"}, `nope`, "", "key: the record is not a JSON object"},
		{"bloblang", Source{Bloblang: `this.id.uppercase()`}, `{"id":"ab"}`, "AB", ""},
		{"bloblang number", Source{Bloblang: `this.n + 1`}, `{"n":1}`, "2", ""},
		{"bloblang error", Source{Bloblang: `this.id.uppercase()`}, `{"x":1}`, "", "key: bloblang:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &KeyStep{StepName: "k", From: c.src}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			w, err := s.NewWorker(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			res, err := w.Process(context.Background(), batchOf(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if c.fail != "" {
				if len(res.Failed) != 1 || !strings.HasPrefix(res.Failed[0].Reason, c.fail) || res.Ports[0].Len() != 0 {
					t.Fatalf("want failure %q, got %+v", c.fail, res.Failed)
				}
				return
			}
			out := res.Ports[0].Records
			if len(out) != 1 || string(out[0].Key) != c.key || out[0].Flags&record.HasKey == 0 || string(out[0].Value) != c.in {
				t.Fatalf("got %+v, failures %+v", out, res.Failed)
			}
		})
	}
}

func TestTimeStep(t *testing.T) {
	cases := []struct {
		name   string
		src    Source
		format TimeFormat
		in     string
		want   int64
		fail   string
	}{
		{"epoch ms", Source{Field: "ts"}, "", `{"ts":1700000000123}`, 1700000000123, ""},
		{"negative ms", Source{Field: "ts"}, TimeEpochMs, `{"ts":-15}`, -15, ""},
		{"epoch s", Source{Field: "ts"}, TimeEpochS, `{"ts":1700000000}`, 1700000000000, ""},
		{"epoch s fraction", Source{Field: "ts"}, TimeEpochS, `{"ts":1.0015}`, 1001, ""},
		{"float ms floors", Source{Field: "ts"}, "", `{"ts":-1.5}`, -2, ""},
		{"rfc3339", Source{Field: "ts"}, "", `{"ts":"2023-11-14T22:13:20.123Z"}`, 1700000000123, ""},
		{"rfc3339 offset", Source{Field: "ts"}, TimeRFC3339, `{"ts":"2023-11-14T23:13:20+01:00"}`, 1700000000000, ""},
		{"before 1970", Source{Field: "ts"}, "", `{"ts":"1969-12-31T23:59:59Z"}`, -1000, ""},
		{"metadata", Source{Metadata: "ts"}, "", `{}`, 1700000000123, ""},
		{"bloblang", Source{Bloblang: `this.t * 1000`}, "", `{"t":5}`, 5000, ""},
		{"bloblang timestamp", Source{Bloblang: `this.t.ts_parse("2006-01-02")`}, "", `{"t":"1970-01-02"}`, 86400000, ""},
		{"missing", Source{Field: "ts"}, "", `{"x":1}`, 0, `event time: field "ts" is missing`},
		{"not a time", Source{Field: "ts"}, "", `{"ts":"yesterday"}`, 0, `event time: field "ts" = "yesterday" is not an RFC 3339 time`},
		{"string for epoch", Source{Field: "ts"}, TimeEpochMs, `{"ts":"1"}`, 0, "event time: field \"ts\" is a string, the format is epoch_ms"},
		{"number for rfc3339", Source{Field: "ts"}, TimeRFC3339, `{"ts":1}`, 0, "event time: field \"ts\" is a number, the format is rfc3339"},
		{"bool", Source{Field: "ts"}, "", `{"ts":true}`, 0, "event time: field \"ts\" is a boolean, not a time"},
		{"overflow", Source{Field: "ts"}, TimeEpochS, `{"ts":1e300}`, 0, "event time: field \"ts\" = 1e+303 is out of range"},
		{"missing metadata", Source{Metadata: "kafka_ts"}, "", `{}`, 0, `event time: metadata "kafka_ts" is missing`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &TimeStep{StepName: "t", From: c.src, Format: c.format}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			w, err := s.NewWorker(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			res, err := w.Process(context.Background(), batchOf(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if c.fail != "" {
				if len(res.Failed) != 1 || res.Failed[0].Reason != c.fail {
					t.Fatalf("want failure %q, got %+v", c.fail, res.Failed)
				}
				return
			}
			out := res.Ports[0].Records
			if len(out) != 1 || out[0].Time != c.want || out[0].Flags&record.HasTime == 0 {
				t.Fatalf("got %+v, failures %+v", out, res.Failed)
			}
		})
	}
}

func TestSourceValidation(t *testing.T) {
	for _, c := range []struct {
		s    Source
		meta bool
	}{{Source{}, true}, {Source{Field: "a", Bloblang: "this"}, true}, {Source{Metadata: "m"}, false}, {Source{Bloblang: "this.("}, true}} {
		if err := validSource(c.s, c.meta); err == nil {
			t.Errorf("%+v accepted", c.s)
		}
	}
	if err := (&TimeStep{From: Source{Field: "a"}, Format: "iso"}).Validate(); err == nil {
		t.Error("format iso accepted")
	}
}

func TestParseAgg(t *testing.T) {
	good := map[string]Agg{
		"count()":           {Name: "x", Kind: AggCount},
		"mean(value)":       {Name: "x", Kind: AggMean, Field: "value"},
		" var_pop( a.b ) ":  {Name: "x", Kind: AggVarPop, Field: "a.b"},
		"stddev_samp(v)":    {Name: "x", Kind: AggStdSamp, Field: "v"},
		"distinct(user)":    {Name: "x", Kind: AggDistinct, Field: "user"},
		"median(v)":         {Name: "x", Kind: AggQuantile, Field: "v", Q: 0.5},
		"quantile(v, 0.99)": {Name: "x", Kind: AggQuantile, Field: "v", Q: 0.99},
	}
	for expr, want := range good {
		got, err := ParseAgg("x", expr)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v", expr, got, err)
		}
	}
	for _, expr := range []string{"count(v)", "mean()", "mode(v)", "mean", "mean(a)(b)", "quantile(v)", "quantile(v, 2)",
		"quantile(v, x)", "mean(v, 1)"} {
		if _, err := ParseAgg("x", expr); err == nil {
			t.Errorf("%q accepted", expr)
		}
	}
}

// windowRun feeds records (key, time, JSON value) to a window worker and
// advances to the end; it returns the decoded results and the Add result.
func windowRun(t *testing.T, s *WindowStep, recs []record.Record, wm int64) ([]map[string]any, *plugin.Result) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	kw, err := s.NewWorker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := &plugin.Result{Ports: make([]record.Batch, len(s.Ports())+1)}
	if err := kw.Add(context.Background(), &record.Batch{Records: recs}, res); err != nil {
		t.Fatal(err)
	}
	fired := &plugin.Result{Ports: make([]record.Batch, 1)}
	for done := false; !done; {
		if done, err = kw.Advance(context.Background(), wm, fired); err != nil {
			t.Fatal(err)
		}
	}
	var out []map[string]any
	for _, r := range append(res.Ports[0].Records, fired.Ports[0].Records...) {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("result %q: %v", r.Value, err)
		}
		if want := int64(m["window_end"].(float64)) - 1; r.Time != want || string(r.Key) != m["id"] {
			t.Fatalf("result record time %d key %q for %s", r.Time, r.Key, r.Value)
		}
		out = append(out, m)
	}
	return out, res
}

func rec(key string, ts int64, v string) record.Record {
	return record.Record{Key: []byte(key), Time: ts, Value: []byte(v), Flags: record.HasKey | record.HasTime}
}

func TestWindowAggregates(t *testing.T) {
	s := &WindowStep{StepName: "w", Size: 10, KeyName: "id"}
	for _, a := range [][2]string{{"count", "count()"}, {"n", "count()"}, {"sum", "sum(v)"}, {"min", "min(v)"}, {"max", "max(v)"},
		{"mean", "mean(v)"}, {"var", "var_pop(v)"}, {"svar", "var_samp(v)"}, {"std", "stddev_pop(v)"}, {"sstd", "stddev_samp(v)"},
		{"first", "first(v)"}, {"last", "last(v)"}, {"wmean", "mean(w)"}} {
		agg, err := ParseAgg(a[0], a[1])
		if err != nil {
			t.Fatal(err)
		}
		s.Aggs = append(s.Aggs, agg)
	}
	recs := []record.Record{
		rec("a", 5, `{"v":2,"w":1}`), rec("a", 1, `{"v":4}`), rec("a", 9, `{"v":6,"w":null}`),
		rec("b", 3, `{"v":1.5}`),
		rec("a", 12, `{"v":"x"}`), // a string: error output
		rec("a", 13, `not json`),
	}
	out, res := windowRun(t, s, recs, window.EndOfTime)
	if len(res.Failed) != 2 || res.Failed[0].Reason != `window: field "v" is a string, not a number` ||
		res.Failed[1].Reason != "window: the record is not a JSON object" {
		t.Fatalf("failures %+v", res.Failed)
	}
	if len(out) != 2 {
		t.Fatalf("results %v", out)
	}
	a := out[0]
	want := map[string]any{"id": "a", "window_start": 0.0, "window_end": 10.0, "count": 3.0, "n": 3.0, "sum": 12.0, "min": 2.0, "max": 6.0,
		"mean": 4.0, "var": 8.0 / 3, "svar": 4.0, "std": math.Sqrt(8.0 / 3), "sstd": 2.0, "first": 4.0, "last": 6.0, "wmean": 1.0, "update": false}
	for k, v := range want {
		got, ok := a[k]
		if !ok {
			t.Errorf("a: no %s", k)
			continue
		}
		if f, isF := v.(float64); isF {
			if g, _ := got.(float64); math.Abs(g-f) > 1e-12 {
				t.Errorf("a.%s = %v, want %v", k, got, v)
			}
		} else if got != v {
			t.Errorf("a.%s = %v, want %v", k, got, v)
		}
	}
	if len(a) != len(want) {
		t.Errorf("a has %d fields, want %d: %v", len(a), len(want), a)
	}
	// One value: the sample variance is undefined (null); no w at all: null.
	b := out[1]
	if b["svar"] != nil || b["sstd"] != nil || b["wmean"] != nil || b["var"] != 0.0 {
		t.Errorf("b: %v", b)
	}
}

func TestWindowLateAndNoWindow(t *testing.T) {
	for _, late := range []bool{false, true} {
		s := &WindowStep{StepName: "w", Size: 10, Slide: 20, KeyName: "id", LateOutput: late}
		kw := mustWorker(t, s)
		res := &plugin.Result{Ports: make([]record.Batch, len(s.Ports())+1)}
		ctx := context.Background()
		_ = kw.Add(ctx, &record.Batch{Records: []record.Record{rec("a", 5, `{}`), rec("a", 15, `{}`)}}, res)
		if res.Dropped != 1 { // 15 is in no window: slide 20 > size 10
			t.Fatalf("dropped %d", res.Dropped)
		}
		_, _ = kw.Advance(ctx, 100, res)
		res = &plugin.Result{Ports: make([]record.Batch, len(s.Ports())+1)}
		_ = kw.Add(ctx, &record.Batch{Records: []record.Record{rec("a", 7, `{}`)}}, res)
		switch {
		case late && (len(res.Ports) != 2 || res.Ports[1].Len() != 1 || res.Dropped != 0):
			t.Errorf("late output: ports %v dropped %d", res.Ports, res.Dropped)
		case !late && res.Dropped != 1:
			t.Errorf("no late output: dropped %d", res.Dropped)
		}
	}
}

func mustWorker(t *testing.T, s *WindowStep) interface {
	Add(context.Context, *record.Batch, *plugin.Result) error
	Advance(context.Context, int64, *plugin.Result) (bool, error)
} {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	kw, err := s.NewWorker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return kw
}

func TestWindowValidate(t *testing.T) {
	agg := func(n, e string) Agg { a, _ := ParseAgg(n, e); return a }
	for _, s := range []*WindowStep{
		{Size: 0},
		{Size: 10, Offset: 10},
		{Size: 10, Slide: -1},
		{Size: 10, Lateness: -1},
		{Size: 10, Aggs: []Agg{agg("m", "mean(v)"), agg("m", "sum(v)")}},
		{Size: 10, Aggs: []Agg{agg("count", "sum(v)")}},
		{Size: 10, KeyName: "id", Aggs: []Agg{agg("id", "sum(v)")}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

func TestJSONString(t *testing.T) {
	for in, want := range map[string]string{"abc": `"abc"`, `a"b`: `"a\"b"`, "é": `"é"`, "\n": `"\n"`} {
		if got := string(appendJSONString(nil, in)); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	for _, x := range []float64{0, math.Copysign(0, -1), 1, -12, 1e14, 999999999999999, 1e15, 1e20, 1e21, 0.1, -2.5,
		1e-6, 1e-7, 1.5e-300, math.MaxFloat64, 22.735999999999997, 123456789.125} {
		w, _ := json.Marshal(x)
		want := string(w)
		if got := string(appendFloat(nil, x)); got != want {
			t.Errorf("%v: %s, want %s", x, got, want)
		}
	}
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := string(appendFloat(nil, x)); got != "null" {
			t.Errorf("%v: %s", x, got)
		}
	}
}

// TestWindowSketches: distinct counts (exact for small sets, strings and
// numbers alike) and quantiles (within 1 %) in a window.
func TestWindowSketches(t *testing.T) {
	s := &WindowStep{StepName: "w", Size: 1000, KeyName: "id"}
	for _, a := range [][2]string{{"users", "distinct(user)"}, {"p50", "median(v)"}, {"p90", "quantile(v, 0.9)"}, {"vals", "distinct(v)"}} {
		agg, err := ParseAgg(a[0], a[1])
		if err != nil {
			t.Fatal(err)
		}
		s.Aggs = append(s.Aggs, agg)
	}
	var recs []record.Record
	for i := 0; i < 100; i++ {
		recs = append(recs, rec("a", int64(i), fmt.Sprintf(`{"user":"u%d","v":%d}`, i%7, i+1)))
	}
	recs = append(recs, rec("a", 100, `{"user":12,"v":1}`)) // a number is a value too; v=1 again
	out, res := windowRun(t, s, recs, window.EndOfTime)
	if len(res.Failed) != 0 || len(out) != 1 {
		t.Fatalf("failures %v, results %v", res.Failed, out)
	}
	r := out[0]
	if r["users"] != 8.0 || r["vals"] != 100.0 {
		t.Errorf("distinct: users %v (want 8), vals %v (want 100)", r["users"], r["vals"])
	}
	// ranks over 1,1,2,...,100: median rank 50 -> 50, p90 rank 90 -> 90
	if p := r["p50"].(float64); math.Abs(p-50) > 0.5 {
		t.Errorf("median %v", p)
	}
	if p := r["p90"].(float64); math.Abs(p-90) > 0.9 {
		t.Errorf("p90 %v", p)
	}
}

func TestTimeSeries(t *testing.T) {
	s := &TimeSeriesStep{StepName: "ts", Field: "v"}
	for _, o := range [][2]string{{"sum", "cumsum()"}, {"ma", "moving_avg(10ms)"}, {"ew", "ewma(0.5)"}, {"z", "zscore(10ms)"}, {"odd", "anomaly(10ms, 3)"}} {
		out, err := ParseTSOutput(o[0], o[1])
		if err != nil {
			t.Fatal(err)
		}
		s.Outputs = append(s.Outputs, out)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	kw, err := s.NewWorker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in := []record.Record{
		rec("a", 0, `{"v":1}`), rec("a", 1, `{"v":2}`), rec("b", 1, ` { } `), rec("a", 2, `{"v":3}`), rec("a", 3, `{ "v" : 4 }`),
		rec("a", 4, `{"v":100,"x":"y"}`), rec("b", 5, `{"v":"n/a"}`), rec("a", 20, `{"v":5}`), rec("b", 6, `{"v":-2}`),
	}
	res := &plugin.Result{Ports: make([]record.Batch, 1)}
	if err := kw.Add(context.Background(), &record.Batch{Records: in}, res); err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 2 || res.Failed[0].Index != 2 || res.Failed[1].Reason != `timeseries: field "v" is a string, not a number` {
		t.Fatalf("failures %+v", res.Failed)
	}
	z3, z4, z5 := 3.0, 2/math.Sqrt(2.0/3), 97.5/math.Sqrt(1.25)
	want := []map[string]any{
		{"v": 1.0, "sum": 1.0, "ma": 1.0, "ew": 1.0, "z": nil, "odd": false},
		{"v": 2.0, "sum": 3.0, "ma": 1.5, "ew": 1.5, "z": nil, "odd": false},
		{"v": 3.0, "sum": 6.0, "ma": 2.0, "ew": 2.25, "z": z3, "odd": false},
		{"v": 4.0, "sum": 10.0, "ma": 2.5, "ew": 3.125, "z": z4, "odd": false},
		{"v": 100.0, "x": "y", "sum": 110.0, "ma": 22.0, "ew": 51.5625, "z": z5, "odd": true},
		{"v": 5.0, "sum": 115.0, "ma": 5.0, "ew": 28.28125, "z": nil, "odd": false}, // the window (10, 20] is empty before it
		{"v": -2.0, "sum": -2.0, "ma": -2.0, "ew": -2.0, "z": nil, "odd": false},
	}
	out := res.Ports[0].Records
	if len(out) != len(want) {
		t.Fatalf("%d records out", len(out))
	}
	for i, r := range out {
		var got map[string]any
		if err := json.Unmarshal(r.Value, &got); err != nil {
			t.Fatalf("record %d: %q: %v", i, r.Value, err)
		}
		for k, wv := range want[i] {
			gv := got[k]
			wf, isF := wv.(float64)
			if gf, ok := gv.(float64); isF && ok {
				if math.Abs(gf-wf) > 1e-9*math.Max(1, math.Abs(wf)) {
					t.Errorf("record %d: %s = %v, want %v", i, k, gv, wv)
				}
			} else if gv != wv {
				t.Errorf("record %d: %s = %v, want %v (%s)", i, k, gv, wv, r.Value)
			}
		}
		if len(got) != len(want[i]) {
			t.Errorf("record %d: %s", i, r.Value)
		}
	}
	for _, bad := range []string{"cumsum(1)", "moving_avg()", "ewma(2)", "anomaly(1s)", "zscore(-1s)", "median()", "anomaly(1s, x)"} {
		if _, err := ParseTSOutput("x", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestProcessingTimeWindows: records go to the window of the clock's time
// when they arrive, whatever their event time (or none); windows fire as
// the clock passes their end, the rest at the end of the input.
func TestProcessingTimeWindows(t *testing.T) {
	now := int64(500)
	s := &WindowStep{StepName: "w", Size: 1000, KeyName: "id", ProcessingTime: true, Now: func() time.Time { return time.UnixMilli(now) }}
	kw := mustWorker(t, s).(*windowWorker)
	ctx := context.Background()
	add := func(recs ...record.Record) {
		res := &plugin.Result{Ports: make([]record.Batch, 1)}
		if err := kw.Add(ctx, &record.Batch{Records: recs}, res); err != nil || res.Ports[0].Len() != 0 || len(res.Failed) != 0 {
			t.Fatalf("add: %v %+v", err, res)
		}
	}
	fire := func(f func(*plugin.Result) (bool, error)) []string {
		res := &plugin.Result{Ports: make([]record.Batch, 1)}
		if _, err := f(res); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range res.Ports[0].Records {
			out = append(out, string(r.Value))
		}
		return out
	}
	add(rec("a", -5_000_000, `{}`), record.Record{Key: []byte("b"), Value: []byte(`{}`), Flags: record.HasKey})
	if got := fire(func(r *plugin.Result) (bool, error) { return kw.Advance(ctx, 1_000_000, r) }); len(got) != 0 {
		t.Fatalf("an event-time watermark fired %v", got)
	}
	if got := fire(func(r *plugin.Result) (bool, error) { return kw.AdvanceProc(ctx, 999, r) }); len(got) != 0 {
		t.Fatalf("fired before the end: %v", got)
	}
	now = 1500
	add(rec("a", 0, `{}`))
	got := fire(func(r *plugin.Result) (bool, error) { return kw.AdvanceProc(ctx, 1000, r) })
	want := []string{`{"id":"a","window_start":0,"window_end":1000,"count":1,"update":false}`, `{"id":"b","window_start":0,"window_end":1000,"count":1,"update":false}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("at 1000: %v", got)
	}
	got = fire(func(r *plugin.Result) (bool, error) { return kw.Advance(ctx, window.EndOfTime, r) })
	if len(got) != 1 || got[0] != `{"id":"a","window_start":1000,"window_end":2000,"count":1,"update":false}` {
		t.Fatalf("at the end: %v", got)
	}
}

// TestTimeRangeStep: records more than max_ahead ahead of the processing
// clock (or max_behind behind it) go to the error output with both times;
// the rest, and records without an event time, pass.
func TestTimeRangeStep(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	cases := []struct {
		ahead, behind time.Duration
		times         []int64 // relative to now, ms; math.MinInt64: no time
		fail          []int
		reason        string
	}{
		{time.Hour, 0, []int64{0, 3_600_000, 3_600_001, -1e12, math.MinInt64}, []int{2}, "more than 1h0m0s ahead of the processing clock"},
		{0, time.Minute, []int64{0, 1e12, -60_000, -60_001}, []int{3}, "more than 1m0s behind the processing clock"},
		{time.Second, time.Second, []int64{-2000, 0, 2000}, []int{0, 2}, ""},
	}
	for _, c := range cases {
		s := &TimeRangeStep{StepName: "r", MaxAhead: c.ahead, MaxBehind: c.behind, Now: func() time.Time { return now }}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		w, _ := s.NewWorker(context.Background())
		in := &record.Batch{}
		for _, d := range c.times {
			r := record.Record{Value: []byte("{}")}
			if d != math.MinInt64 {
				r.Time, r.Flags = now.UnixMilli()+d, record.HasTime
			}
			in.Records = append(in.Records, r)
		}
		res, err := w.Process(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		var failed []int
		for _, f := range res.Failed {
			failed = append(failed, f.Index)
			if !strings.Contains(f.Reason, c.reason) || !strings.Contains(f.Reason, "2023-11-14T22:13:20Z") {
				t.Errorf("reason %q", f.Reason)
			}
		}
		if fmt.Sprint(failed) != fmt.Sprint(c.fail) || len(res.Ports[0].Records) != len(c.times)-len(c.fail) {
			t.Errorf("%+v: failed %v, passed %d", c, failed, len(res.Ports[0].Records))
		}
	}
	if err := (&TimeRangeStep{MaxAhead: -1}).Validate(); err == nil {
		t.Error("a negative bound is accepted")
	}
}
