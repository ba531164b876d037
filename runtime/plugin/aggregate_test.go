package plugin

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/record"
)

func jsonRecs(vals ...string) []record.Record {
	var out []record.Record
	for _, v := range vals {
		out = append(out, record.Record{Value: []byte(v), Key: []byte("k"), Flags: record.HasKey})
	}
	return out
}

// accOf decodes the sumagg test guest's 16-byte accumulator.
func accOf(t *testing.T, b []byte) (uint64, float64) {
	t.Helper()
	if len(b) != 16 {
		t.Fatalf("accumulator of %d bytes", len(b))
	}
	return binary.LittleEndian.Uint64(b), math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
}

// TestAggregateContract drives the Go SDK's aggregate through the host: add
// (new and existing accumulators, many groups in one call), merge, finish.
func TestAggregateContract(t *testing.T) {
	e := testEngine(t)
	m := load(t, e, "go_sumagg", Options{Function: Aggregate})
	in, err := m.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	ctx := context.Background()
	accs, err := in.CallAggregate(ctx, hostabi.AggAdd, []AggGroup{
		{Records: jsonRecs(`{"v":1}`, `{"v":2.5}`, `{"x":1}`)},
		{Records: jsonRecs(`{"v":4}`)},
		{}, // a group with nothing to add: a new, empty accumulator
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, s := accOf(t, accs[0]); n != 3 || s != 3.5 {
		t.Fatalf("group 0: %d %v", n, s)
	}
	if n, s := accOf(t, accs[1]); n != 1 || s != 4 {
		t.Fatalf("group 1: %d %v", n, s)
	}
	if len(accs[2]) != 0 {
		t.Fatalf("group 2: %v", accs[2])
	}
	// Add to an existing accumulator, then merge two into one.
	more, err := in.CallAggregate(ctx, hostabi.AggAdd, []AggGroup{{Acc: accs[0], Records: jsonRecs(`{"v":10}`)}})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := in.CallAggregate(ctx, hostabi.AggMerge, []AggGroup{{Acc: more[0], Others: [][]byte{accs[1], accs[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	if n, s := accOf(t, merged[0]); n != 6 || s != 21.5 {
		t.Fatalf("merged: %d %v", n, s)
	}
	res, err := in.CallAggregate(ctx, hostabi.AggFinish, []AggGroup{{Acc: merged[0]}, {Acc: accs[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if string(res[0]) != `{"wasm_count":6,"wasm_sum":21.5}` || string(res[1]) != `{"wasm_count":1,"wasm_sum":4}` {
		t.Fatalf("finish: %q", res)
	}
	// A big call: many groups and records, more than one output chunk's worth.
	var groups []AggGroup
	for g := 0; g < 3000; g++ {
		groups = append(groups, AggGroup{Records: jsonRecs(`{"v":1}`, `{"v":2}`)})
	}
	big, err := in.CallAggregate(ctx, hostabi.AggAdd, groups)
	if err != nil || len(big) != 3000 {
		t.Fatalf("%d entries, %v", len(big), err)
	}
	if n, s := accOf(t, big[2999]); n != 2 || s != 3 {
		t.Fatalf("last group: %d %v", n, s)
	}
}

// TestAggregateRefused: a module without the aggregate feature cannot be
// used as one, and an aggregate module cannot serve Call for processing.
func TestAggregateRefused(t *testing.T) {
	e := testEngine(t)
	_, err := e.LoadFile(context.Background(), guest("go_noop"), Options{Function: Aggregate})
	if err == nil || !strings.Contains(err.Error(), "aggregate feature") {
		t.Fatalf("go_noop as an aggregate: %v", err)
	}
	_, err = e.LoadFile(context.Background(), guest("noop_keep"), Options{Function: Aggregate})
	if err == nil || !strings.Contains(err.Error(), "missing export wsp_agg_add") {
		t.Fatalf("noop_keep as an aggregate: %v", err)
	}
	m := load(t, e, "go_noop", Options{})
	in, _ := m.Instance(context.Background())
	defer in.Close(context.Background())
	if _, err := in.CallAggregate(context.Background(), hostabi.AggAdd, nil); err == nil {
		t.Fatal("CallAggregate on a process module")
	}
}
