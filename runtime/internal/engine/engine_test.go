package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/connect"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// memInput serves n records in batches of size bs and records acks.
type memInput struct {
	n, bs   int
	next    int
	read    atomic.Int64 // records handed out
	acked   atomic.Int64 // records acked without error
	nacked  atomic.Int64
	onRead  func(read int64)
	unread  func(i int) bool // when set, the messages it picks are unreadable
	mu      sync.Mutex
	ackErrs []error
}

func (m *memInput) Read(ctx context.Context) (*record.Batch, connect.AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if m.next >= m.n {
		return nil, nil, connect.ErrEndOfInput
	}
	b := &record.Batch{Source: record.Source{Input: "mem"}}
	for i := 0; i < m.bs && m.next < m.n; i++ {
		if m.unread != nil && m.unread(m.next) {
			b.Unreadable = append(b.Unreadable, record.Unreadable{Pos: int64(m.next + 1), Reason: "unreadable " + strconv.Itoa(m.next)})
		} else {
			b.Records = append(b.Records, record.Record{Value: []byte(strconv.Itoa(m.next)), Pos: int64(m.next + 1)})
		}
		m.next++
	}
	n := int64(b.Len() + len(b.Unreadable))
	r := m.read.Add(n)
	if m.onRead != nil {
		m.onRead(r)
	}
	return b, func(_ context.Context, err error) error {
		if err != nil {
			m.nacked.Add(n)
			m.mu.Lock()
			m.ackErrs = append(m.ackErrs, err)
			m.mu.Unlock()
		} else {
			m.acked.Add(n)
		}
		return nil
	}, nil
}

func (m *memInput) Close(context.Context) error { return nil }

// memOutput collects values; it can fail the first writes or block.
type memOutput struct {
	mu       sync.Mutex
	vals     []string
	failN    int           // fail this many writes first
	failAll  bool          // fail every write
	gate     chan struct{} // when set, each write waits for a token
	writes   int
	onWrite  func()
	ackedAtW []int64 // input acks seen at each write (for ack-after-write)
	in       *memInput
}

func (o *memOutput) Write(ctx context.Context, b *record.Batch) error {
	if o.gate != nil {
		select {
		case <-o.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	if o.failAll || o.failN > 0 {
		o.failN--
		return errors.New("injected write failure")
	}
	if o.in != nil {
		o.ackedAtW = append(o.ackedAtW, o.in.acked.Load())
	}
	for _, r := range b.Records {
		o.vals = append(o.vals, string(r.Value))
	}
	if o.onWrite != nil {
		o.onWrite()
	}
	return nil
}

func (o *memOutput) Close(context.Context) error { return nil }

func (o *memOutput) values() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.vals...)
}

// goStep is a native step for engine tests: value n -> keep if n%fail != 0 etc.
type goStep struct {
	name  string
	ports []string
	fn    func(b *record.Batch, res *plugin.Result) error
}

func (s *goStep) Name() string                                  { return s.name }
func (s *goStep) Ports() []string                               { return s.ports }
func (s *goStep) Close(context.Context) error                   { return nil } // as a StepWorker
func (s *goStep) NewWorker(context.Context) (StepWorker, error) { return s, nil }
func (s *goStep) Process(_ context.Context, b *record.Batch) (*plugin.Result, error) {
	res := &plugin.Result{Ports: make([]record.Batch, len(s.ports)+1)}
	for i := range res.Ports {
		res.Ports[i].Source = b.Source
	}
	return res, s.fn(b, res)
}

// classify: n%7==0 fails, n%5==0 dropped, n%3==0 routed to "alerts", else kept.
func classify(b *record.Batch, res *plugin.Result) error {
	for i, r := range b.Records {
		n, _ := strconv.Atoi(string(r.Value))
		switch {
		case n%7 == 0:
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: "multiple of 7"})
		case n%5 == 0:
			res.Dropped++
		case n%3 == 0:
			res.Ports[1].Records = append(res.Ports[1].Records, r)
		default:
			res.Ports[0].Records = append(res.Ports[0].Records, r)
		}
	}
	return nil
}

