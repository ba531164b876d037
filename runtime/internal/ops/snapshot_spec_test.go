package ops

import (
	"context"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/runtime/internal/engine"
)

// TestWindowSnapshotSpec: a window step's state is refused by a step that
// reads other fields or has other windows (its operator's own settings
// would not tell), naming both and the way out; a snapshot without the
// trailer (an earlier wsp's) is not checked.
func TestWindowSnapshotSpec(t *testing.T) {
	mk := func(expr string, size int64) engine.Snapshotter {
		t.Helper()
		a, err := ParseAgg("s", expr)
		if err != nil {
			t.Fatal(err)
		}
		s := &WindowStep{StepName: "w", Size: size, Aggs: []Agg{a}}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		w, err := s.NewWorker(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return w.(engine.Snapshotter)
	}
	snap, err := mk("sum(a)", 1000).Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mk("sum(a)", 1000).Restore(snap, nil); err != nil {
		t.Fatalf("the same step: %v", err)
	}
	for _, c := range []struct {
		expr string
		size int64
		want string
	}{
		{"sum(b)", 1000, "the stored state was built for fields a; size 1000"},
		{"sum(a)", 2000, "the step now has fields a; size 2000"},
	} {
		err := mk(c.expr, c.size).Restore(snap, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--reset-state w") {
			t.Errorf("%s over %d: %v", c.expr, c.size, err)
		}
	}
	// Without the trailer: not checked.
	n := len(snap)
	l := int(snap[n-9]) | int(snap[n-8])<<8
	if err := mk("sum(b)", 1000).Restore(snap[:n-9-l], nil); err != nil {
		t.Fatalf("no trailer: %v", err)
	}
}
