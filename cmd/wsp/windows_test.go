package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
)

// TestSensorWindows runs the full sensor example (clean, key, event time,
// 5 s tumbling windows with count, mean and variance per sensor) and checks
// every window against a direct computation over the natively cleaned
// readings: counts equal, floats within 1e-9 relative.
func TestSensorWindows(t *testing.T) {
	n := 20000
	if os.Getenv("WSP_TEST_LONG") != "" {
		n = 1000000
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "readings.jsonl")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(f, n, 7); err != nil {
		t.Fatal(err)
	}
	f.Close()
	type acc struct{ vals []float64 }
	type wkey struct {
		id    string
		start int64
	}
	want := map[wkey]*acc{}
	for _, l := range expect(t, input).clean {
		var r struct {
			SensorID string  `json:"sensor_id"`
			Value    float64 `json:"value"`
			TS       int64   `json:"ts"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		k := wkey{r.SensorID, r.TS - ((r.TS%5000)+5000)%5000}
		if want[k] == nil {
			want[k] = &acc{}
		}
		want[k].vals = append(want[k].vals, r.Value)
	}
	for _, workers := range []string{"1", "2"} {
		t.Run("workers="+workers, func(t *testing.T) {
			out := filepath.Join(dir, "w"+workers)
			t.Setenv("SENSORS_INPUT", input)
			t.Setenv("SENSORS_OUT", out)
			code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", workers,
				"--batch-size", "333", repoPath("examples/sensors/pipeline.yaml"))
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			got := readLines(t, filepath.Join(out, "windows.jsonl"))
			if len(got) != len(want) {
				t.Fatalf("%d windows, want %d\n%s", len(got), len(want), stderr)
			}
			seen := map[wkey]bool{}
			for _, l := range got {
				var w struct {
					SensorID    string  `json:"sensor_id"`
					WindowStart int64   `json:"window_start"`
					WindowEnd   int64   `json:"window_end"`
					Count       int     `json:"count"`
					Mean        float64 `json:"mean"`
					Variance    float64 `json:"variance"`
					Update      bool    `json:"update"`
				}
				if err := json.Unmarshal([]byte(l), &w); err != nil {
					t.Fatal(err)
				}
				k := wkey{w.SensorID, w.WindowStart}
				a := want[k]
				if a == nil || seen[k] || w.WindowEnd != w.WindowStart+5000 || w.Update {
					t.Fatalf("unexpected or repeated window %s", l)
				}
				seen[k] = true
				mean, ss := 0.0, 0.0
				for _, v := range a.vals {
					mean += v
				}
				mean /= float64(len(a.vals))
				for _, v := range a.vals {
					ss += (v - mean) * (v - mean)
				}
				variance := ss / float64(len(a.vals))
				if w.Count != len(a.vals) || !close(w.Mean, mean) || !close(w.Variance, variance) {
					t.Fatalf("window %s: want count %d mean %v variance %v", l, len(a.vals), mean, variance)
				}
			}
		})
	}
}

func close(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestSensorWindowExamples runs the moving-average and sessions examples on
// generated data and checks that every clean reading is counted where it
// belongs: in exactly size/slide = 6 sliding windows, and in exactly one
// session (the data is within the out-of-orderness bound: no updates, no
// late records).
func TestSensorWindowExamples(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "readings.jsonl")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(f, 20000, 3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	clean := len(expect(t, input).clean)
	for _, c := range []struct {
		file, out  string
		perReading int
	}{{"moving-average.yaml", "moving-average.jsonl", 6}, {"sessions.yaml", "sessions.jsonl", 1}} {
		t.Run(c.file, func(t *testing.T) {
			out := filepath.Join(dir, c.file)
			t.Setenv("SENSORS_INPUT", input)
			t.Setenv("SENSORS_OUT", out)
			code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", "2",
				repoPath("examples/sensors/"+c.file))
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			total := 0
			for _, l := range readLines(t, filepath.Join(out, c.out)) {
				var w struct {
					Count       int   `json:"count"`
					WindowStart int64 `json:"window_start"`
					WindowEnd   int64 `json:"window_end"`
					Update      bool  `json:"update"`
				}
				if err := json.Unmarshal([]byte(l), &w); err != nil {
					t.Fatal(err)
				}
				if w.Update || w.Count < 1 || w.WindowEnd <= w.WindowStart {
					t.Fatalf("result %s", l)
				}
				total += w.Count
			}
			if total != c.perReading*clean {
				t.Fatalf("counts add up to %d, want %d × %d clean readings", total, c.perReading, clean)
			}
		})
	}
}

// TestSensorAnomaliesExample runs the time-series example: every clean
// reading comes out once, in input order per sensor, with its sensor's
// running total, and an anomaly flag that agrees with its z-score.
func TestSensorAnomaliesExample(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "readings.jsonl")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(f, 20000, 9); err != nil {
		t.Fatal(err)
	}
	f.Close()
	clean := expect(t, input).clean
	out := filepath.Join(dir, "out")
	t.Setenv("SENSORS_INPUT", input)
	t.Setenv("SENSORS_OUT", out)
	code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", "2",
		repoPath("examples/sensors/anomalies.yaml"))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	got := readLines(t, filepath.Join(out, "anomalies.jsonl"))
	if len(got) != len(clean) {
		t.Fatalf("%d records, want %d", len(got), len(clean))
	}
	type reading struct {
		SensorID string   `json:"sensor_id"`
		Value    float64  `json:"value"`
		TS       int64    `json:"ts"`
		Total    float64  `json:"total"`
		Z        *float64 `json:"z"`
		Anomaly  bool     `json:"anomaly"`
	}
	// Per sensor, the output holds the clean readings in their input order.
	want := map[string][]reading{}
	for _, l := range clean {
		var r reading
		_ = json.Unmarshal([]byte(l), &r)
		want[r.SensorID] = append(want[r.SensorID], r)
	}
	next := map[string]int{}
	totals := map[string]float64{}
	anomalies := 0
	for _, l := range got {
		var r reading
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		i := next[r.SensorID]
		next[r.SensorID]++
		if w := want[r.SensorID]; i >= len(w) || w[i].TS != r.TS || w[i].Value != r.Value {
			t.Fatalf("sensor %s reading %d out of order or unknown: %s", r.SensorID, i, l)
		}
		totals[r.SensorID] += r.Value
		if !close(r.Total, totals[r.SensorID]) {
			t.Fatalf("total %v, want %v: %s", r.Total, totals[r.SensorID], l)
		}
		if r.Anomaly != (r.Z != nil && math.Abs(*r.Z) > 3) {
			t.Fatalf("anomaly flag disagrees with z: %s", l)
		}
		if r.Anomaly {
			anomalies++
		}
	}
	if anomalies == 0 {
		t.Fatal("no anomaly flagged: the generated data has spikes")
	}
}

// TestProcessingTimeWindowPipeline: a processing-time window needs no event
// time; at the end of a bounded input every window fires.
func TestProcessingTimeWindowPipeline(t *testing.T) {
	dir := t.TempDir()
	pipe := filepath.Join(dir, "p.yaml")
	conf := fmt.Sprintf(`
input:
  generate:
    count: 300
    interval: ""
    mapping: 'root = {"user": "u" + (count("g") %% 4).string(), "v": 1}'
pipeline:
  - key: { bloblang: 'this.user' }
  - window:
      processing_time: { size: 1h }
      key_name: user
      aggregates: { total: sum(v), users: distinct(user) }
output:
  file: { path: %s/out.jsonl, codec: lines }
`, dir)
	if err := os.WriteFile(pipe, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", "2", pipe)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	total := 0.0
	lines := readLines(t, filepath.Join(dir, "out.jsonl"))
	for _, l := range lines {
		var r struct {
			User         string
			Total, Users float64
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Users != 1 {
			t.Fatalf("one user per key: %s", l)
		}
		total += r.Total
	}
	// 4 users; a window boundary (a full hour) may fall inside the run.
	if total != 300 || len(lines) < 4 || len(lines) > 8 {
		t.Fatalf("%d results adding to %v:\n%s", len(lines), total, strings.Join(lines, "\n"))
	}
}

// TestImplausibleEventTime: with `max_ahead`, a record stamped far in the
// future (year 2100) goes to the error output with the reason, instead of
// dragging the watermark forward and making every later record late; the
// windows come out as if it were not there.
func TestImplausibleEventTime(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 100 {
		if i == 10 {
			in.WriteString(`{"id":"a","v":1000,"ts":4102444800000}` + "\n") // 2100-01-01
		}
		fmt.Fprintf(&in, `{"id":"a","v":1,"ts":%d}`+"\n", 1_700_000_000_000+int64(i)*100)
	}
	in.WriteString(`{"id":"a","v":7,"ts":1699999000000}` + "\n") // late: to the window's late port
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(dir, "p.yaml")
	conf := fmt.Sprintf(`
input:
  file: { paths: [ %[1]s/in.jsonl ], scanner: { lines: {} } }
pipeline:
  - key: { field: id }
  - event_time: { field: ts, max_ahead: 1h }
  - window:
      tumbling: { size: 1s }
      aggregates: { total: sum(v) }
    outputs:
      late: { file: { path: %[1]s/late.jsonl, codec: lines } }
output:
  file: { path: %[1]s/out.jsonl, codec: lines }
error_output:
  file: { path: %[1]s/errors.jsonl, codec: lines }
`, dir)
	if err := os.WriteFile(pipe, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", "1", "--batch-size", "10", pipe)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	errs := readLines(t, filepath.Join(dir, "errors.jsonl"))
	if len(errs) != 1 || !strings.Contains(errs[0], "more than 1h0m0s ahead of the processing clock") || !strings.Contains(errs[0], "2100-01-01T00:00:00Z") {
		t.Fatalf("error output: %q", errs)
	}
	// The range step sits between event_time and the window: the window's
	// own ports still reach their outputs.
	if late := readLines(t, filepath.Join(dir, "late.jsonl")); len(late) != 1 || !strings.Contains(late[0], `"v":7`) {
		t.Fatalf("late output: %q", late)
	}
	total := 0.0
	lines := readLines(t, filepath.Join(dir, "out.jsonl"))
	for _, l := range lines {
		var r struct{ Total float64 }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		total += r.Total
	}
	if total != 100 || len(lines) != 10 {
		t.Fatalf("%d windows adding to %v (want 10 adding to 100):\n%s", len(lines), total, strings.Join(lines, "\n"))
	}
}
