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
		return snapshotter(t, &WindowStep{StepName: "w", Size: size, Aggs: []Agg{a}})
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

// TestTimeSeriesSnapshotField: a timeseries step's state is refused by a
// step that reads another field; a format 1 snapshot (no field recorded)
// is not checked.
func TestTimeSeriesSnapshotField(t *testing.T) {
	mk := func(field string) engine.Snapshotter {
		t.Helper()
		cum, err := ParseTSOutput("total", "cumsum()")
		if err != nil {
			t.Fatal(err)
		}
		return snapshotter(t, &TimeSeriesStep{StepName: "ts", Field: field, Outputs: []TSOutput{cum}})
	}
	snap, err := mk("a").Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mk("a").Restore(snap, nil); err != nil {
		t.Fatalf("the same step: %v", err)
	}
	if err := mk("b").Restore(snap, nil); err == nil || !strings.Contains(err.Error(), `built from field "a" and the step reads "b"`) ||
		!strings.Contains(err.Error(), "--reset-state ts") {
		t.Fatalf("another field: %v", err)
	}
	// Format 1: version 1, and no field after the settings (here: the
	// field's length byte and "a" removed).
	i := strings.Index(string(snap), "\x01a")
	if snap[4] != 2 || i < 0 {
		t.Fatalf("unexpected snapshot %q", snap)
	}
	v1 := append(append([]byte(tsMagic+"\x01"), snap[5:i]...), snap[i+2:]...)
	if err := mk("b").Restore(v1, nil); err != nil {
		t.Fatalf("format 1: %v", err)
	}
}

// snapshotter validates keyed step s and returns a new worker of it.
func snapshotter(t *testing.T, s interface {
	engine.KeyedStep
	Validate() error
}) engine.Snapshotter {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewWorker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return w.(engine.Snapshotter)
}
