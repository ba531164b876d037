package plugin

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/hostabi"
)

// typedAcc makes one aggtyped accumulator (= result): n int, q"\ float, ok bool.
func typedAcc(n int64, f float64, ok uint64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(n))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	return binary.LittleEndian.AppendUint64(b, ok)
}

// TestAggregateTypedResults: a module that declares typed results writes
// 8 bytes per field and group; the host formats each group as a JSON
// object, in the fixed and the variable formats, from results written in
// several chunks split inside values.
func TestAggregateTypedResults(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	cases := []struct {
		n    int64
		f    float64
		ok   uint64
		want string
	}{
		{0, 0, 0, `{"n":0,"q\"\\":0,"ok":false}`},
		{3, 1.5, 1, `{"n":3,"q\"\\":1.5,"ok":true}`},
		{-42, -0.25, 0, `{"n":-42,"q\"\\":-0.25,"ok":false}`},
		{math.MaxInt64, math.NaN(), 1, `{"n":9223372036854775807,"q\"\\":null,"ok":true}`},
		{math.MinInt64, math.Inf(1), 0, `{"n":-9223372036854775808,"q\"\\":null,"ok":false}`},
		{10, math.Inf(-1), 0, `{"n":10,"q\"\\":null,"ok":false}`},
		{1e15, 1e21, 0, `{"n":1000000000000000,"q\"\\":1e+21,"ok":false}`},
		{7, 1e-7, 0, `{"n":7,"q\"\\":1e-7,"ok":false}`},
		{8, 123456789.125, 0, `{"n":8,"q\"\\":123456789.125,"ok":false}`},
		{9, 0.1, 0, `{"n":9,"q\"\\":0.1,"ok":false}`},
		{11, math.Copysign(0, -1), 0, `{"n":11,"q\"\\":-0,"ok":false}`},
		{12, 4503599627370497, 0, `{"n":12,"q\"\\":4503599627370497,"ok":false}`},
		{13, -1e300, 0, `{"n":13,"q\"\\":-1e+300,"ok":false}`},
	}
	var accs []byte
	var groups []AggGroup
	for _, c := range cases {
		a := typedAcc(c.n, c.f, c.ok)
		accs = append(accs, a...)
		groups = append(groups, AggGroup{Acc: a})
	}
	for _, mode := range []string{"ok", "var", "twice"} {
		m := load(t, e, "go_aggtyped", Options{Function: Aggregate, Config: []byte(`"` + mode + `"`)})
		if r := m.Results(); len(r) != 3 || r[1] != (hostabi.ResultField{Name: `q"\`, Type: hostabi.ResultFloat}) {
			t.Fatalf("%s: Results %v", mode, r)
		}
		in, err := m.Instance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var res [][]byte
		if mode == "var" {
			res, err = in.CallAggregate(ctx, hostabi.AggFinish, groups)
		} else {
			res, err = in.FinishFixed(ctx, accs)
		}
		if err != nil || len(res) != len(cases) {
			t.Fatalf("%s: %d results, %v", mode, len(res), err)
		}
		for i, c := range cases {
			if string(res[i]) != c.want {
				t.Errorf("%s: group %d: %s, want %s", mode, i, res[i], c.want)
			}
		}
		// CallAggregate on the fixed module too (an empty accumulator is zeros).
		if mode == "ok" {
			res, err := in.CallAggregate(ctx, hostabi.AggFinish, []AggGroup{{}, groups[1]})
			if err != nil || string(res[0]) != cases[0].want || string(res[1]) != cases[1].want {
				t.Fatalf("CallAggregate: %q %v", res, err)
			}
		}
		// Many groups: results over several chunks and a large arena.
		many := make([]byte, 0, 5000*size24)
		for g := 0; g < 5000; g++ {
			many = append(many, typedAcc(int64(g), float64(g)/4, uint64(g%2))...)
		}
		if mode != "var" {
			res, err := in.FinishFixed(ctx, many)
			if err != nil || len(res) != 5000 || string(res[4999]) != `{"n":4999,"q\"\\":1249.75,"ok":true}` {
				t.Fatalf("%s: many: %d results, last %s, %v", mode, len(res), res[len(res)-1], err)
			}
		}
		// A bool other than 0 or 1 fails the call.
		bad := typedAcc(1, 1, 2)
		if mode == "var" {
			_, err = in.CallAggregate(ctx, hostabi.AggFinish, []AggGroup{{Acc: bad}})
		} else {
			_, err = in.FinishFixed(ctx, bad)
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != Malformed || pe.Export != hostabi.ExportAggFinish || !strings.Contains(err.Error(), "bool but holds 2") {
			t.Fatalf("%s: bool 2: %v", mode, err)
		}
		in.Close(ctx)
	}
}

const size24 = 24

// TestAggregateTypedResultBytes: a finish that writes fewer or more bytes
// than groups*8*F fails the call (Malformed); agg_result outside wsp_init
// returns -3.
func TestAggregateTypedResultBytes(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	for _, c := range []struct{ mode, msg string }{
		{"short", "wrote 71 bytes of results; want 72 (3 groups of 3 fields of 8 bytes, agg_result)"},
		{"long", "more than the 72 bytes of results of the call"},
	} {
		m := load(t, e, "go_aggtyped", Options{Function: Aggregate, Config: []byte(`"` + c.mode + `"`)})
		in, err := m.Instance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = in.FinishFixed(ctx, make([]byte, 72))
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != Malformed || pe.Export != hostabi.ExportAggFinish || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%s: %v", c.mode, err)
		}
		in.Close(ctx)
	}
	m := load(t, e, "go_aggtyped", Options{Function: Aggregate, Config: []byte(`"notnow"`)})
	in, err := m.Instance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	if res, err := in.FinishFixed(ctx, typedAcc(1, 2, 1)); err != nil || string(res[0]) != `{"n":1,"q\"\\":2,"ok":true}` {
		t.Fatalf("agg_result in finish: %q %v", res, err)
	}
}

// TestAggregateTypedResultDeclarations: refused declarations fail the
// load with the reason, also when wsp_init ignores the error.
func TestAggregateTypedResultDeclarations(t *testing.T) {
	e := testEngine(t)
	for _, c := range []struct{ mode, msg string }{
		{"badtype", `agg_result refused: field 3 ("x"): unknown type 9 (1 int, 2 float, 3 bool)`},
		{"dup", `agg_result refused: field 3 ("n"): the name is declared twice`},
		{"ignore", `agg_result refused: field 3 ("n"): the name is declared twice`},
		{"empty", `agg_result refused: field 3: empty name`},
		{"none", `agg_result refused: no fields declared`},
		{"ctrl", `agg_result refused: field 0 ("a\nb"): the name holds a control character`},
		{"trunc", `agg_result refused: field 3: truncated: name_len 5 runs past the end of the declaration`},
		{"toomany", `agg_result refused: field 64: more than 64 fields`},
		{"again", `agg_result refused: declared again with other fields than the first call`},
	} {
		_, err := e.LoadFile(context.Background(), guest("go_aggtyped"), Options{Function: Aggregate, Config: []byte(`"` + c.mode + `"`)})
		var pe *Error
		if !errors.As(err, &pe) || pe.Kind != Init || pe.Export != hostabi.ExportInit || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v", c.mode, err)
		}
	}
}
