package ops

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/internal/state"
	"github.com/wsp-project/wsp/runtime/record"
)

// downOutput fails every write (an output that is down); tried is
// signalled at each attempt.
type downOutput struct {
	n     atomic.Int64
	tried chan struct{}
}

func (o *downOutput) Write(context.Context, *record.Batch) error {
	o.n.Add(1)
	select {
	case o.tried <- struct{}{}:
	default:
	}
	return errors.New("output down")
}
func (o *downOutput) Close(context.Context) error { return nil }

// TestCheckpointAfterAbandonedWrites: the output is down; the
// run is stopped (ctx) and then hard-stopped, so the writes are abandoned
// (the inputs nacked). The final checkpoint must not claim those records:
// a restart must still produce every result.
func TestCheckpointAfterAbandonedWrites(t *testing.T) {
	lines := sensorLines(6000, 7, 300, 5)
	mk := func() engine.KeyedStep {
		return &WindowStep{StepName: "w", Size: 1000, KeyName: "id", Aggs: windowAggs(t)}
	}
	ref, _ := runCkpt(t, lines, mk, 1, nil, nil)
	dir := t.TempDir()

	ctx, stop := context.WithCancel(context.Background())
	hard, hardStop := context.WithCancel(context.Background())
	in := newSeekInput(lines, 100, 3)
	// The output is down, so the pipeline stalls (backpressure): once it
	// has tried to write, stop; after a few more tries, stop hard.
	out := &downOutput{tried: make(chan struct{})}
	go func() {
		<-out.tried
		stop()
		for range 3 {
			<-out.tried
		}
		hardStop()
	}()
	key := &KeyStep{StepName: "key", From: Source{Field: "id"}}
	tstep := &TimeStep{StepName: "ts", From: Source{Field: "ts"}}
	for _, v := range []interface{ Validate() error }{key, tstep} {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	ws := mk()
	if err := ws.(interface{ Validate() error }).Validate(); err != nil {
		t.Fatal(err)
	}
	err := engine.Run(ctx, hard, engine.Config{
		Input: in, Steps: []engine.Step{key, tstep}, Workers: 1,
		Keyed:  &engine.Keyed{Chain: []engine.ChainStep{{Keyed: ws}}, OutOfOrder: 300},
		Output: engine.Output{Out: out}, ErrorOutput: engine.Output{Out: &lockedOutput{}},
		Checkpoints:  &engine.Checkpoints{Store: &state.Store{Dir: dir}, Interval: time.Hour},
		Logger:       quietLogger(),
		RetryInitial: time.Millisecond, RetryMax: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.n.Load() == 0 {
		t.Fatal("no write was tried")
	}
	if cp, _, _ := (&state.Store{Dir: dir}).Latest(); cp != nil {
		t.Fatalf("a checkpoint (%d) was written although output writes before it were abandoned", cp.ID)
	}
	after, _ := runCkpt(t, lines, mk, 1, &engine.Checkpoints{Store: &state.Store{Dir: dir}}, nil)
	checkExactlyOnce(t, ref, after)
}

// TestCheckpointIDsAfterSavepoint: a run restored from an older
// savepoint numbers its checkpoints from the savepoint's id, below the ones
// already in the state folder; those are never pruned and stay "newest", so
// a crash recovery restores the old run's state, not this run's.
func TestCheckpointIDsAfterSavepoint(t *testing.T) {
	lines := sensorLines(6000, 7, 300, 5)
	mk := func() engine.KeyedStep {
		return &WindowStep{StepName: "w", Size: 1000, KeyName: "id", Aggs: windowAggs(t)}
	}
	dir, early, sp := t.TempDir(), t.TempDir(), t.TempDir()+"/sp"
	fs := &crashFS{dir: dir, copyTo: early, crashAt: 2, onCrash: func() {}}
	reads := 0
	pace := func(advance func()) { // a checkpoint every 10 batches
		if reads++; reads%10 == 0 {
			for deadline := time.Now().Add(10 * time.Second); fs.n.Load() < int64(reads/10) && time.Now().Before(deadline); {
				advance()
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	_, ma := runCkpt(t, lines, mk, 1, &engine.Checkpoints{Store: &state.Store{Dir: dir, FS: fs}, Interval: 4 * time.Millisecond}, pace)
	if _, err := (&state.Store{Dir: early}).SaveLatest(sp); err != nil {
		t.Fatal(err)
	}
	_, mb := runCkpt(t, lines, mk, 1, &engine.Checkpoints{Store: &state.Store{Dir: dir}, RestoreFrom: &state.Store{Dir: sp}, Interval: time.Hour}, nil)
	cp, _, _ := (&state.Store{Dir: dir}).Latest()
	t.Logf("run A last id %d; run B restored %d, last id %d; newest in the folder %d",
		ma.Snapshot().Checkpoints.LastID, mb.Snapshot().Checkpoints.Restored, mb.Snapshot().Checkpoints.LastID, cp.ID)
	if cp.ID != mb.Snapshot().Checkpoints.LastID {
		t.Fatalf("after run B the store's newest checkpoint is %d, not run B's last (%d): a restart restores run A's state", cp.ID, mb.Snapshot().Checkpoints.LastID)
	}
}

// TestCorruptCheckpointFallsBack: with the newest checkpoint corrupt, a
// restart says so in the log (naming the checkpoint and the reason) and
// restores the one before; the results are still exactly-once.
func TestCorruptCheckpointFallsBack(t *testing.T) {
	lines := sensorLines(6000, 7, 300, 5)
	mk := func() engine.KeyedStep {
		return &WindowStep{StepName: "w", Size: 1000, KeyName: "id", Aggs: windowAggs(t)}
	}
	ref, _ := runCkpt(t, lines, mk, 1, nil, nil)
	dir, copyDir := t.TempDir(), t.TempDir()
	out := &lockedOutput{}
	var before []string
	fs := &crashFS{dir: dir, copyTo: copyDir, crashAt: 3, onCrash: func() { before = out.snapshot() }}
	reads := 0
	pace := func(advance func()) {
		if reads++; reads%10 == 0 {
			for deadline := time.Now().Add(10 * time.Second); fs.n.Load() < int64(reads/10) && time.Now().Before(deadline); {
				advance()
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	runCkptWith(t, lines, mk, 1, &engine.Checkpoints{Store: &state.Store{Dir: dir, FS: fs}, Interval: 4 * time.Millisecond}, out, pace)
	if before == nil {
		t.Fatal("no crash point")
	}
	// The copy holds checkpoints 2 and 3: damage 3.
	parts, _ := filepath.Glob(filepath.Join(copyDir, "chk-*3", "w0.s0"))
	if len(parts) != 1 {
		t.Fatalf("parts of checkpoint 3: %v", parts)
	}
	b, err := os.ReadFile(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(parts[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	after := &lockedOutput{}
	m := runCkptWithLogger(t, lines, mk, 1, &engine.Checkpoints{Store: &state.Store{Dir: copyDir}}, after, slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "checkpoint 3 skipped") || !strings.Contains(logs.String(), "corrupt") {
		t.Fatalf("no log line about the corrupt checkpoint:\n%s", logs.String())
	}
	if r := m.Snapshot().Checkpoints.Restored; r != 2 {
		t.Fatalf("restored checkpoint %d, want 2", r)
	}
	checkExactlyOnce(t, ref, append(before, after.snapshot()...))
}
