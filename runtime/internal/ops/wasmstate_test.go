package ops

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// stateHarness drives one worker of a StateStep over the stateops test
// guest, with an injected clock.
type stateHarness struct {
	t    *testing.T
	s    *StateStep
	w    engine.KeyedWorker
	now  time.Time
	errs []string // failure reasons of the last step
}

func newStateHarness(t *testing.T) *stateHarness {
	t.Helper()
	eng, err := plugin.NewEngine(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	m, err := eng.LoadFile(context.Background(), filepath.Join("..", "..", "..", "plugins", "testdata", "wasm", "go_stateops.wasm"), plugin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &stateHarness{t: t, now: time.UnixMilli(1_000_000)}
	h.s = &StateStep{StepName: "st", Module: m, Now: func() time.Time { return h.now }}
	h.w = h.newWorker()
	return h
}

func (h *stateHarness) newWorker() engine.KeyedWorker {
	w, err := h.s.NewWorker(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// add runs records "key=command" and returns the outputs "key: text".
func (h *stateHarness) add(cmds ...string) []string {
	h.t.Helper()
	out, err := h.addErr(cmds...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *stateHarness) addErr(cmds ...string) ([]string, error) {
	h.errs = nil
	b := &record.Batch{Source: record.Source{Input: "in"}}
	for i, c := range cmds {
		k, v, _ := strings.Cut(c, "=")
		b.Records = append(b.Records, record.Record{Key: []byte(k), Value: []byte(v), Time: int64(i), Flags: record.HasKey | record.HasTime})
	}
	res := &plugin.Result{Ports: make([]record.Batch, 1)}
	err := h.w.Add(context.Background(), b, res)
	return h.collect(res), err
}

func (h *stateHarness) collect(res *plugin.Result) []string {
	var out []string
	for _, r := range res.Ports[0].Records {
		out = append(out, string(r.Key)+": "+string(r.Value))
	}
	for _, f := range res.Failed {
		src := res.Failing
		h.errs = append(h.errs, string(src.Records[f.Index].Key)+" "+string(src.Records[f.Index].Value)+": "+f.Reason)
	}
	return out
}

// advance moves the watermark (proc false) or the clock (proc true) to t
// and returns what fired.
func (h *stateHarness) advance(t int64, proc bool) []string {
	h.errs = nil
	var out []string
	for done := false; !done; {
		res := &plugin.Result{Ports: make([]record.Batch, 1)}
		var err error
		if proc {
			done, err = h.w.(engine.ProcTimer).AdvanceProc(context.Background(), t, res)
		} else {
			done, err = h.w.Advance(context.Background(), t, res)
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, h.collect(res)...)
	}
	return out
}

func (h *stateHarness) expect(got []string, want ...string) {
	h.t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		h.t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestStateStepOps: every state operation, seen by the next record of the
// same batch and by later batches; keys are separate.
func TestStateStepOps(t *testing.T) {
	h := newStateHarness(t)
	h.expect(h.add("a=set:1", "b=put:x:9", "a=put:y:2", "a=app:p", "a=app:q", "b=get"),
		"a: val=1 map={} list=[]", "b: val=- map={x:9} list=[]", "a: val=1 map={y:2} list=[]",
		"a: val=1 map={y:2} list=[p]", "a: val=1 map={y:2} list=[p,q]", "b: val=- map={x:9} list=[]")
	h.expect(h.add("a=get", "a=put:y:3", "a=put:z:4", "a=del:y", "b=unset"),
		"a: val=1 map={y:2} list=[p,q]", "a: val=1 map={y:3} list=[p,q]", "a: val=1 map={y:3,z:4} list=[p,q]",
		"a: val=1 map={z:4} list=[p,q]", "b: val=- map={x:9} list=[]")
	h.expect(h.add("a=lclear", "a=mclear", "b=clear", "b=get"),
		"a: val=1 map={z:4} list=[]", "a: val=1 map={} list=[]", "b: val=- map={} list=[]", "b: val=- map={} list=[]")
	h.expect(h.add("a=clear", "a=get", "b=get"), "a: val=- map={} list=[]", "a: val=- map={} list=[]", "b: val=- map={} list=[]")
	if n := len(h.w.(*stateWorker).keys); n != 0 {
		t.Errorf("%d keys kept with no state", n)
	}
}

// TestStateStepFailedCallKeepsState: a batch whose call fails changes no
// state, also for the records before the failing one.
func TestStateStepFailedCallKeepsState(t *testing.T) {
	h := newStateHarness(t)
	h.expect(h.add("a=set:1"), "a: val=1 map={} list=[]")
	if _, err := h.addErr("a=set:2", "b=put:k:v", "a=panic"); err == nil || !strings.Contains(err.Error(), "asked to") {
		t.Fatalf("err = %v, want the guest's panic", err)
	}
	h.expect(h.add("a=get", "b=get"), "a: val=1 map={} list=[]", "b: val=- map={} list=[]")
}

// TestStateStepTTL: entries expire by the processing clock, counted from
// the batch that set them; a set starts the time again.
func TestStateStepTTL(t *testing.T) {
	h := newStateHarness(t)
	h.expect(h.add("a=ttl:v:1000", "a=putttl:k:1:500", "a=put:n:2", "a=appttl:i:700", "a=app:j"),
		"a: val=v map={} list=[]", "a: val=v map={k:1} list=[]", "a: val=v map={k:1,n:2} list=[]",
		"a: val=v map={k:1,n:2} list=[i]", "a: val=v map={k:1,n:2} list=[i,j]")
	h.now = h.now.Add(499 * time.Millisecond)
	h.expect(h.add("a=get"), "a: val=v map={k:1,n:2} list=[i,j]")
	h.now = h.now.Add(1 * time.Millisecond) // 500: k expired
	h.expect(h.add("a=get"), "a: val=v map={n:2} list=[i,j]")
	h.now = h.now.Add(200 * time.Millisecond) // 700: i expired
	h.expect(h.add("a=get", "a=ttl:w:1000"), "a: val=v map={n:2} list=[j]", "a: val=w map={n:2} list=[j]")
	h.now = h.now.Add(999 * time.Millisecond) // v would have expired at 1000; w lives to 1700
	h.expect(h.add("a=get"), "a: val=w map={n:2} list=[j]")
	h.now = h.now.Add(1 * time.Millisecond)
	h.expect(h.add("a=get"), "a: val=- map={n:2} list=[j]")
	// Keys whose state all expired are swept without being touched.
	h.expect(h.add("b=ttl:x:10"), "b: val=x map={} list=[]")
	h.now = h.now.Add(sweepEvery)
	h.expect(h.add("a=clear"), "a: val=- map={} list=[]")
	if n := len(h.w.(*stateWorker).keys); n != 0 {
		t.Errorf("%d keys left after the sweep", n)
	}
}

// TestStateStepTimers: event-time timers fire when the watermark reaches
// them, in (time, key) order, once; deleted timers do not fire; timers set
// while firing fire in the same advance when due. Processing-time timers
// follow the clock.
func TestStateStepTimers(t *testing.T) {
	h := newStateHarness(t)
	h.expect(h.add("b=timer:20", "a=timer:20", "a=timer:10", "a=timer:10", "c=timer:15", "c=untimer:15", "a=ptimer:5000"),
		"b: val=- map={} list=[]", "a: val=- map={} list=[]", "a: val=- map={} list=[]", "a: val=- map={} list=[]",
		"c: val=- map={} list=[]", "c: val=- map={} list=[]", "a: val=- map={} list=[]")
	h.expect(h.advance(9, false))
	h.expect(h.advance(20, false), "a: timer e 10 val=- map={} list=[]", "a: timer e 20 val=- map={} list=[]", "b: timer e 20 val=- map={} list=[]")
	h.expect(h.advance(1000, false))
	h.expect(h.advance(4999, true))
	h.expect(h.advance(5000, true), "a: timer p 5000 val=- map={} list=[]")
	// A failing timer call: each of its timers goes to the error output,
	// named, and the state is unchanged.
	h.expect(h.add("x=set:boom", "x=timer:2000", "y=timer:2000"), "x: val=boom map={} list=[]", "x: val=boom map={} list=[]", "y: val=- map={} list=[]")
	h.expect(h.advance(3000, false))
	if len(h.errs) != 2 || !strings.Contains(h.errs[0], `x {"timer":2000,"domain":"event_time"}: `) || !strings.Contains(h.errs[0], "timer boom") {
		t.Errorf("errors = %q", h.errs)
	}
	h.expect(h.add("x=get"), "x: val=boom map={} list=[]")
}

// TestStateStepSnapshot: state and timers survive a snapshot and restore,
// split by key; a module of another layout version is refused unless the
// step resets its state.
func TestStateStepSnapshot(t *testing.T) {
	h := newStateHarness(t)
	h.expect(h.add("a=set:1", "a=putttl:k:v:5000", "a=app:i", "b=timer:50", "b=ptimer:9000", "c=set:3"),
		"a: val=1 map={} list=[]", "a: val=1 map={k:v} list=[]", "a: val=1 map={k:v} list=[i]",
		"b: val=- map={} list=[]", "b: val=- map={} list=[]", "c: val=3 map={} list=[]")
	snap, err := h.w.(engine.Snapshotter).Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Two workers share the keys.
	w1, w2 := h.newWorker(), h.newWorker()
	if err := w1.(engine.Snapshotter).Restore(snap, func(k []byte) bool { return string(k) != "c" }); err != nil {
		t.Fatal(err)
	}
	if err := w2.(engine.Snapshotter).Restore(snap, func(k []byte) bool { return string(k) == "c" }); err != nil {
		t.Fatal(err)
	}
	h.w = w1
	h.now = h.now.Add(time.Second)
	h.expect(h.add("a=get", "c=get"), "a: val=1 map={k:v} list=[i]", "c: val=- map={} list=[]")
	h.expect(h.advance(50, false), "b: timer e 50 val=- map={} list=[]")
	h.expect(h.advance(9000, true), "b: timer p 9000 val=- map={} list=[]")
	h.w = w2
	h.expect(h.add("c=get"), "c: val=3 map={} list=[]")
	// A snapshot of the earlier magic ("WSPS") still restores.
	early := append([]byte("WSPS"), snap[4:]...)
	w0 := h.newWorker()
	if err := w0.(engine.Snapshotter).Restore(early, func(k []byte) bool { return string(k) == "c" }); err != nil {
		t.Fatalf("a snapshot of the earlier magic: %v", err)
	}
	h.w = w0
	h.expect(h.add("c=get"), "c: val=3 map={} list=[]")
	h.w = w2
	// The TTL's expiry is kept as a time, not restarted.
	h.w = w1
	h.now = h.now.Add(4 * time.Second)
	h.expect(h.add("a=get"), "a: val=1 map={} list=[i]")

	other := *h.s
	eng, _ := plugin.NewEngine(t.TempDir())
	defer eng.Close(context.Background())
	m2, err := eng.LoadFile(context.Background(), filepath.Join("..", "..", "..", "plugins", "testdata", "wasm", "go_stateops.wasm"), plugin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other.Module = m2
	if m2.StateVersion() != 7 {
		t.Fatalf("state version %d, want 7", m2.StateVersion())
	}
	bad := append([]byte(nil), snap...)
	bad[5] = 3 // layout version 3 (magic 4 bytes, format 1 byte, then the version)
	w3, _ := other.NewWorker(context.Background())
	defer w3.Close(context.Background())
	err = w3.(engine.Snapshotter).Restore(bad, func([]byte) bool { return true })
	if err == nil || !strings.Contains(err.Error(), "layout version 3 and the module declares version 7") || !strings.Contains(err.Error(), "--reset-state st") {
		t.Fatalf("err = %v", err)
	}
	// (--reset-state is the engine's: the step's parts are not restored at
	// all; TestCheckpointStepsByName covers it.)
}

// TestStateStepTimerEdges: a call holds at most one timer per key, so a
// timer deleted by the key's earlier timer does not fire, whatever the
// watermark steps; a failed timer call with more timers due reports the
// advance unfinished (and finished when none are); a huge TTL means never;
// a timer moved once per record leaves a heap of about its live timers.
func TestStateStepTimerEdges(t *testing.T) {
	h := newStateHarness(t)
	h.expect(h.add("a=set:untimer20", "a=timer:10", "a=timer:20", "b=timer:20"),
		"a: val=untimer20 map={} list=[]", "a: val=untimer20 map={} list=[]", "a: val=untimer20 map={} list=[]", "b: val=- map={} list=[]")
	h.expect(h.advance(100, false), "a: timer e 10 val=untimer20 map={} list=[]", "b: timer e 20 val=- map={} list=[]")

	// A failing call, then one more timer due: the advance goes on.
	cmds := []string{"x=set:boom", "x=timer:500"}
	for i := range maxTimerBatch {
		cmds = append(cmds, fmt.Sprintf("k%05d=timer:600", i))
	}
	h.add(cmds...)
	got := h.advance(1000, false)
	if len(h.errs) != maxTimerBatch || len(got) != 1 || !strings.HasPrefix(got[0], "k02047: timer e 600") {
		t.Fatalf("%d errors and fired %q; want %d errors and the last timer", len(h.errs), got, maxTimerBatch)
	}
	h.add("y=set:boom", "y=timer:2000")
	res := &plugin.Result{Ports: make([]record.Batch, 1)}
	if done, err := h.w.Advance(context.Background(), 2000, res); err != nil || !done {
		t.Fatalf("a failed call with nothing more due: done %v, %v", done, err)
	}

	h.expect(h.add("z=ttl:v:9223372036854775807"), "z: val=v map={} list=[]")
	h.now = h.now.Add(1000 * time.Hour)
	h.expect(h.add("z=get"), "z: val=v map={} list=[]")

	var moves []string
	for i := range 5000 {
		if i > 0 {
			moves = append(moves, fmt.Sprintf("m=untimer:%d", 1_000_000+i-1))
		}
		moves = append(moves, fmt.Sprintf("m=timer:%d", 1_000_000+i))
	}
	h.add(moves...)
	if q := &h.w.(*stateWorker).ev; len(q.h) > 2*len(q.ids)+2048 {
		t.Errorf("the heap holds %d entries for %d live timers", len(q.h), len(q.ids))
	}
	h.expect(h.advance(2_000_000, false), "m: timer e 1004999 val=- map={} list=[]")
}
