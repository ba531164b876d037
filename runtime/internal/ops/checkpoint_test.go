package ops

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/wsp-project/wsp/runtime/internal/gobuild"
	"github.com/wsp-project/wsp/runtime/plugin"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/connect"
	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/internal/state"
	"github.com/wsp-project/wsp/runtime/record"
)

// seekInput is sliceInput that reports positions (the index after each
// batch, per partition) and resumes from them, as a replayable input does.
type seekInput struct {
	lines [][]byte
	bs    int
	parts int
	next  []int // per partition: the next line index (partition p owns lines with i/bs%parts == p)
	turn  int
	// pace, when set, is called before every Read (the test slows the
	// input so checkpoints happen mid-run).
	pace func()
}

func newSeekInput(lines [][]byte, bs, parts int) *seekInput {
	s := &seekInput{lines: lines, bs: bs, parts: parts}
	for p := range parts {
		s.next = append(s.next, p*bs)
	}
	return s
}

func (s *seekInput) Read(ctx context.Context) (*record.Batch, connect.AckFunc, error) {
	if s.pace != nil {
		s.pace()
	}
	for range s.parts {
		p := s.turn % s.parts
		s.turn++
		i := s.next[p]
		if i >= len(s.lines) {
			continue
		}
		b := &record.Batch{Source: record.Source{Input: "mem", Partition: fmt.Sprint("p", p)}}
		for k := i; k < min(i+s.bs, len(s.lines)); k++ {
			b.Records = append(b.Records, record.Record{Value: s.lines[k], Pos: int64(k + 1)})
		}
		s.next[p] = i + s.bs*s.parts
		b.Position = binary.AppendUvarint(nil, uint64(s.next[p]))
		return b, func(context.Context, error) error { return nil }, nil
	}
	return nil, nil, connect.ErrEndOfInput
}

func (s *seekInput) Seek(pos map[string][]byte) error {
	for p := range s.parts {
		if b, ok := pos[fmt.Sprint("p", p)]; ok {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("bad position %x", b)
			}
			s.next[p] = int(x)
		}
	}
	return nil
}

func (s *seekInput) Close(context.Context) error { return nil }

// crashFS is the OS file system that, when checkpoint crashAt becomes
// durable, copies the store (what a crash right then would leave on disk)
// and calls onCrash.
type crashFS struct {
	state.OSFS
	dir, copyTo string
	crashAt     int
	n           atomic.Int64 // checkpoints made durable
	onCrash     func()
}

func (f *crashFS) Rename(from, to string) error {
	if err := f.OSFS.Rename(from, to); err != nil {
		return err
	}
	if filepath.Base(to) == "MANIFEST" {
		if f.n.Add(1) == int64(f.crashAt) {
			if err := os.CopyFS(f.copyTo, os.DirFS(f.dir)); err != nil {
				return err
			}
			f.onCrash()
		}
	}
	return nil
}

// lockedOutput collects result lines.
type lockedOutput struct {
	mu   sync.Mutex
	vals []string
}

func (o *lockedOutput) Write(_ context.Context, b *record.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range b.Records {
		o.vals = append(o.vals, string(r.Value))
	}
	return nil
}

func (o *lockedOutput) Close(context.Context) error { return nil }

func (o *lockedOutput) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.vals)
}

