package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/record"
)

// slowInput hands out keyed, timestamped batches until stopped, then ends.
type slowInput struct {
	n    int
	stop atomic.Bool
}

func (s *slowInput) Read(ctx context.Context) (*record.Batch, AckFunc, error) {
	if s.stop.Load() {
		return nil, nil, ErrEndOfInput
	}
	time.Sleep(time.Millisecond) // a live source: the run lasts until stopped
	b := &record.Batch{Source: record.Source{Input: "in"}}
	for range 10 {
		s.n++
		b.Records = append(b.Records, record.Record{Key: []byte(fmt.Sprint("k", s.n%7)), Time: int64(s.n),
			Value: []byte(`{"v":1}`), Flags: record.HasKey | record.HasTime})
	}
	return b, func(context.Context, error) error { return nil }, nil
}

func (s *slowInput) Close(context.Context) error { return nil }

type dropOutput struct{}

func (dropOutput) Write(context.Context, *record.Batch) error { return nil }
func (dropOutput) Close(context.Context) error                { return nil }

const windowYAML = `
pipeline:
  - window: { tumbling: { size: 1h }, aggregates: { total: sum(v) } }
`

// TestSavepointWhileRunning: with the Pebble backend (which locks its
// folder), a savepoint asked for in the process of a running pipeline goes
// through that run's backend, and the savepoint restores; a second
// pipeline of the process on the same folder is refused.
func TestSavepointWhileRunning(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	p, err := Parse([]byte(windowYAML), ".")
	if err != nil {
		t.Fatal(err)
	}
	in := &slowInput{}
	m := NewMetrics()
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(context.Background(), Options{Workers: 1, Input: in, Output: dropOutput{}, StateDir: stateDir,
			CheckpointInterval: 10 * time.Millisecond, Metrics: m, CacheDir: filepath.Join(dir, "cache")})
		done <- err
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c := m.Snapshot().Checkpoints; c != nil && c.Completed >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint within 20 s")
		}
	}
	if _, err := p.Run(context.Background(), Options{Workers: 1, Input: &slowInput{}, Output: dropOutput{}, StateDir: stateDir,
		CacheDir: filepath.Join(dir, "cache")}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second run on the folder: %v", err)
	}
	sp, err := SavepointDir(stateDir, "live")
	if err != nil {
		t.Fatal(err)
	}
	id, err := Savepoint(stateDir, sp)
	if err != nil || id == 0 {
		t.Fatalf("savepoint while running: %d %v", id, err)
	}
	in.stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(stateDir, BackendPebble)); err != nil {
		t.Fatalf("the default backend is not Pebble: %v", err)
	}
	// A run from the savepoint, on a files-backend folder, restores it.
	ended := &slowInput{}
	ended.stop.Store(true)
	m2 := NewMetrics()
	s2 := filepath.Join(dir, "s2")
	if _, err := p.Run(context.Background(), Options{Workers: 2, Input: ended, Output: dropOutput{},
		StateDir: s2, StateBackend: BackendFiles, FromSavepoint: sp, Metrics: m2, CacheDir: filepath.Join(dir, "cache")}); err != nil {
		t.Fatal(err)
	}
	if c := m2.Snapshot().Checkpoints; c == nil || c.Restored != id {
		t.Fatalf("restored %+v, want checkpoint %d", c, id)
	}
	// That folder now holds files-backend checkpoints: Pebble refuses it,
	// the default takes what it holds.
	if _, err := p.Run(context.Background(), Options{Workers: 1, Input: ended, Output: dropOutput{}, StateDir: s2,
		StateBackend: BackendPebble, CacheDir: filepath.Join(dir, "cache")}); err == nil || !strings.Contains(err.Error(), "is the files backend's") {
		t.Errorf("pebble on a files folder: %v", err)
	}
	m3 := NewMetrics()
	if _, err := p.Run(context.Background(), Options{Workers: 1, Input: ended, Output: dropOutput{}, StateDir: s2, Metrics: m3,
		CacheDir: filepath.Join(dir, "cache")}); err != nil {
		t.Errorf("default backend on a files folder: %v", err)
	} else if c := m3.Snapshot().Checkpoints; c == nil || c.Restored == 0 {
		t.Errorf("default backend on a files folder restored nothing: %+v", c)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := SavepointDir(stateDir, bad); err == nil {
			t.Errorf("savepoint name %q accepted", bad)
		}
	}
	if _, err := Savepoint(filepath.Join(dir, "nothing"), filepath.Join(dir, "sp")); err == nil || !strings.Contains(err.Error(), "no checkpoints") {
		t.Errorf("savepoint of an empty folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing")); err == nil {
		t.Error("a savepoint of a missing folder created it")
	}
}

// listInput hands out the given records once, as one batch.
type listInput struct {
	recs []record.Record
	done bool
}

func (l *listInput) Read(context.Context) (*record.Batch, AckFunc, error) {
	if l.done {
		return nil, nil, ErrEndOfInput
	}
	l.done = true
	return &record.Batch{Source: record.Source{Input: "in"}, Records: l.recs}, func(context.Context, error) error { return nil }, nil
}
func (l *listInput) Close(context.Context) error { return nil }

type collectOutput struct{ recs []record.Record }

func (c *collectOutput) Write(_ context.Context, b *record.Batch) error {
	for _, r := range b.Records {
		r.Value = append([]byte(nil), r.Value...)
		c.recs = append(c.recs, r)
	}
	return nil
}
func (c *collectOutput) Close(context.Context) error { return nil }

// TestRekeyBeforeKeyedStep: a Wasm step with keyed state that changes the
// key, followed by another keyed step: records that would reach a worker
// not owning their new key go to the error output (no second shuffle), so
// no key's state is split between workers; nothing is lost.
func TestRekeyBeforeKeyedStep(t *testing.T) {
	mod, _ := filepath.Abs(filepath.Join("..", "plugins", "testdata", "wasm", "go_stateops.wasm"))
	for _, workers := range []int{1, 4} {
		errFile := filepath.Join(t.TempDir(), "errors.jsonl")
		y := fmt.Sprintf("pipeline:\n  - name: a\n    wasm: {module: %q}\n  - name: b\n    wasm: {module: %q}\n"+
			"error_output: {file: {path: %q, codec: lines}}\n", mod, mod, errFile)
		p, err := Parse([]byte(y), ".")
		if err != nil {
			t.Fatal(err)
		}
		var recs []record.Record
		for i := range 100 {
			recs = append(recs, record.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("rekey:ALL"), Flags: record.HasKey})
		}
		out := &collectOutput{}
		sum, err := p.Run(context.Background(), Options{Workers: workers, Input: &listInput{recs: recs}, Output: out,
			CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(errFile)
		var errs []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			if !strings.Contains(l, "re-keying needs a second shuffle") {
				t.Fatalf("%d workers: error %s", workers, l)
			}
			errs = append(errs, l)
		}
		if len(out.recs)+len(errs) != 100 || (workers == 1) != (len(errs) == 0) {
			t.Fatalf("%d workers: %d out, %d errors (%+v)", workers, len(out.recs), len(errs), sum)
		}
		for _, r := range out.recs {
			if string(r.Key) != "ALL" || !strings.HasPrefix(string(r.Value), "val=-") {
				t.Fatalf("%d workers: %s %s", workers, r.Key, r.Value)
			}
		}
	}
}
