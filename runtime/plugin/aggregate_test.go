package plugin

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
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

// TestAggregateContract drives the Go SDK's aggregate with variable-size
// accumulators through the host: add (new and existing accumulators, many
// groups in one call), merge, finish.
func TestAggregateContract(t *testing.T) {
	e := testEngine(t)
	m := load(t, e, "go_sumaggvar", Options{Function: Aggregate})
	if m.AccSize() != 0 || m.Results() != nil {
		t.Fatalf("AccSize %d, Results %v", m.AccSize(), m.Results())
	}
	in, err := m.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	ctx := context.Background()
	if err := in.AddFixed(ctx, make([]byte, 16), jsonRecs(`{"v":1}`), []int{1}); err == nil || !strings.Contains(err.Error(), "variable-size") {
		t.Fatalf("AddFixed on a variable-size module: %v", err)
	}
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

// fixedAccs makes n zeroed 16-byte accumulators.
func fixedAccs(n int) []byte { return make([]byte, 16*n) }

// TestAggregateFixed drives the Go SDK's fixed-size aggregate (sumagg,
// Size 16) through AddFixed, MergeFixed and FinishFixed, and through
// CallAggregate, which translates to them.
func TestAggregateFixed(t *testing.T) {
	e := testEngine(t)
	m := load(t, e, "go_sumagg", Options{Function: Aggregate})
	if m.AccSize() != 16 {
		t.Fatalf("AccSize %d", m.AccSize())
	}
	// Typed results: the host formats them (the texts below).
	if r := m.Results(); len(r) != 2 || r[0] != (hostabi.ResultField{Name: "wasm_count", Type: hostabi.ResultInt}) ||
		r[1] != (hostabi.ResultField{Name: "wasm_sum", Type: hostabi.ResultFloat}) {
		t.Fatalf("Results %v", r)
	}
	ctx := context.Background()
	in, err := m.Instance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	// New accumulators; the middle group gets nothing.
	accs := fixedAccs(3)
	recs := jsonRecs(`{"v":1}`, `{"v":2.5}`, `{"x":1}`, `{"v":4}`)
	if err := in.AddFixed(ctx, accs, recs, []int{3, 3, 4}); err != nil {
		t.Fatal(err)
	}
	for g, want := range []struct {
		n uint64
		s float64
	}{{3, 3.5}, {0, 0}, {1, 4}} {
		if n, s := accOf(t, accs[16*g:16*g+16]); n != want.n || s != want.s {
			t.Fatalf("group %d: %d %v", g, n, s)
		}
	}
	// Add to existing accumulators (a non-JSON value counts, adds nothing).
	if err := in.AddFixed(ctx, accs, append(jsonRecs(`{"v":10}`), record.Record{Value: []byte("text")}), []int{1, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if n, s := accOf(t, accs[:16]); n != 4 || s != 13.5 {
		t.Fatalf("group 0 after a second add: %d %v", n, s)
	}
	if n, s := accOf(t, accs[32:]); n != 2 || s != 4 {
		t.Fatalf("group 2 after a second add: %d %v", n, s)
	}
	// Merge: one other per group, then several for one group.
	others := append(append(append([]byte(nil), accs[32:]...), accs[32:]...), accs[:16]...)
	if err := in.MergeFixed(ctx, accs, others, nil); err != nil {
		t.Fatal(err)
	}
	if n, s := accOf(t, accs[:16]); n != 6 || s != 17.5 {
		t.Fatalf("merged group 0: %d %v", n, s)
	}
	if n, s := accOf(t, accs[16:32]); n != 2 || s != 4 {
		t.Fatalf("merged group 1: %d %v", n, s)
	}
	two := fixedAccs(2)
	if err := in.MergeFixed(ctx, two, append(append([]byte(nil), accs...), accs[:16]...), []int{0, 4}); err != nil {
		t.Fatal(err)
	}
	if n, s := accOf(t, two[16:]); n != 20 || s != 56.5 {
		t.Fatalf("merge of four: %d %v", n, s)
	}
	res, err := in.FinishFixed(ctx, accs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || string(res[0]) != `{"wasm_count":6,"wasm_sum":17.5}` || string(res[1]) != `{"wasm_count":2,"wasm_sum":4}` {
		t.Fatalf("finish: %q", res)
	}
	// Many groups: the finish results take several output chunks.
	const many = 40000
	big := fixedAccs(many)
	var bigRecs []record.Record
	ends := make([]int, many)
	for g := range ends {
		bigRecs = append(bigRecs, jsonRecs(`{"v":1}`, `{"v":`+strconv.Itoa(g)+`}`)...)
		ends[g] = len(bigRecs)
	}
	if err := in.AddFixed(ctx, big, bigRecs, ends); err != nil {
		t.Fatal(err)
	}
	if n, s := accOf(t, big[16*(many-1):]); n != 2 || s != many {
		t.Fatalf("last group: %d %v", n, s)
	}
	fin, err := in.FinishFixed(ctx, big)
	if err != nil || len(fin) != many {
		t.Fatalf("%d results, %v", len(fin), err)
	}
	if want := `{"wasm_count":2,"wasm_sum":40000}`; string(fin[many-1]) != want {
		t.Fatalf("last result %s", fin[many-1])
	}
	// Arguments that do not fit are refused without a call.
	for _, err := range []error{
		in.AddFixed(ctx, make([]byte, 17), nil, []int{1}),
		in.AddFixed(ctx, fixedAccs(2), jsonRecs(`{}`), []int{1}),
		in.AddFixed(ctx, fixedAccs(2), jsonRecs(`{}`), []int{1, 0}),
		in.MergeFixed(ctx, fixedAccs(2), fixedAccs(1), nil),
	} {
		if err == nil {
			t.Fatal("bad arguments accepted")
		}
	}
	// CallAggregate on a fixed-size module: empty is zero bytes, and add
	// answers a full accumulator for every group.
	vaccs, err := in.CallAggregate(ctx, hostabi.AggAdd, []AggGroup{
		{Records: jsonRecs(`{"v":1}`, `{"v":2.5}`)},
		{},
		{Acc: accs[:16], Records: jsonRecs(`{"v":1}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, s := accOf(t, vaccs[0]); n != 2 || s != 3.5 {
		t.Fatalf("variable add, group 0: %d %v", n, s)
	}
	if n, _ := accOf(t, vaccs[1]); n != 0 {
		t.Fatalf("variable add, group 1: %d", n)
	}
	if n, s := accOf(t, vaccs[2]); n != 7 || s != 18.5 {
		t.Fatalf("variable add, group 2: %d %v", n, s)
	}
	merged, err := in.CallAggregate(ctx, hostabi.AggMerge, []AggGroup{{Acc: vaccs[0], Others: [][]byte{vaccs[2], nil}}, {}})
	if err != nil {
		t.Fatal(err)
	}
	vres, err := in.CallAggregate(ctx, hostabi.AggFinish, []AggGroup{{Acc: merged[0]}, {}})
	if err != nil {
		t.Fatal(err)
	}
	if string(vres[0]) != `{"wasm_count":9,"wasm_sum":22}` || string(vres[1]) != `{"wasm_count":0,"wasm_sum":0}` {
		t.Fatalf("variable finish: %q", vres)
	}
	if _, err := in.CallAggregate(ctx, hostabi.AggFinish, []AggGroup{{Acc: []byte{1}}}); err == nil || !strings.Contains(err.Error(), "1 bytes") {
		t.Fatalf("a 1-byte accumulator: %v", err)
	}
}

// TestAggregateFixedRaw checks the host's side of the fixed formats with a
// guest written without the SDK: accumulators written back in several
// chunks, too few or too many bytes, a trap, agg_size rules.
func TestAggregateFixedRaw(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	inst := func(mode string) *Instance {
		m := load(t, e, "go_aggraw", Options{Function: Aggregate, Config: []byte(`"` + mode + `"`)})
		if m.AccSize() != 8 {
			t.Fatalf("%s: AccSize %d", mode, m.AccSize())
		}
		in, err := m.Instance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close(ctx) })
		return in
	}
	in := inst("ok")
	accs := make([]byte, 8*3)
	binary.LittleEndian.PutUint64(accs[8:], 5)
	if err := in.AddFixed(ctx, accs, jsonRecs(`{}`, `{}`, `{}`), []int{2, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if a, b, c := binary.LittleEndian.Uint64(accs), binary.LittleEndian.Uint64(accs[8:]), binary.LittleEndian.Uint64(accs[16:]); a != 2 || b != 5 || c != 1 {
		t.Fatalf("add: %d %d %d", a, b, c)
	}
	if err := in.MergeFixed(ctx, accs, append(append([]byte(nil), accs...), accs[8:16]...), []int{1, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if a, b, c := binary.LittleEndian.Uint64(accs), binary.LittleEndian.Uint64(accs[8:]), binary.LittleEndian.Uint64(accs[16:]); a != 4 || b != 11 || c != 6 {
		t.Fatalf("merge: %d %d %d", a, b, c)
	}
	res, err := in.FinishFixed(ctx, accs)
	if err != nil || len(res) != 3 || string(res[1]) != `{"n":11}` {
		t.Fatalf("finish: %q %v", res, err)
	}
	inst("twice")

	for _, c := range []struct{ mode, msg string }{
		{"short", "wrote 23 bytes of accumulators; want 24"},
		{"long", "more than the 24 bytes of accumulators"},
	} {
		in := inst(c.mode)
		accs := make([]byte, 8*3)
		before := append([]byte(nil), accs...)
		err := in.AddFixed(ctx, accs, jsonRecs(`{}`), []int{1, 1, 1})
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != Malformed || pe.Export != hostabi.ExportAggAdd || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%s: %v", c.mode, err)
		}
		if !bytes.Equal(accs, before) {
			t.Fatalf("%s: a failed call changed the accumulators", c.mode)
		}
	}
	in = inst("trap")
	err = in.AddFixed(ctx, make([]byte, 8), jsonRecs(`{}`), []int{1})
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != Trap || pe.Export != hostabi.ExportAggAdd || pe.Module != "go_aggraw.wasm" {
		t.Fatalf("trap: %v", err)
	}
	// The instance is replaced: the next call works.
	if res, err := in.FinishFixed(ctx, make([]byte, 8)); err != nil || string(res[0]) != `{"n":0}` {
		t.Fatalf("after the trap: %q %v", res, err)
	}
}

// BenchmarkAggregate measures the aggregate contract with the Go SDK guests
// sumagg (fixed-size, AddFixed and FinishFixed, typed results: the host
// formats the JSON) and sumaggvar (variable size, CallAggregate, a Finish
// that appends JSON text with strconv in Wasm), in the shape of the window
// benchmark: 1024 groups of one record each (a new accumulator per group),
// then finish over the 1024. Read ns/group.
func BenchmarkAggregate(b *testing.B) {
	e, err := NewEngine(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx := context.Background()
	instance := func(name string) *Instance {
		m, err := e.LoadFile(ctx, guest(name), Options{Function: Aggregate})
		if err != nil {
			b.Fatal(err)
		}
		in, err := m.Instance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return in
	}
	const n = 1024
	recs := jsonRecs(make([]string, n)...)
	for i := range recs {
		recs[i].Value = []byte(`{"v":123}`)
	}

	vin := instance("go_sumaggvar")
	defer vin.Close(ctx)
	groups := make([]AggGroup, n)
	for i := range groups {
		groups[i].Records = recs[i : i+1]
	}
	vaccs, err := vin.CallAggregate(ctx, hostabi.AggAdd, groups)
	if err != nil {
		b.Fatal(err)
	}
	fin := make([]AggGroup, n)
	for i := range fin {
		fin[i].Acc = vaccs[i]
	}
	perGroup := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/group")
	}
	for _, c := range []struct {
		name   string
		op     hostabi.AggOp
		groups []AggGroup
	}{{"var-add", hostabi.AggAdd, groups}, {"var-finish", hostabi.AggFinish, fin}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := vin.CallAggregate(ctx, c.op, c.groups); err != nil {
					b.Fatal(err)
				}
			}
			perGroup(b)
		})
	}

	fin2 := instance("go_sumagg")
	defer fin2.Close(ctx)
	ends := make([]int, n)
	for i := range ends {
		ends[i] = i + 1
	}
	accs := make([]byte, n*fin2.m.AccSize())
	b.Run("fixed-add", func(b *testing.B) {
		for b.Loop() {
			clear(accs) // new accumulators, as in a window's first record
			if err := fin2.AddFixed(ctx, accs, recs, ends); err != nil {
				b.Fatal(err)
			}
		}
		perGroup(b)
	})
	others := append([]byte(nil), accs...)
	b.Run("fixed-merge", func(b *testing.B) {
		for b.Loop() {
			if err := fin2.MergeFixed(ctx, accs, others, nil); err != nil {
				b.Fatal(err)
			}
		}
		perGroup(b)
	})
	copy(accs, others)
	b.Run("fixed-finish-typed", func(b *testing.B) {
		for b.Loop() {
			if _, err := fin2.FinishFixed(ctx, accs); err != nil {
				b.Fatal(err)
			}
		}
		perGroup(b)
	})
}