// TestCheckpointCrashRestore: a run with checkpoints "crashes" right after
// checkpoint k is durable (the test copies the store then, and keeps what
// the output had received); a new run restores from the copy, with another
// worker count, and resumes the input from the checkpoint's positions.
// What the outputs got before the crash plus what the new run emits must
// be exactly the results of an uninterrupted run: nothing lost, nothing
// counted twice (results emitted after the checkpoint may repeat, the
// same). For windows and for a timeseries step.
func TestCheckpointCrashRestore(t *testing.T) {
	const bound = 300
	lines := sensorLines(30_000, 17, bound, 21)
	ts, err := ParseTSOutput("avg", "moving_avg(2s)")
	if err != nil {
		t.Fatal(err)
	}
	cum, _ := ParseTSOutput("total", "cumsum()")
	steps := map[string]func() engine.KeyedStep{
		"window": func() engine.KeyedStep {
			return &WindowStep{StepName: "w", Size: 1000, Lateness: 200, KeyName: "id", Aggs: windowAggs(t)}
		},
		"timeseries": func() engine.KeyedStep {
			return &TimeSeriesStep{StepName: "ts", Field: "v", Outputs: []TSOutput{ts, cum}}
		},
		"wasm state": func() engine.KeyedStep {
			return &StateStep{StepName: "wd", Module: watchdogModule(t)}
		},
	}
	for name, mk := range steps {
		for _, c := range []struct{ before, after, crashAt int }{{1, 1, 2}, {2, 3, 4}, {3, 1, 7}} {
			t.Run(fmt.Sprintf("%s %d->%d workers crash after checkpoint %d", name, c.before, c.after, c.crashAt), func(t *testing.T) {
				ref, _ := runCkpt(t, lines, mk, c.before, nil, nil)
				if len(ref) < 100 {
					t.Fatalf("only %d results: too few to test anything", len(ref))
				}
				dir, copyDir := t.TempDir(), t.TempDir()
				out := &lockedOutput{}
				var beforeCrash []string
				crashed := make(chan struct{})
				fs := &crashFS{dir: dir, copyTo: copyDir, crashAt: c.crashAt, onCrash: func() {
					beforeCrash = out.snapshot()
					close(crashed)
				}}
				// Every 30 batches the input waits for one more durable
				// checkpoint, so the crash point comes mid-run on any machine.
				// (While it waits, the checkpoints' clock goes on, so the
				// idle path takes them.)
				reads := 0
				pace := func(advance func()) {
					if reads++; reads%30 == 0 {
						for deadline := time.Now().Add(10 * time.Second); fs.n.Load() < int64(reads/30) && time.Now().Before(deadline); {
							advance()
							time.Sleep(100 * time.Microsecond)
						}
					}
				}
				runCkptWith(t, lines, mk, c.before, &engine.Checkpoints{Store: &state.Store{Dir: dir, FS: fs}, Interval: 4 * time.Millisecond}, out, pace)
				select {
				case <-crashed:
				default:
					t.Fatalf("the run took fewer than %d checkpoints", c.crashAt)
				}
				after, _ := runCkpt(t, lines, mk, c.after, &engine.Checkpoints{Store: &state.Store{Dir: copyDir}}, nil)
				got := append(beforeCrash, after...)
				checkExactlyOnce(t, ref, got)
			})
		}
	}
}

// checkExactlyOnce: every result in got is one of ref's, and every result
// of ref is in got (repeats are allowed: outputs are at-least-once). Two
// results are the same when their strings, integers and booleans are equal
// and their other numbers within 1e-9 relative: records of one key from
// different partitions may interleave otherwise after a restart, which
// moves the last bits of a mean or a variance.
func checkExactlyOnce(t *testing.T, ref, got []string) {
	t.Helper()
	byID := map[string][]map[string]any{}
	for _, v := range ref {
		id, m := resultID(t, v)
		byID[id] = append(byID[id], m)
	}
	seen := map[string]bool{}
	for _, v := range got {
		id, m := resultID(t, v)
		found := false
		for _, r := range byID[id] {
			if sameFloats(m, r) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("a result no uninterrupted run gives (state lost or counted twice): %s", v)
		}
		seen[id] = true
	}
	if len(seen) != len(byID) {
		for _, v := range ref {
			if id, _ := resultID(t, v); !seen[id] {
				t.Fatalf("%d of %d results missing, e.g. %s", len(byID)-len(seen), len(byID), v)
			}
		}
	}
}

// resultID is the exact part of a result (all but its fractional numbers).
func resultID(t *testing.T, v string) (string, map[string]any) {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(v))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", v, err)
	}
	var id []string
	for k, x := range m {
		if n, ok := x.(json.Number); ok && strings.ContainsAny(string(n), ".eE") {
			continue
		}
		id = append(id, fmt.Sprintf("%s=%v", k, x))
	}
	slices.Sort(id)
	return strings.Join(id, ","), m
}

func sameFloats(a, b map[string]any) bool {
	for k, x := range a {
		n, ok := x.(json.Number)
		if !ok {
			continue
		}
		m, ok := b[k].(json.Number)
		if !ok {
			return false
		}
		fa, _ := n.Float64()
		fb, _ := m.Float64()
		if math.Abs(fa-fb) > 1e-9*math.Max(1, math.Abs(fb)) {
			return false
		}
	}
	return true
}

func runCkpt(t *testing.T, lines [][]byte, mk func() engine.KeyedStep, workers int, ck *engine.Checkpoints, pace func(advance func())) ([]string, *engine.Metrics) {
	t.Helper()
	out := &lockedOutput{}
	m := runCkptWith(t, lines, mk, workers, ck, out, pace)
	return out.snapshot(), m
}

func runCkptWith(t *testing.T, lines [][]byte, mk func() engine.KeyedStep, workers int, ck *engine.Checkpoints, out *lockedOutput, pace func(advance func())) *engine.Metrics {
	t.Helper()
	return runCkptFull(t, lines, mk, workers, ck, out, pace, quietLogger())
}

func runCkptWithLogger(t *testing.T, lines [][]byte, mk func() engine.KeyedStep, workers int, ck *engine.Checkpoints, out *lockedOutput, log *slog.Logger) *engine.Metrics {
	t.Helper()
	return runCkptFull(t, lines, mk, workers, ck, out, nil, log)
}

