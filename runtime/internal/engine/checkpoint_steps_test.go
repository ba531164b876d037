package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wsp-project/wsp/runtime/internal/state"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// tagStep is a keyed step that counts its records and passes them on. Its
// snapshot is its tag and its count, and a restore refuses another tag's
// snapshot, so state restored into the wrong step shows.
type tagStep struct {
	name, tag string
	refuse    bool // its Restore fails (as for a changed state layout)
	restored  *restoredCounts
}

type restoredCounts struct {
	mu sync.Mutex
	n  map[string]int // by tag: the counts restored, summed over parts
}

func (s *tagStep) Name() string    { return s.name }
func (s *tagStep) Ports() []string { return nil }
func (s *tagStep) NewWorker(context.Context) (KeyedWorker, error) {
	return &tagWorker{s: s}, nil
}

type tagWorker struct {
	s *tagStep
	n int
}

func (w *tagWorker) Add(_ context.Context, b *record.Batch, res *plugin.Result) error {
	w.n += b.Len()
	res.Ports[0].Records = append(res.Ports[0].Records, b.Records...)
	return nil
}
func (w *tagWorker) Advance(context.Context, int64, *plugin.Result) (bool, error) { return true, nil }
func (w *tagWorker) Close(context.Context) error                                  { return nil }
func (w *tagWorker) Snapshot(dst []byte) ([]byte, error) {
	return append(dst, w.s.tag+":"+strconv.Itoa(w.n)...), nil
}
func (w *tagWorker) Restore(snap []byte, _ func([]byte) bool) error {
	if w.s.refuse {
		return fmt.Errorf("step %s refuses its stored state", w.s.name)
	}
	tag, n, ok := strings.Cut(string(snap), ":")
	if !ok || tag != w.s.tag {
		return fmt.Errorf("step %s (tag %s) was given the state of tag %q", w.s.name, w.s.tag, tag)
	}
	c, err := strconv.Atoi(n)
	if err != nil {
		return err
	}
	// Every new worker reads every old part (keeping the keys keep
	// accepts), so the sum over workers counts each part once per worker.
	// The count itself is not carried on: each run snapshots its own.
	w.s.restored.mu.Lock()
	w.s.restored.n[w.s.tag] += c
	w.s.restored.mu.Unlock()
	return nil
}

// TestCheckpointStepsByName: a restore finds each keyed step's state by the
// step's name, so steps can be added, moved and (when told) removed
// between runs; Reset drops a step's state once (a run repeated with the
// same Reset drops nothing more) and, while it names the step, a state
// that does not restore; unknown names are refused.
func TestCheckpointStepsByName(t *testing.T) {
	const n, workers = 1000, 2
	dir := t.TempDir()
	keyTime := &goStep{name: "kt", fn: func(b *record.Batch, res *plugin.Result) error {
		for _, r := range b.Records {
			r.Key, r.Time, r.Flags = r.Value, 0, record.HasKey|record.HasTime
			res.Ports[0].Records = append(res.Ports[0].Records, r)
		}
		return nil
	}}
	// run runs the chain of the named steps (tag = name; "a!" is a step a
	// whose Restore fails) over n records and returns the counts restored
	// at its start, per tag.
	run := func(names string, reset ...string) (map[string]int, error) {
		rc := &restoredCounts{n: map[string]int{}}
		var chain []ChainStep
		for _, name := range strings.Split(names, ",") {
			if name == "" {
				break // no keyed step
			}
			name, refuse := strings.CutSuffix(name, "!")
			chain = append(chain, ChainStep{Keyed: &tagStep{name: name, tag: name, refuse: refuse, restored: rc}})
		}
		var keyed *Keyed
		if len(chain) > 0 {
			keyed = &Keyed{Chain: chain}
		}
		err := Run(context.Background(), context.Background(), Config{
			Input: &memInput{n: n, bs: 50}, Steps: []Step{keyTime}, Workers: workers,
			Keyed:  keyed,
			Output: Output{Name: "out", Out: &memOutput{}}, ErrorOutput: Output{Name: "err", Out: &memOutput{}},
			Checkpoints: &Checkpoints{Store: &state.Store{Dir: dir}, Reset: reset},
			Sleep:       noSleep,
		})
		for tag, c := range rc.n {
			rc.n[tag] = c / workers
		}
		return rc.n, err
	}
	steps := []struct {
		chain  string
		reset  []string
		want   map[string]int // restored counts
		errHas string
	}{
		{chain: "a,b", reset: []string{"nosuch"}, errHas: `"nosuch" is not a keyed step of the pipeline, and there is no checkpoint`},
		{chain: "a,b", want: map[string]int{}},
		// Moved: by index, each would get the other's state.
		{chain: "b,a", want: map[string]int{"a": n, "b": n}},
		// Added: c starts empty.
		{chain: "c,a,b", want: map[string]int{"a": n, "b": n}},
		// Removed: refused, unless told to leave the state behind; with a
		// new step, the message says how to keep the state by a name.
		{chain: "a,b", errHas: `holds the state of step "c", which the pipeline no longer has: restore the step, or start with --reset-state c`},
		{chain: "a,b,d", errHas: "if d is that step (a step without a name is named by its kind and its number among the steps of that kind), give it `name: c`; otherwise restore"},
		{chain: "a,b", reset: []string{"zz"}, errHas: `"zz" is a keyed step neither of the pipeline nor of checkpoint`},
		// Reset drops a's state and leaves c's behind, once: the runs
		// after with the same Reset keep a's new state (and know c).
		{chain: "a,b", reset: []string{"c", "a"}, want: map[string]int{"b": n}},
		{chain: "a,b", reset: []string{"c", "a"}, want: map[string]int{"a": n, "b": n}},
		{chain: "a,b", reset: []string{"c"}, want: map[string]int{"a": n, "b": n}},
		// a taken out of Reset and named again: dropped again.
		{chain: "a,b", reset: []string{"a"}, want: map[string]int{"b": n}},
		{chain: "a,b", reset: []string{"a"}, want: map[string]int{"a": n, "b": n}},
		// c is no longer known once a run without it in Reset checkpointed.
		{chain: "a,b", reset: []string{"c"}, errHas: `"c" is a keyed step neither of the pipeline nor of checkpoint`},
		// A state that does not restore refuses the start, unless Reset
		// names the step (also when it did so before): it then starts empty.
		{chain: "a!,b", errHas: "step a refuses its stored state"},
		{chain: "a!,b", reset: []string{"a"}, want: map[string]int{"b": n}},
		{chain: "a,b", want: map[string]int{"a": n, "b": n}},
		{chain: "a", reset: []string{"b"}, want: map[string]int{"a": n}},
		{chain: "a", want: map[string]int{"a": n}},
		// A pipeline without keyed steps takes no checkpoints, and refuses
		// the keyed state the folder holds (it could not record leaving it
		// behind, so the state would come back later).
		{chain: "", errHas: "holds the state of steps a, and this pipeline has no keyed step"},
		{chain: "", reset: []string{"a"}, errHas: `reset-state: "a": the pipeline has no keyed steps`},
	}
	for i, s := range steps {
		got, err := run(s.chain, s.reset...)
		if s.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), s.errHas) {
				t.Fatalf("run %d (%s, reset %v): err %v, want %q", i+1, s.chain, s.reset, err, s.errHas)
			}
			continue
		}
		if err != nil {
			t.Fatalf("run %d (%s, reset %v): %v", i+1, s.chain, s.reset, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Fatalf("run %d (%s, reset %v): restored %v, want %v", i+1, s.chain, s.reset, got, s.want)
		}
	}
}