func noSleep(context.Context, time.Duration) error { return nil }

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

func TestOrderAndAccounting(t *testing.T) {
	for _, workers := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			in := &memInput{n: 10000, bs: 37}
			out, errs, alerts := &memOutput{}, &memOutput{}, &memOutput{}
			// A step that sleeps a little at random keeps workers out of step.
			var calls atomic.Int64
			st := &goStep{name: "classify", ports: []string{"alerts"}, fn: func(b *record.Batch, res *plugin.Result) error {
				if calls.Add(1)%3 == 0 {
					time.Sleep(time.Duration(calls.Load()%5) * 100 * time.Microsecond)
				}
				return classify(b, res)
			}}
			m := NewMetrics()
			err := Run(context.Background(), context.Background(), Config{
				Input: in, Steps: []Step{st},
				Output: Output{Name: "out", Out: out}, ErrorOutput: Output{Name: "err", Out: errs},
				PortOutputs: []map[string]Output{{"alerts": {Name: "alerts", Out: alerts}}},
				Workers:     workers, Metrics: m, Sleep: noSleep,
			})
			if err != nil {
				t.Fatal(err)
			}
			var wantOut, wantAlerts []string
			wantFail, wantDrop := 0, 0
			for n := 0; n < 10000; n++ {
				switch {
				case n%7 == 0:
					wantFail++
				case n%5 == 0:
					wantDrop++
				case n%3 == 0:
					wantAlerts = append(wantAlerts, strconv.Itoa(n))
				default:
					wantOut = append(wantOut, strconv.Itoa(n))
				}
			}
			if got := out.values(); fmt.Sprint(got) != fmt.Sprint(wantOut) {
				t.Fatalf("main output out of order or incomplete: %d records, want %d", len(got), len(wantOut))
			}
			if got := alerts.values(); fmt.Sprint(got) != fmt.Sprint(wantAlerts) {
				t.Fatalf("alerts output wrong: %d records, want %d", len(got), len(wantAlerts))
			}
			ev := errs.values()
			if len(ev) != wantFail {
				t.Fatalf("error output has %d records, want %d", len(ev), wantFail)
			}
			var e errorRecord
			if err := json.Unmarshal([]byte(ev[1]), &e); err != nil {
				t.Fatal(err)
			}
			if e.Error != "multiple of 7" || e.Step != "classify" || e.Record != "7" || e.Position != 8 || e.Source != "mem" {
				t.Errorf("error record = %+v", e)
			}
			s := m.Snapshot()
			st0 := s.Steps[0]
			if st0.In != 10000 || st0.Out != int64(len(wantOut)) || st0.Routed != int64(len(wantAlerts)) ||
				st0.Failed != int64(wantFail) || st0.Dropped != int64(wantDrop) {
				t.Errorf("step counters %+v", st0)
			}
			// The record balance: every input is in an output or a counter.
			if st0.Out+st0.Routed+st0.Failed+st0.Dropped != s.InputRecords {
				t.Errorf("balance: %d out + %d routed + %d failed + %d dropped != %d in",
					st0.Out, st0.Routed, st0.Failed, st0.Dropped, s.InputRecords)
			}
			if in.acked.Load() != 10000 || in.nacked.Load() != 0 {
				t.Errorf("acked %d, nacked %d", in.acked.Load(), in.nacked.Load())
			}
		})
	}
}

