package window

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func TestWatermarkBoundedOutOfOrder(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	tr := &Tracker{OutOfOrder: 200, Now: clk.Now}
	if w := tr.Watermark(); w != NoWatermark {
		t.Fatalf("start: %d", w)
	}
	tr.Observe("a", 1000)
	if w := tr.Watermark(); w != 799 { // max - B - 1
		t.Fatalf("W = %d, want 799", w)
	}
	tr.Observe("a", 900) // older data never moves it back
	if w := tr.Watermark(); w != 799 {
		t.Fatalf("W went back to %d", w)
	}
	tr.Observe("a", -5000) // negative times are fine
	tr.Observe("a", 2000)
	if w := tr.Watermark(); w != 1799 {
		t.Fatalf("W = %d, want 1799", w)
	}
}

func TestWatermarkMinOverPartitionsAndIdle(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	tr := &Tracker{OutOfOrder: 0, IdleTimeout: 10 * time.Second, Now: clk.Now}
	tr.Observe("a", 100)
	tr.Observe("b", 50)
	if w := tr.Watermark(); w != 49 {
		t.Fatalf("min over partitions: %d, want 49", w)
	}
	clk.Advance(5 * time.Second)
	tr.Observe("a", 300)
	if w := tr.Watermark(); w != 49 {
		t.Fatalf("b still holds it back: %d", w)
	}
	clk.Advance(6 * time.Second) // b silent for 11 s: idle
	if w := tr.Watermark(); w != 299 {
		t.Fatalf("idle b no longer holds it back: %d, want 299", w)
	}
	// b comes back behind the operator: ignored until it catches up.
	tr.Observe("b", 120)
	if w := tr.Watermark(); w != 299 {
		t.Fatalf("returning b pulled the watermark back: %d", w)
	}
	tr.Observe("a", 400)
	if w := tr.Watermark(); w != 399 {
		t.Fatalf("W = %d, want 399 (b ignored)", w)
	}
	tr.Observe("b", 500) // b catches up and holds it again
	tr.Observe("a", 1000)
	if w := tr.Watermark(); w != 499 {
		t.Fatalf("b caught up: W = %d, want 499", w)
	}
}

func TestWatermarkEnd(t *testing.T) {
	tr := &Tracker{OutOfOrder: 10, Now: (&fakeClock{t: time.Unix(0, 0)}).Now}
	tr.Observe("a", 100)
	tr.Observe("b", 50)
	if w := tr.Watermark(); w != 39 {
		t.Fatalf("b holds it: %d, want 39", w)
	}
	tr.End("b")
	if w := tr.Watermark(); w != 89 {
		t.Fatalf("b ended: %d, want 89 (a's)", w)
	}
	tr.End("a")
	tr.Observe("a", 50) // a batch replayed after the end: behind, it holds nothing back
	if w := tr.Watermark(); w != 89 {
		t.Fatalf("all ended: %d, want 89 kept (the next file may come; the input's end is signalled apart)", w)
	}
	// The next file of the input joins as a late partition: once it has
	// caught up, it moves the watermark alone.
	tr.Observe("c", 60)
	if w := tr.Watermark(); w != 89 {
		t.Fatalf("c behind: %d", w)
	}
	tr.Observe("c", 200)
	if w := tr.Watermark(); w != 189 {
		t.Fatalf("c caught up: %d, want 189", w)
	}
}

// TestWatermarkExpect: expected partitions hold the watermark from the
// start, until their own records (possibly under a sub-partition) come, or
// they end.
func TestWatermarkExpect(t *testing.T) {
	tr := &Tracker{OutOfOrder: 0, Now: (&fakeClock{t: time.Unix(0, 0)}).Now}
	for _, p := range []string{"inputs[0]", "inputs[1]", "inputs[2]"} {
		tr.Expect(p)
	}
	tr.Observe("inputs[0]", 1000)
	if w := tr.Watermark(); w != NoWatermark {
		t.Fatalf("two children not heard from: %d", w)
	}
	tr.Observe("inputs[1]/logs/a.jsonl", 500) // a file child: its file replaces inputs[1]
	tr.End("inputs[2]")                       // a child that ended without records
	if w := tr.Watermark(); w != 499 {
		t.Fatalf("W = %d, want 499 (the minimum over inputs[0] and inputs[1]'s file)", w)
	}
	tr.Observe("inputs[1]x", 10) // not under the prefix: a partition of its own, joining late
	if w := tr.Watermark(); w != 499 {
		t.Fatalf("W = %d", w)
	}
}

// TestTrackerSnapshot: a restored tracker goes on exactly as the original.
func TestTrackerSnapshot(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	a := &Tracker{OutOfOrder: 5, Now: clk.Now}
	a.Expect("x")
	a.Observe("p", 100)
	a.Observe("q", 50)
	a.End("q")
	_ = a.Watermark()
	b := &Tracker{OutOfOrder: 5, Now: clk.Now}
	if err := b.Restore(a.Snapshot(nil)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		part string
		t    int64
	}{{"x/1", 70}, {"p", 200}, {"x/1", 300}, {"r", 10}} {
		a.Observe(step.part, step.t)
		b.Observe(step.part, step.t)
		if wa, wb := a.Watermark(), b.Watermark(); wa != wb {
			t.Fatalf("after %v: %d, restored %d", step, wa, wb)
		}
	}
	if err := b.Restore([]byte{1, 2}); err == nil {
		t.Fatal("a cut-short state accepted")
	}
}
