package main

// The Benthos case of the windowing issue: "the same tumbling aggregation
// written in plain Go (the physical limit) and in Benthos (its system_window
// buffer, where it can run at all; note what it cannot do)".
//
// What Benthos v4 (v4.80.0, its own components only) cannot do here, checked
// against internal/impl/pure/buffer_system_window.go and its docs:
//
//   - No event time. system_window has a timestamp_mapping (event time can
//     pick the window), but a window is flushed "only once the system clock
//     surpasses its scheduled end" (plus allowed_lateness, which must be
//     < size). There is no watermark driven by the data. The benchmark's
//     records (times from 1,700,000,000,000 ms, +1 ms each) are historical:
//     WriteBatch drops every message whose timestamp is not after the last
//     flushed window's end, and the back-pressure purge drops everything
//     older than the previous system-clock window. So only the current and
//     previous wall-clock windows can get data, and a replay of historical
//     event time cannot be windowed at all: tried with timestamp_mapping
//     `root = 1700000000 + counter() / 1000` on 20,000 records, the stream
//     ends at once with 0 results, every record acked as dropped. What
//     it can run is a processing-time tumbling window (timestamp = now()),
//     which is what benthosTumbling measures. So its results (one per key per
//     wall-clock window; with 10 s windows and a run of a few seconds, 1 or 2
//     windows) are not the same answer as the native loop or wsp (one per
//     key per 10 s of event time).
//   - Lateness: anything with a timestamp before the last flushed window end
//     is dropped silently (acked), and under back pressure (the pipeline
//     slower than one window size) windows older than the current and
//     previous are dropped too ("Back pressure" in the docs). No side output
//     for late data, no retraction or update of a fired window.
//   - No keyed state. The buffer holds every message of the open window(s) in
//     memory (messages, not aggregates: memory is O(records per window), not
//     O(keys)); the per-key aggregate is computed only when the window's batch
//     is flushed, by group_by_value then a mapping over each group. Nothing
//     per key survives a window; no incremental aggregation.
//   - Window bounds: only metadata window_end_timestamp (RFC 3339) is set; the
//     start is implied (end - size + 1 ns). Windows are aligned to the UTC
//     clock (+ offset), so the first one is partial.
//   - No sessions (only tumbling and sliding) and one window operator per
//     stream (it is the stream's buffer, not a processor), so no window after
//     a window and no keyed parallelism inside it: one reader flushes one
//     window batch at a time; the pipeline threads can only work on different
//     groups' batches.
//   - End of input: on EndOfInput the buffer nacks what is pending in the
//     open window instead of flushing it ("re-consumed the next time the
//     service starts"). With the generate input this does not lose data: its
//     AsyncPreserver keeps the input open until every message is acked, so
//     the stream waits (idle, on the wall clock) until the last window's end
//     passes, the window flushes, its messages are acked, and only then does
//     the input close. The wall time of a run therefore includes up to one
//     window size of waiting; the CPU time does not.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// benthosTotals is what the counting output saw.
type benthosTotals struct {
	results int64 // result messages (one per key per window)
	count   int64 // sum of their "count"
	sum     int64 // sum of their "sum"
	windows map[string]int64
}

// benthosConfig is the stream: generate n records as fast as possible
// (key uniform below keys with a fixed seed, v = i % 1000 as in newGen),
// a processing-time system_window of size, per-key count and sum of each
// window's batch, into the counting output.
func benthosConfig(n, keys int, size time.Duration) string {
	return fmt.Sprintf(`
input:
  generate:
    count: %d
    interval: ""
    batch_size: 1000
    mapping: |
      root = {"k": "k-%%05d".format(random_int(seed: 1, max: %d)), "v": (counter() - 1) %% 1000}

buffer:
  system_window:
    size: %s

pipeline:
  processors:
    - group_by_value:
        value: '${! json("k") }'
    - mapping: |
        root = if batch_index() == 0 {
          {
            "k": this.k,
            "count": batch_size(),
            "sum": json("v").from_all().sum(),
            "window_end": meta("window_end_timestamp"),
          }
        } else { deleted() }

output:
  wsp_bench_count: {}
`, n, keys-1, size)
}