// TestBackpressure: with a blocked output the reader stops after MaxInFlight
// batches; memory (records read but not acked) stays bounded.
func TestBackpressure(t *testing.T) {
	const bs, maxInFlight = 10, 4
	in := &memInput{n: 100000, bs: bs}
	gate := make(chan struct{})
	out := &memOutput{gate: gate, in: in}
	pass := &goStep{name: "pass", fn: func(b *record.Batch, res *plugin.Result) error {
		res.Ports[0].Records = append(res.Ports[0].Records, b.Records...)
		return nil
	}}
	var maxGap atomic.Int64
	in.onRead = func(read int64) {
		if gap := read - in.acked.Load(); gap > maxGap.Load() {
			maxGap.Store(gap)
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), context.Background(), Config{
			Input: in, Steps: []Step{pass},
			Output: Output{Out: out}, ErrorOutput: Output{Out: &memOutput{}},
			Workers: 2, MaxInFlight: maxInFlight, Sleep: noSleep,
		})
	}()
	// Let the pipeline fill up: the reader must stall at MaxInFlight batches.
	deadline := time.Now().Add(5 * time.Second)
	for in.read.Load() < maxInFlight*bs && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // give a runaway reader the chance to overshoot
	if r := in.read.Load(); r != maxInFlight*bs {
		t.Fatalf("with the output blocked, the input read %d records; want exactly %d (MaxInFlight x batch)", r, maxInFlight*bs)
	}
	close(gate) // release the output
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g := maxGap.Load(); g > maxInFlight*bs {
		t.Errorf("records read but not acked peaked at %d, above the bound %d", g, maxInFlight*bs)
	}
	if len(out.values()) != 100000 || in.acked.Load() != 100000 {
		t.Fatalf("wrote %d, acked %d", len(out.values()), in.acked.Load())
	}
}

