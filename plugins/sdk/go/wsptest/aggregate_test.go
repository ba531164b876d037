package wsptest_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
	"github.com/wsp-project/wsp/plugins/sdk/go/internal/stubhost"
	"github.com/wsp-project/wsp/plugins/sdk/go/wsptest"
)

// register replaces the plugin under test (a plugin registers once, in
// init(); these tests need one per mode).
func register(t *testing.T, fn func()) {
	stubhost.Guest.Reset()
	fn()
	t.Cleanup(stubhost.Guest.Reset)
}

func u64(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func f64(x float64) uint64 { return math.Float64bits(x) }

// jsonRecs returns records with the values {"v":x}, x from xs ("" for a
// record without v).
func jsonRecs(xs ...string) []wsptest.Record {
	r := make([]wsptest.Record, len(xs))
	for i, x := range xs {
		if x == "" {
			r[i] = wsptest.JSON(`{"w":1}`)
		} else {
			r[i] = wsptest.JSON(`{"v":` + x + `}`)
		}
	}
	return r
}

// TestAggVariable: variable-size accumulators (created from an empty acc,
// growing) and a JSON-text Finish.
func TestAggVariable(t *testing.T) {
	var indexes []int
	register(t, func() {
		wsp.Fields("v")
		wsp.Aggregate(wsp.AggregateFuncs{
			// acc: "L" then the values of v, each followed by ';'.
			Add: func(acc []byte, r *wsp.Record) []byte {
				indexes = append(indexes, r.Index())
				if len(acc) == 0 {
					acc = append(acc, 'L')
				}
				s, ok := r.Field(0).Str()
				if !ok {
					panic("v is " + r.Field(0).TypeName())
				}
				return append(append(acc, s...), ';')
			},
			Merge: func(acc, other []byte) []byte {
				if len(acc) == 0 {
					acc = append(acc, 'L')
				}
				if len(other) > 0 {
					acc = append(acc, other[1:]...)
				}
				return acc
			},
			Finish: func(dst, acc []byte) []byte {
				n := 0
				if len(acc) > 0 {
					n = strings.Count(string(acc), ";")
				}
				dst = append(dst, `{"n":`...)
				dst = strconv.AppendInt(dst, int64(n), 10)
				return append(dst, '}')
			},
		})
	})
	h := wsptest.New(t)
	h.Init()
	if h.AccSize() != 0 || h.Results() != nil {
		t.Fatalf("AccSize %d, Results %v", h.AccSize(), h.Results())
	}
	if _, f := h.ABI(); f != 1|4 {
		t.Fatalf("features %b", f)
	}
	a := h.AggAdd(nil, wsptest.JSON(`{"v":"x"}`), wsptest.JSON(`{"v":"y"}`))
	if string(a) != "Lx;y;" || !reflect.DeepEqual(indexes, []int{0, 1}) {
		t.Fatalf("acc %q, indexes %v", a, indexes)
	}
	a = h.AggAdd(a, wsptest.JSON(`{"v":"z"}`))
	b := h.AggAdd(nil, wsptest.JSON(`{"v":"w"}`))
	m := h.AggMerge(b, a, nil)
	if string(m) != "Lw;x;y;z;" {
		t.Fatalf("merged %q", m)
	}
	if got := h.AggFinish(m); got != `{"n":4}` {
		t.Fatalf("finish %s", got)
	}
	if got := h.AggFinish(nil); got != `{"n":0}` {
		t.Fatalf("finish of a new acc %s", got)
	}

	// Several groups in one call; a record's Index is its position in its
	// group, and a group with nothing to add keeps its acc.
	indexes = nil
	accs := h.AggAddGroups([]wsptest.AggGroup{
		{Records: []wsptest.Record{wsptest.JSON(`{"v":"a"}`)}},
		{Acc: []byte("Lq;")},
		{Acc: []byte("Lq;"), Records: []wsptest.Record{wsptest.JSON(`{"v":"b"}`), wsptest.JSON(`{"v":"c"}`)}},
	})
	if want := [][]byte{[]byte("La;"), []byte("Lq;"), []byte("Lq;b;c;")}; !reflect.DeepEqual(accs, want) ||
		!reflect.DeepEqual(indexes, []int{0, 0, 1}) {
		t.Fatalf("groups %q, indexes %v", accs, indexes)
	}
	merged := h.AggMergeGroups([]wsptest.AggGroup{{Acc: accs[0], Others: accs[1:]}, {}})
	if string(merged[0]) != "La;q;q;b;c;" || len(merged[1]) != 0 {
		t.Fatalf("merged %q", merged)
	}

	// A panic fails the call; the harness reports the plugin's message.
	if _, err := h.TryAggAdd(nil, wsptest.JSON(`{"v":1}`)); err == nil || !strings.Contains(err.Error(), "panic: v is number") {
		t.Fatalf("err %v", err)
	}

	// Many groups: the SDK writes the results in several chunks.
	const n = 100000
	many := make([][]byte, n)
	for i := range many {
		many[i] = []byte("L" + strings.Repeat("x;", i%7))
	}
	res := h.AggFinishGroups(many...)
	for i, r := range res {
		if r != `{"n":`+strconv.Itoa(i%7)+`}` {
			t.Fatalf("group %d: %s", i, r)
		}
	}
}

// TestAggFixed: fixed-size accumulators (Size), Size zero bytes for a new
// one, records indexed by their group, and a JSON-text Finish.
func TestAggFixed(t *testing.T) {
	var indexes []int
	register(t, func() {
		wsp.Fields("v")
		wsp.Aggregate(wsp.AggregateFuncs{
			Size: 16, // count u64 | sum f64
			Add: func(acc []byte, r *wsp.Record) []byte {
				indexes = append(indexes, r.Index())
				wsp.PutUint64At(acc, 0, wsp.Uint64At(acc, 0)+1)
				if x, ok := r.Field(0).Float(); ok {
					wsp.PutFloat64At(acc, 8, wsp.Float64At(acc, 8)+x)
				}
				return acc
			},
			Merge: func(acc, other []byte) []byte {
				wsp.PutUint64At(acc, 0, wsp.Uint64At(acc, 0)+wsp.Uint64At(other, 0))
				wsp.PutFloat64At(acc, 8, wsp.Float64At(acc, 8)+wsp.Float64At(other, 8))
				return acc
			},
			Finish: func(dst, acc []byte) []byte {
				dst = append(dst, `{"count":`...)
				dst = strconv.AppendUint(dst, wsp.Uint64At(acc, 0), 10)
				dst = append(dst, `,"sum":`...)
				dst = strconv.AppendFloat(dst, wsp.Float64At(acc, 8), 'g', -1, 64)
				return append(dst, '}')
			},
		})
	})
	h := wsptest.New(t)
	if a := h.AggAdd(nil); !bytes.Equal(a, make([]byte, 16)) {
		t.Fatalf("new acc with nothing added: % x", a)
	}
	if h.AccSize() != 16 {
		t.Fatalf("AccSize %d", h.AccSize())
	}
	a := h.AggAdd(nil, jsonRecs("1.5", "2", "")...)
	if !bytes.Equal(a, u64(3, f64(3.5))) {
		t.Fatalf("acc % x", a)
	}
	m := h.AggMerge(a, h.AggAdd(nil, jsonRecs("10")...), nil)
	if got := h.AggFinish(m); got != `{"count":4,"sum":13.5}` {
		t.Fatalf("finish %s", got)
	}

	indexes = nil
	accs := h.AggAddGroups([]wsptest.AggGroup{
		{Records: jsonRecs("1")},
		{Acc: u64(5, f64(1))},
		{Records: jsonRecs("2", "3")},
	})
	if want := [][]byte{u64(1, f64(1)), u64(5, f64(1)), u64(2, f64(5))}; !reflect.DeepEqual(accs, want) ||
		!reflect.DeepEqual(indexes, []int{0, 2, 2}) {
		t.Fatalf("groups % x, indexes %v", accs, indexes)
	}
	merged := h.AggMergeGroups([]wsptest.AggGroup{
		{Acc: accs[0], Others: [][]byte{accs[1], accs[2]}},
		{Others: [][]byte{nil}},
		{Acc: accs[2]},
	})
	if want := [][]byte{u64(8, f64(7)), make([]byte, 16), accs[2]}; !reflect.DeepEqual(merged, want) {
		t.Fatalf("merged % x", merged)
	}

	// An accumulator of another size is refused, as by the host.
	if _, err := h.TryAggAdd([]byte{1, 2, 3}, jsonRecs("1")...); err == nil || !strings.Contains(err.Error(), "agg_size") {
		t.Fatalf("err %v", err)
	}
	if _, err := h.TryAggMerge(nil, make([]byte, 17)); err == nil || !strings.Contains(err.Error(), "other accumulator of 17 bytes") {
		t.Fatalf("err %v", err)
	}

	const n = 100000
	many := make([]wsptest.AggGroup, n)
	for i := range many {
		many[i].Records = jsonRecs(strconv.Itoa(i))
	}
	accs = h.AggAddGroups(many)
	res := h.AggFinishGroups(accs...)
	for i := range many {
		if res[i] != `{"count":1,"sum":`+strconv.FormatFloat(float64(i), 'g', -1, 64)+`}` {
			t.Fatalf("group %d: %s", i, res[i])
		}
	}
}

// TestAggTypedResults: typed results, formatted as the host formats them,
// with both accumulator modes.
func TestAggTypedResults(t *testing.T) {
	for _, size := range []int{24, 0} {
		t.Run("size="+strconv.Itoa(size), func(t *testing.T) {
			results := []wsp.ResultField{{Name: "n", Type: wsp.ResultInt}, {Name: `x"\`, Type: wsp.ResultFloat}, {Name: "b", Type: wsp.ResultBool}}
			register(t, func() {
				// acc: n i64 | x f64 | b u64, copied to dst as it is (a
				// variable acc starts empty and is made 24 bytes).
				grow := func(acc []byte) []byte {
					if len(acc) == 0 {
						acc = append(acc, make([]byte, 24)...)
					}
					return acc
				}
				wsp.Fields("n", "x", "b")
				wsp.Aggregate(wsp.AggregateFuncs{
					Size:    size,
					Results: results,
					Add: func(acc []byte, r *wsp.Record) []byte {
						acc = grow(acc)
						i, _ := r.Field(0).Int()
						x, _ := r.Field(1).Float()
						b, _ := r.Field(2).Int()
						wsp.PutInt64At(acc, 0, wsp.Int64At(acc, 0)+i)
						wsp.PutFloat64At(acc, 8, wsp.Float64At(acc, 8)+x)
						wsp.PutInt64At(acc, 16, b)
						return acc
					},
					Merge: func(acc, other []byte) []byte { return grow(acc) },
					Finish: func(dst, acc []byte) []byte {
						copy(dst, acc)
						return dst
					},
				})
			})
			h := wsptest.New(t)
			h.Init()
			if h.AccSize() != size || !reflect.DeepEqual(h.Results(), results) {
				t.Fatalf("AccSize %d, Results %v", h.AccSize(), h.Results())
			}
			a := h.AggAdd(nil, wsptest.JSON(`{"n":2,"x":0.25,"b":1}`), wsptest.JSON(`{"n":-5,"x":1}`))
			if got := h.AggFinish(a); got != `{"n":-3,"x\"\\":1.25,"b":false}` {
				t.Fatalf("finish %s", got)
			}
			// Floats as the host writes them (hostabi.AppendJSONFloat).
			floats := []struct {
				bits uint64
				text string
			}{
				{0x0, "0"}, {0x8000000000000000, "-0"}, {0x3ff0000000000000, "1"}, {0xbff0000000000000, "-1"},
				{0x3ff8000000000000, "1.5"}, {0x3fb999999999999a, "0.1"}, {0x3e7ad7f29abcaf48, "1e-7"},
				{0x3eb0c6f7a0b5ed8d, "0.000001"}, {0x40fe240c9fbe76c9, "123456.789"},
				{0x430c6bf526340000, "1000000000000000"}, {0x430c6bf526340004, "1000000000000000.5"},
				{0xc30c6bf526340000, "-1000000000000000"}, {0x430c6bf52633fff8, "999999999999999"},
				{0x4415af1d78b58c40, "100000000000000000000"}, {0x444b1ae4d6e2ef50, "1e+21"},
				{0x7e41eb2d66005835, "1.5e+300"}, {0xbdf12e0be826d695, "-2.5e-10"},
				{0x7ff8000000000001, "null"}, {0x7ff0000000000000, "null"}, {0xfff0000000000000, "null"},
				{0x7fefffffffffffff, "1.7976931348623157e+308"}, {0x1, "5e-324"},
				{0x43e0000000000000, "9223372036854776000"}, {0xc3e0000000000000, "-9223372036854776000"},
			}
			var accs [][]byte
			for i, f := range floats {
				accs = append(accs, u64(uint64(math.MinInt64+int64(i)), f.bits, uint64(i%2)))
			}
			for i, got := range h.AggFinishGroups(accs...) {
				b := "false"
				if i%2 == 1 {
					b = "true"
				}
				want := `{"n":` + strconv.FormatInt(math.MinInt64+int64(i), 10) + `,"x\"\\":` + floats[i].text + `,"b":` + b + `}`
				if got != want {
					t.Errorf("%#x: got %s, want %s", floats[i].bits, got, want)
				}
			}
			// A bool that is not 0 or 1 is malformed output.
			if _, err := h.TryAggFinishGroups(u64(0, 0, 1), u64(0, 0, 2)); err == nil ||
				err.Error() != "malformed output: group 1: result field 2 is a bool but holds 2 (0 false, 1 true)" {
				t.Fatalf("err %v", err)
			}
			// Many groups: several chunks of typed results.
			const n = 100000
			many := make([][]byte, n)
			for i := range many {
				many[i] = u64(uint64(i), f64(float64(i)/4), 1)
			}
			for i, got := range h.AggFinishGroups(many...) {
				want := `{"n":` + strconv.Itoa(i) + `,"x\"\\":` + strconv.FormatFloat(float64(i)/4, 'f', -1, 64) + `,"b":true}`
				if got != want {
					t.Fatalf("group %d: got %s, want %s", i, got, want)
				}
			}
		})
	}
}

// TestAggFailures: failures of the call and a Finish that breaks the
// rules are errors of the Try forms.
func TestAggFailures(t *testing.T) {
	register(t, func() { wsp.Process(func(r *wsp.Record, out *wsp.Output) {}) })
	h := wsptest.New(t)
	if _, err := h.TryAggAdd(nil); err == nil || err.Error() != "no Aggregate registered" {
		t.Fatalf("err %v", err)
	}

	register(t, func() {
		wsp.Aggregate(wsp.AggregateFuncs{
			Add:    func(acc []byte, r *wsp.Record) []byte { return acc },
			Merge:  func(acc, other []byte) []byte { return acc },
			Finish: func(dst, acc []byte) []byte { return append(dst, acc...) }, // the acc is the result
		})
	})
	h = wsptest.New(t)
	if got := h.AggFinish([]byte(` {"a":[1]} `)); got != ` {"a":[1]} ` {
		t.Fatalf("finish %q", got)
	}
	for _, bad := range []string{``, `[1]`, `{"a":`, `1`} {
		if _, err := h.TryAggFinish([]byte(bad)); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
			t.Fatalf("%q: err %v", bad, err)
		}
	}

	register(t, func() {
		wsp.Aggregate(wsp.AggregateFuncs{
			Size:   8,
			Add:    func(acc []byte, r *wsp.Record) []byte { return append([]byte(nil), acc...) },
			Merge:  func(acc, other []byte) []byte { return acc },
			Finish: func(dst, acc []byte) []byte { return append(dst, "{}"...) },
		})
	})
	h = wsptest.New(t)
	if _, err := h.TryAggAdd(nil, wsptest.JSON(`{}`)); err == nil || !strings.Contains(err.Error(), "must change acc in place") {
		t.Fatalf("err %v", err)
	}
}

// withGuest runs fn with one aggregate export replaced by a misbehaving
// guest.
func withGuest(t *testing.T, export *func(int32) int32, guest func(n int32) int32, fn func()) {
	saved := *export
	*export = guest
	defer func() { *export = saved }()
	fn()
}

func writeEntries(entries ...string) {
	var b []byte
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	stubhost.BatchWrite(b)
}

// TestAggMalformedOutput: the harness checks the output as the host does.
func TestAggMalformedOutput(t *testing.T) {
	register(t, func() {
		wsp.Aggregate(wsp.AggregateFuncs{
			Add:    func(acc []byte, r *wsp.Record) []byte { return acc },
			Merge:  func(acc, other []byte) []byte { return acc },
			Finish: func(dst, acc []byte) []byte { return append(dst, "{}"...) },
		})
	})
	h := wsptest.New(t)
	h.Init()
	cases := []struct {
		name  string
		guest func(n int32) int32
		want  string
	}{
		{"too few entries", func(n int32) int32 { writeEntries("{}"); return 0 },
			"malformed output: answered 1 of 2 groups: the module must write one entry per group"},
		{"too many entries", func(n int32) int32 { writeEntries("{}", "{}"); writeEntries("{}"); return 0 },
			"malformed output: batch_write: more entries than the 2 groups of the call"},
		{"truncated entry", func(n int32) int32 { stubhost.BatchWrite([]byte{9, 0, 0, 0, '{', '}'}); return 0 },
			"malformed output: batch_write: chunk 0 at byte 0: entry runs past the end of the chunk"},
		{"truncated length", func(n int32) int32 { stubhost.BatchWrite([]byte{2, 0, 0, 0, '{', '}', 0}); return 0 },
			"malformed output: batch_write: chunk 0 at byte 6: truncated entry length"},
		{"entries over chunks", func(n int32) int32 { writeEntries("{}"); writeEntries(`{"a":1}`); return 0 }, ""},
		{"failed", func(n int32) int32 { stubhost.Fail("no way"); return 1 }, "no way"},
	}
	for _, c := range cases {
		withGuest(t, &stubhost.Guest.AggFinish, c.guest, func() {
			_, err := h.TryAggFinishGroups(nil, nil)
			if (err == nil && c.want != "") || (err != nil && err.Error() != c.want) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.want)
			}
		})
	}

	register(t, func() {
		wsp.Aggregate(wsp.AggregateFuncs{
			Size:    4,
			Results: []wsp.ResultField{{Name: "a", Type: wsp.ResultInt}},
			Add:     func(acc []byte, r *wsp.Record) []byte { return acc },
			Merge:   func(acc, other []byte) []byte { return acc },
			Finish:  func(dst, acc []byte) []byte { return dst },
		})
	})
	h = wsptest.New(t)
	h.Init()
	for _, c := range []struct {
		name   string
		export *func(int32) int32
		guest  func(n int32) int32
		want   string
	}{
		{"short accs", &stubhost.Guest.AggAdd, func(n int32) int32 { stubhost.BatchWrite(make([]byte, 7)); return 0 },
			"malformed output: wrote 7 bytes of accumulators (2 groups of 4 bytes, agg_size); want 8"},
		{"long accs", &stubhost.Guest.AggMerge, func(n int32) int32 {
			stubhost.BatchWrite(make([]byte, 4))
			stubhost.BatchWrite(make([]byte, 5))
			return 0
		}, "malformed output: batch_write: more than the 8 bytes of accumulators (2 groups of 4 bytes, agg_size) of the call"},
		{"short results", &stubhost.Guest.AggFinish, func(n int32) int32 { stubhost.BatchWrite(make([]byte, 8)); return 0 },
			"malformed output: wrote 8 bytes of results (2 groups of 1 fields of 8 bytes, agg_result); want 16"},
	} {
		withGuest(t, c.export, c.guest, func() {
			var err error
			switch c.export {
			case &stubhost.Guest.AggAdd:
				_, err = h.TryAggAddGroups([]wsptest.AggGroup{{}, {}})
			case &stubhost.Guest.AggMerge:
				_, err = h.TryAggMergeGroups([]wsptest.AggGroup{{}, {}})
			default:
				_, err = h.TryAggFinishGroups(nil, nil)
			}
			if err == nil || err.Error() != c.want {
				t.Errorf("%s: err %v, want %q", c.name, err, c.want)
			}
		})
	}
}

// TestAggBatchFormats: the batches the harness stages are the ABI's
// (hostabi/ABI.md "Aggregates", "Fixed-size accumulators").
func TestAggBatchFormats(t *testing.T) {
	var staged []byte
	read := func(n int32) int32 {
		size := stubhost.BatchRead(nil)
		staged = make([]byte, size)
		stubhost.BatchRead(staged)
		return 1
	}
	rec := func(index uint32, v string, fields []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, index)
		b = append(b, 0, 0, 0, 0)                  // port, kind, flags
		b = append(b, make([]byte, 8)...)          // time
		b = binary.LittleEndian.AppendUint32(b, 0) // key_len
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = binary.LittleEndian.AppendUint32(b, 0) // meta_len
		b = binary.LittleEndian.AppendUint32(b, uint32(len(fields)))
		return append(append(b, v...), fields...)
	}
	le32 := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	intField := func(i uint64) []byte { return append([]byte{4}, u64(i)...) }

	for _, size := range []int{0, 2} {
		register(t, func() {
			wsp.Fields("v")
			wsp.Aggregate(wsp.AggregateFuncs{
				Size:   size,
				Add:    func(acc []byte, r *wsp.Record) []byte { return acc },
				Merge:  func(acc, other []byte) []byte { return acc },
				Finish: func(dst, acc []byte) []byte { return append(dst, "{}"...) },
			})
		})
		h := wsptest.New(t, wsptest.Quiet())
		h.Init()
		groups := []wsptest.AggGroup{
			{Acc: []byte("ab"), Records: []wsptest.Record{wsptest.JSON(`{"v":1}`), wsptest.JSON(`{"v":2}`)},
				Others: [][]byte{[]byte("cd"), nil}},
			{Records: []wsptest.Record{wsptest.JSON(`{"v":3}`)}},
		}
		var want [3][]byte
		if size == 0 {
			want = [3][]byte{
				cat(le32(2, 1), le32(2), []byte("ab"), le32(2), rec(0, `{"v":1}`, intField(1)), rec(1, `{"v":2}`, intField(2)),
					le32(0, 1), rec(0, `{"v":3}`, intField(3))),
				cat(le32(2, 2), le32(2), []byte("ab"), le32(2), le32(2), []byte("cd"), le32(0), le32(0, 0)),
				cat(le32(2, 3), le32(2), []byte("ab"), le32(0), le32(0, 0)),
			}
		} else {
			want = [3][]byte{
				cat(le32(2, 1), []byte("ab\x00\x00"), rec(0, `{"v":1}`, intField(1)), rec(0, `{"v":2}`, intField(2)),
					rec(1, `{"v":3}`, intField(3))),
				cat(le32(2, 2), []byte("ab\x00\x00"), le32(2, 0), []byte("cd\x00\x00")),
				cat(le32(2, 3), []byte("ab\x00\x00")),
			}
		}
		for i, export := range []*func(int32) int32{&stubhost.Guest.AggAdd, &stubhost.Guest.AggMerge, &stubhost.Guest.AggFinish} {
			withGuest(t, export, read, func() {
				switch i {
				case 0:
					h.TryAggAddGroups(groups)
				case 1:
					h.TryAggMergeGroups(groups)
				default:
					h.TryAggFinishGroups(groups[0].Acc, groups[1].Acc)
				}
			})
			if !bytes.Equal(staged, want[i]) {
				t.Errorf("size %d, op %d:\n got % x\nwant % x", size, i+1, staged, want[i])
			}
		}
	}
}