func runCkptFull(t *testing.T, lines [][]byte, mk func() engine.KeyedStep, workers int, ck *engine.Checkpoints, out *lockedOutput, pace func(advance func()), log *slog.Logger) *engine.Metrics {
	t.Helper()
	key := &KeyStep{StepName: "key", From: Source{Field: "id"}}
	tstep := &TimeStep{StepName: "ts", From: Source{Field: "ts"}}
	ks := mk()
	for _, v := range []any{key, tstep, ks} {
		if v, ok := v.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	parts := 3
	switch ks.(type) {
	case *TimeSeriesStep, *StateStep:
		// A timeseries output depends on the order of its key's records;
		// with several partitions that order depends on how they
		// interleave, which a restart changes (as in any engine). One
		// partition keeps it fixed.
		parts = 1
	}
	in := newSeekInput(lines, 100, parts)
	// The checkpoints' clock moves 1 ms per input batch, so checkpoints
	// (every 4 ms of it) fall all through the run, whatever the machine.
	var mu sync.Mutex
	now := time.Unix(0, 0)
	advance := func() {
		mu.Lock()
		now = now.Add(time.Millisecond)
		mu.Unlock()
	}
	in.pace = func() {
		if pace != nil {
			pace(advance)
		}
		advance()
	}
	if ck != nil {
		ck.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
	}
	errs := &lockedOutput{}
	m := engine.NewMetrics()
	err := engine.Run(context.Background(), context.Background(), engine.Config{
		Input: in, Steps: []engine.Step{key, tstep}, Workers: workers, Metrics: m,
		Keyed:  &engine.Keyed{Chain: []engine.ChainStep{{Keyed: ks}}, OutOfOrder: 300},
		Output: engine.Output{Out: out}, ErrorOutput: engine.Output{Out: errs},
		Checkpoints: ck,
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := errs.snapshot(); len(v) > 0 {
		t.Fatalf("error output: %s", v[0])
	}
	return m
}

// watchdogModule is the sensor example's keyed-state plugin
// (examples/sensors/watchdog), built once per test and reading field v.
func watchdogModule(t *testing.T) *plugin.Module {
	t.Helper()
	watchdog.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "wsp-ops-test-cache")
		path, err := gobuild.Build(context.Background(), filepath.Join("..", "..", "..", "examples", "sensors", "watchdog"), dir)
		if err != nil {
			watchdog.err = err
			return
		}
		eng, err := plugin.NewEngine(filepath.Join(dir, "compiled"))
		if err != nil {
			watchdog.err = err
			return
		}
		watchdog.m, watchdog.err = eng.LoadFile(context.Background(), path, plugin.Options{
			Config: []byte(`{"field":"v","silence":"700ms","sigma":2,"min_readings":5}`)})
	})
	if watchdog.err != nil {
		t.Fatal(watchdog.err)
	}
	return watchdog.m
}

var watchdog struct {
	once sync.Once
	m    *plugin.Module
	err  error
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// failingFS fails every file write of the first `fail` checkpoints with
// ENOSPC (a full disk), then works.
type failingFS struct {
	state.OSFS
	mu    sync.Mutex
	fail  int
	tries int
}

func (f *failingFS) MkdirAll(p string) error { // once per checkpoint
	f.mu.Lock()
	f.tries++
	f.mu.Unlock()
	return f.OSFS.MkdirAll(p)
}

func (f *failingFS) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

func (f *failingFS) Create(p string) (state.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries <= f.fail {
		return nil, &os.PathError{Op: "write", Path: p, Err: syscall.ENOSPC}
	}
	return f.OSFS.Create(p)
}

// TestCheckpointFullDisk: checkpoints that fail (a full disk) are logged and
// counted; the input acks wait for a later one that succeeds, and the run's
// results are unchanged.
func TestCheckpointFullDisk(t *testing.T) {
	lines := sensorLines(10_000, 7, 300, 5)
	mk := func() engine.KeyedStep {
		return &WindowStep{StepName: "w", Size: 1000, KeyName: "id", Aggs: windowAggs(t)}
	}
	ref, _ := runCkpt(t, lines, mk, 2, nil, nil)
	fs := &failingFS{fail: 4}
	// Every 15 batches the input waits until one more checkpoint has been
	// tried, so all the failing ones come before the end on any machine
	// (how many a run would take unpaced depends on how fast it writes).
	reads := 0
	pace := func(advance func()) {
		if reads++; reads%15 == 0 && reads/15 <= fs.fail+1 {
			for deadline := time.Now().Add(10 * time.Second); fs.attempts() < reads/15 && time.Now().Before(deadline); {
				advance()
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	got, m := runCkpt(t, lines, mk, 2, &engine.Checkpoints{Store: &state.Store{Dir: t.TempDir(), FS: fs}, Interval: 4 * time.Millisecond}, pace)
	checkExactlyOnce(t, ref, got)
	c := m.Snapshot().Checkpoints
	if c == nil || c.Failed < int64(fs.fail) || c.Completed < 1 {
		t.Fatalf("checkpoints %+v: want some failed, then some completed", c)
	}
}