// TestRetryAndAckAfterWrite: a failing output is retried with doubling
// backoff (injected clock), nothing is lost, and no batch is acked before
// its output write.
func TestRetryAndAckAfterWrite(t *testing.T) {
	in := &memInput{n: 500, bs: 50}
	out := &memOutput{failN: 6, in: in}
	var mu sync.Mutex
	var slept []time.Duration
	sleep := func(_ context.Context, d time.Duration) error {
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return nil
	}
	pass := &goStep{name: "pass", fn: func(b *record.Batch, res *plugin.Result) error {
		res.Ports[0].Records = append(res.Ports[0].Records, b.Records...)
		return nil
	}}
	m := NewMetrics()
	err := Run(context.Background(), context.Background(), Config{
		Input: in, Steps: []Step{pass}, Output: Output{Name: "out", Out: out}, ErrorOutput: Output{Out: &memOutput{}},
		Workers: 2, Sleep: sleep, RetryInitial: 100 * time.Millisecond, RetryMax: 1 * time.Second, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	if len(slept) != len(want) {
		t.Fatalf("slept %v", slept)
	}
	for i := range want {
		if slept[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff %d = %s, want %s (all: %v)", i, slept[i], want[i]*time.Millisecond, slept)
		}
	}
	vals := out.values()
	if len(vals) != 500 || vals[0] != "0" || vals[499] != "499" {
		t.Fatalf("output has %d records", len(vals))
	}
	for i, a := range out.ackedAtW {
		// When batch i is written, at most the i earlier batches are acked.
		if a > int64(i*50) {
			t.Fatalf("at write %d, %d records were already acked: acked before written", i, a)
		}
	}
	if r := m.Snapshot().Outputs[0].Retries; r != 6 {
		t.Errorf("retries counter = %d, want 6", r)
	}
}

// TestWholeBatchFailure: a step error sends every record of the batch to the
// error output with the reason, and the run goes on.
func TestWholeBatchFailure(t *testing.T) {
	in := &memInput{n: 30, bs: 10}
	out, errs := &memOutput{}, &memOutput{}
	var n atomic.Int64
	st := &goStep{name: "flaky", fn: func(b *record.Batch, res *plugin.Result) error {
		if n.Add(1) == 2 {
			return errors.New("plugin m: wsp_process: trap: boom")
		}
		res.Ports[0].Records = append(res.Ports[0].Records, b.Records...)
		return nil
	}}
	if err := Run(context.Background(), context.Background(), Config{Input: in, Steps: []Step{st},
		Output: Output{Out: out}, ErrorOutput: Output{Out: errs}, Sleep: noSleep}); err != nil {
		t.Fatal(err)
	}
	if len(out.values()) != 20 || len(errs.values()) != 10 {
		t.Fatalf("out %d, errors %d", len(out.values()), len(errs.values()))
	}
	var e errorRecord
	_ = json.Unmarshal([]byte(errs.values()[0]), &e)
	if e.Error != "plugin m: wsp_process: trap: boom" || e.Record != "10" {
		t.Errorf("error record %+v", e)
	}
	if in.acked.Load() != 30 {
		t.Errorf("acked %d", in.acked.Load())
	}
}

// TestUnreadable: messages the input could not read go to the error output
// with their reason and position, are counted, and are acked with their
// batch, also when a batch holds nothing else; the steps never see them.
func TestUnreadable(t *testing.T) {
	in := &memInput{n: 30, bs: 10, unread: func(i int) bool { return i%4 == 0 || i >= 20 }}
	out, errs := &memOutput{}, &memOutput{}
	seen := 0
	st := &goStep{name: "pass", fn: func(b *record.Batch, res *plugin.Result) error {
		seen += b.Len()
		res.Ports[0].Records = append(res.Ports[0].Records, b.Records...)
		return nil
	}}
	m := NewMetrics()
	if err := Run(context.Background(), context.Background(), Config{Input: in, Steps: []Step{st}, Workers: 1,
		Output: Output{Out: out}, ErrorOutput: Output{Out: errs}, Sleep: noSleep, Metrics: m}); err != nil {
		t.Fatal(err)
	}
	if len(out.values()) != 15 || len(errs.values()) != 15 || seen != 15 {
		t.Fatalf("out %d, errors %d, step saw %d", len(out.values()), len(errs.values()), seen)
	}
	var e errorRecord
	if err := json.Unmarshal([]byte(errs.values()[1]), &e); err != nil {
		t.Fatal(err)
	}
	if e.Error != "unreadable 4" || e.Step != "input" || e.Position != 5 {
		t.Errorf("error record %+v", e)
	}
	s := m.Snapshot()
	if in.acked.Load() != 30 || s.Unreadable != 15 || s.InputRecords != 30 {
		t.Errorf("acked %d, unreadable %d, input records %d", in.acked.Load(), s.Unreadable, s.InputRecords)
	}
}

// TestHardStop: an output that never accepts is abandoned at the hard stop,
// and its batches are nacked, never acked.
func TestHardStop(t *testing.T) {
	in := &memInput{n: 40, bs: 10}
	out := &memOutput{failAll: true}
	ctx, cancel := context.WithCancel(context.Background())
	hard, hardCancel := context.WithCancel(context.Background())
	var sleeps atomic.Int64
	sleep := func(c context.Context, d time.Duration) error {
		if sleeps.Add(1) == 20 {
			cancel()
			hardCancel()
		}
		return c.Err()
	}
	pass := &goStep{name: "pass", fn: func(b *record.Batch, res *plugin.Result) error {
		res.Ports[0].Records = append(res.Ports[0].Records, b.Records...)
		return nil
	}}
	m := NewMetrics()
	if err := Run(ctx, hard, Config{Input: in, Steps: []Step{pass}, Output: Output{Out: out},
		ErrorOutput: Output{Out: &memOutput{}}, Sleep: sleep, Metrics: m, MaxInFlight: 2}); err != nil {
		t.Fatal(err)
	}
	if in.acked.Load() != 0 {
		t.Fatalf("%d records acked although never written", in.acked.Load())
	}
	if in.nacked.Load() == 0 || m.Snapshot().Outputs[0].Abandoned != in.nacked.Load() {
		t.Fatalf("nacked %d, abandoned %d", in.nacked.Load(), m.Snapshot().Outputs[0].Abandoned)
	}
}
