package ops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/internal/state"
)

// TestCheckpointFormatV1: a checkpoint written by this version (format 1,
// checked in under testdata/checkpoint-v1) is restored, and the run goes on
// to the results recorded with it. A later wsp must keep passing this test
// (reading the formats of earlier ones), or say clearly that it cannot.
//
// WSP_UPDATE_FIXTURES=1 rewrites the fixture: only when the format version
// changes, keeping the old one beside it.
func TestCheckpointFormatV1(t *testing.T) {
	fixture := filepath.Join("testdata", "checkpoint-v1")
	lines := sensorLines(3000, 5, 300, 31)
	mk := func() engine.KeyedStep {
		return &WindowStep{StepName: "w", Size: 1000, Lateness: 100, KeyName: "id", Aggs: windowAggs(t)}
	}
	if os.Getenv("WSP_UPDATE_FIXTURES") != "" {
		_ = os.RemoveAll(fixture)
		dir := t.TempDir()
		// A run stopped half-way (its last checkpoint holds open windows),
		// then the results of going on from it.
		out := &lockedOutput{}
		runFixture(t, lines, mk, &engine.Checkpoints{Store: &state.Store{Dir: dir}, Interval: time.Hour}, out, 15)
		if err := os.CopyFS(fixture, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		rest := &lockedOutput{}
		runFixture(t, lines, mk, &engine.Checkpoints{Store: &state.Store{Dir: t.TempDir()}, RestoreFrom: &state.Store{Dir: fixture}}, rest, 0)
		if err := os.WriteFile(filepath.Join(fixture, "expected.jsonl"), []byte(strings.Join(rest.snapshot(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(filepath.Join(fixture, "expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	got := &lockedOutput{}
	runFixture(t, lines, mk, &engine.Checkpoints{Store: &state.Store{Dir: t.TempDir()}, RestoreFrom: &state.Store{Dir: fixture}}, got, 0)
	if g := strings.Join(got.snapshot(), "\n") + "\n"; g != string(want) {
		t.Fatalf("restoring the format 1 checkpoint gives other results:\n got %d bytes\nwant %d bytes", len(g), len(want))
	}
	if len(want) < 1000 {
		t.Fatalf("the fixture's expected results are too few (%d bytes) to test anything", len(want))
	}
}

// runFixture runs key -> event_time -> window over lines from one
// partition with one worker (fully deterministic), stopping (as by
// SIGTERM: a last checkpoint) after stopAfter batches when > 0.
func runFixture(t *testing.T, lines [][]byte, mk func() engine.KeyedStep, ck *engine.Checkpoints, out *lockedOutput, stopAfter int) {
	t.Helper()
	key := &KeyStep{StepName: "key", From: Source{Field: "id"}}
	tstep := &TimeStep{StepName: "ts", From: Source{Field: "ts"}}
	ks := mk()
	for _, v := range []interface{ Validate() error }{key, tstep, ks.(interface{ Validate() error })} {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	in := newSeekInput(lines, 100, 1)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	reads := 0
	in.pace = func() {
		if reads++; stopAfter > 0 && reads > stopAfter {
			stop()
		}
	}
	err := engine.Run(ctx, context.Background(), engine.Config{
		Input: in, Steps: []engine.Step{key, tstep}, Workers: 1, MaxInFlight: 1,
		Keyed:  &engine.Keyed{Chain: []engine.ChainStep{{Keyed: ks}}, OutOfOrder: 300},
		Output: engine.Output{Out: out}, ErrorOutput: engine.Output{Out: &lockedOutput{}},
		Checkpoints: ck, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
}