// TestCheckpointMetaFormat1: a checkpoint of the first meta format (no step
// list) is still read; its steps are matched by index.
func TestCheckpointMetaFormat1(t *testing.T) {
	b := binary.AppendUvarint(nil, 1)
	b = binary.AppendUvarint(b, 7)   // id
	b = binary.AppendUvarint(b, 100) // covered seq
	b = binary.AppendVarint(b, 12345)
	b = binary.AppendUvarint(b, 2)   // workers
	b = binary.AppendUvarint(b, 128) // max parallelism
	b = binary.AppendUvarint(b, 0)   // tracker
	b = binary.AppendUvarint(b, 1)   // positions
	b = binary.AppendUvarint(b, 1)
	b = append(b, 'p')
	b = binary.AppendUvarint(b, 2)
	b = append(b, "@3"...)
	m, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.steps != nil || m.wm != 12345 || m.workers != 2 || m.maxParallelism != 128 || string(m.positions["p"]) != "@3" {
		t.Fatalf("decoded %+v", m)
	}
	c := &ckpt{e: &engine{cfg: Config{Keyed: &Keyed{Chain: []ChainStep{
		{Keyed: &tagStep{name: "a"}}, {Step: &goStep{name: "s"}}, {Keyed: &tagStep{name: "b"}}}}}}, steps: []int{0, 2}}
	c.e.cfg.Logger = slog.Default()
	got, err := c.stepMap(7, m)
	if err != nil || fmt.Sprint(got) != "map[0:0 2:2]" {
		t.Fatalf("steps by index: %v, %v", got, err)
	}
	// A damaged format 2 meta whose step count is huge is refused at once.
	v2 := binary.AppendUvarint(append([]byte{2}, b[1:]...), 1<<62)
	if _, err := decodeMeta(v2); err == nil || !strings.Contains(err.Error(), "cut short or corrupt") {
		t.Fatalf("huge step count: %v", err)
	}
	if _, err := decodeMeta(append([]byte{3}, b[1:]...)); err == nil || !strings.Contains(err.Error(), "format version 3; this wsp reads versions 1 and 2") {
		t.Fatalf("format 3: %v", err)
	}
}

// TestNoKeyedSavepoint: a pipeline without keyed steps started from a
// savepoint that holds no checkpoint is refused, as a keyed one is.
func TestNoKeyedSavepoint(t *testing.T) {
	err := Run(context.Background(), context.Background(), Config{
		Input: &memInput{n: 10, bs: 5}, Workers: 1,
		Output: Output{Name: "out", Out: &memOutput{}}, ErrorOutput: Output{Name: "err", Out: &memOutput{}},
		Checkpoints: &Checkpoints{Store: &state.Store{Dir: t.TempDir()}, RestoreFrom: &state.Store{Dir: t.TempDir()}},
		Sleep:       noSleep,
	})
	if err == nil || !strings.Contains(err.Error(), "no intact checkpoint in savepoint") {
		t.Fatalf("err = %v", err)
	}
}