// benthosRun runs the stream and returns its figures and the totals.
func benthosRun(n, keys int, size time.Duration) (measured, benthosTotals, error) {
	tot := benthosTotals{windows: map[string]int64{}}
	var mu sync.Mutex
	env := service.NewEnvironment()
	err := env.RegisterBatchOutput("wsp_bench_count", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			return &countOutput{write: func(b service.MessageBatch) error {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range b {
					s, err := m.AsStructured()
					if err != nil {
						return err
					}
					o, _ := s.(map[string]any)
					c, err1 := toInt(o["count"])
					v, err2 := toInt(o["sum"])
					if err1 != nil || err2 != nil {
						return fmt.Errorf("bad result %v", o)
					}
					tot.results++
					tot.count += c
					tot.sum += v
					we, _ := o["window_end"].(string)
					tot.windows[we]++
				}
				return nil
			}}, service.BatchPolicy{}, 1, nil
		})
	if err != nil {
		return measured{}, tot, err
	}
	b := env.NewStreamBuilder()
	if err := b.SetYAML(benthosConfig(n, keys, size)); err != nil {
		return measured{}, tot, err
	}
	if err := b.SetLoggerYAML("level: none"); err != nil {
		return measured{}, tot, err
	}
	if err := b.SetMetricsYAML("none: {}"); err != nil {
		return measured{}, tot, err
	}
	stream, err := b.Build()
	if err != nil {
		return measured{}, tot, err
	}
	// Guard: the stream ends by itself about one window after the input;
	// give up well after that.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute+3*size)
	defer cancel()
	runtime.GC()
	start, cpu0 := time.Now(), cpuNow()
	err = stream.Run(ctx)
	m := measured{wall: time.Since(start), cpu: cpuNow() - cpu0}
	mu.Lock()
	defer mu.Unlock()
	m.results = tot.results
	return m, tot, err
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case uint64:
		return int64(x), nil
	case float64:
		return int64(x), nil
	}
	return 0, fmt.Errorf("not a number: %T", v)
}

// countOutput hands each batch to write.
type countOutput struct {
	write func(service.MessageBatch) error
}

func (o *countOutput) Connect(context.Context) error { return nil }
func (o *countOutput) WriteBatch(_ context.Context, b service.MessageBatch) error {
	return o.write(b)
}
func (o *countOutput) Close(context.Context) error { return nil }

// benthosTumbling runs n generated records (keys uniform below keys) through
// a Benthos stream whose system_window buffer makes processing-time tumbling
// windows of size, with count and sum of v per key per window (see the
// comment at the top of this file for what it cannot do: no event time).
// results is the number of (key, window) results. It fails if the results do
// not account for every record exactly once.
func benthosTumbling(n, keys int, size time.Duration) (measured, error) {
	m, tot, err := benthosRun(n, keys, size)
	if err != nil {
		return m, err
	}
	if tot.count != int64(n) || tot.sum != sumV(n) {
		return m, fmt.Errorf("benthos: counts %d (want %d), sums %d (want %d)", tot.count, n, tot.sum, sumV(n))
	}
	return m, nil
}

// sumV is the sum of v over n records: v = i % 1000.
func sumV(n int) int64 {
	var s int64
	for i := range n {
		s += int64(i % 1000)
	}
	return s
}

// processingTime is the wsp counterpart of the Benthos case: the same
// aggregation in processing-time tumbling windows (the only kind Benthos
// can run), over the benchmark's generated records.
const processingTime = `
pipeline:
  - window:
      processing_time: { size: 10s }
      aggregates: { sum: sum(v) }
`

func init() {
	extraCases = func(n, keys int, want func(string) bool) []*benchCase {
		var cs []*benchCase
		if name := "wsp processing-time tumbling 10 s count+sum (what Benthos can run)"; want(name) {
			cs = append(cs, &benchCase{name: name, workers: 1, n: n,
				run: func() (measured, error) { return runPipeline(processingTime, n, keys, 1) }})
		}
		if name := "Benthos system_window: processing-time tumbling 10 s count+sum (1 M records at most)"; want(name) {
			nb := min(n, 1_000_000)
			cs = append(cs, &benchCase{name: name, workers: 1, n: nb,
				run: func() (measured, error) { return benthosTumbling(nb, keys, 10*time.Second) }})
		}
		return cs
	}
}
