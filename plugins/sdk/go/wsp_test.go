package wsp_test

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
	"github.com/wsp-project/wsp/plugins/sdk/go/internal/stubhost"
	"github.com/wsp-project/wsp/plugins/sdk/go/wsptest"
)

// register replaces the plugin under test: it forgets every registration,
// then runs fn as a plugin's init() would. (Plugins register once, in
// init(); the SDK's own tests need a different plugin per test.)
func register(fn func()) {
	stubhost.Guest.Reset()
	fn()
}

func keep(r *wsp.Record, out *wsp.Output) { out.Keep(r) }

type fieldView struct {
	Kind     wsp.FieldKind
	Type     string
	Int      int64
	IntOK    bool
	Float    float64
	FloatOK  bool
	Str      string
	StrOK    bool
	Bool     bool
	BoolOK   bool
	Raw      string
	RawOK    bool
	Exists   bool
	KindName string
}

func view(f wsp.Field) fieldView {
	v := fieldView{Kind: f.Kind(), Type: f.TypeName(), Exists: f.Exists(), KindName: f.Kind().String()}
	v.Int, v.IntOK = f.Int()
	v.Float, v.FloatOK = f.Float()
	s, ok := f.Str()
	v.Str, v.StrOK = string(s), ok
	v.Bool, v.BoolOK = f.Bool()
	raw, ok := f.Raw()
	v.Raw, v.RawOK = string(raw), ok
	return v
}

func TestFieldKinds(t *testing.T) {
	paths := []string{"s", "i", "neg", "f", "exp", "big", "t", "fa", "n", "obj", "arr", "nested.x", "nested.deep.y",
		"missing", "esc", "dup", "nested", "s.notobj", "huge", "zero"}
	var got [][]fieldView
	register(func() {
		if first := wsp.Fields(paths[:3]...); first != 0 {
			t.Errorf("first Fields call returned %d", first)
		}
		if first := wsp.Fields(paths[3:]...); first != 3 {
			t.Errorf("second Fields call returned %d, want 3", first)
		}
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			var vs []fieldView
			// Read out of order, and beyond the declared fields.
			for _, i := range []int{5, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 64, -1} {
				vs = append(vs, view(r.Field(i)))
			}
			got = append(got, vs)
			out.Keep(r)
		})
	})
	h := wsptest.New(t)
	h.Init()
	if !reflect.DeepEqual(h.Fields(), paths) {
		t.Fatalf("declared %q", h.Fields())
	}
	res := h.Process(wsptest.JSON(`{"s":"hé\"\u00e9\ud83d\ude00","i":42,"neg":-7,"f":1.5,"exp":1e3,"big":18446744073709551616,
		"t":true,"fa":false,"n":null,"obj":{"a": [1, 2]},"arr":[ 1 ,"x"],"nested":{"x":-0,"deep":{"y":"z"}},
		"esc":"a\nb\\\/","dup":1,"dup":"second","huge":1e400,"zero":0.0}`))
	if len(res.Out) != 1 {
		t.Fatalf("out %v", res.Out)
	}
	missing := fieldView{Kind: wsp.Missing, Type: "missing", KindName: "missing"}
	num := func(k wsp.FieldKind, i int64, f float64) fieldView {
		v := fieldView{Kind: k, Type: "number", Float: f, FloatOK: true, Exists: true, KindName: k.String()}
		if k == wsp.Int {
			v.Int, v.IntOK = i, true
		}
		return v
	}
	str := func(s string) fieldView {
		return fieldView{Kind: wsp.String, Type: "string", Str: s, StrOK: true, Exists: true, KindName: "string"}
	}
	raw := func(s, typ string) fieldView {
		return fieldView{Kind: wsp.Raw, Type: typ, Raw: s, RawOK: true, Exists: true, KindName: "raw"}
	}
	boolean := func(b bool) fieldView {
		return fieldView{Kind: wsp.Bool, Type: "bool", Bool: b, BoolOK: true, Exists: true, KindName: "bool"}
	}
	want := []fieldView{
		num(wsp.Float, 0, 18446744073709551616), // big: does not fit int64
		str("hé\"é😀"),
		num(wsp.Int, 42, 42),
		num(wsp.Int, -7, -7),
		num(wsp.Float, 0, 1.5),
		num(wsp.Float, 0, 1000), // exp: an exponent makes a Float
		boolean(true),
		boolean(false),
		{Kind: wsp.Null, Type: "null", Exists: true, KindName: "null"},
		raw(`{"a": [1, 2]}`, "object"),
		raw(`[ 1 ,"x"]`, "array"),
		num(wsp.Int, 0, 0), // -0
		str("z"),
		missing,
		str("a\nb\\/"),
		str("second"), // the last occurrence wins
		raw(`{"x":-0,"deep":{"y":"z"}}`, "object"),
		missing, // a path through a string
		num(wsp.Float, 0, math.Inf(1)),
		num(wsp.Float, 0, 0),
		missing, // 20: not declared
		missing, // 64
		missing, // -1
	}
	if len(got) != 1 || len(got[0]) != len(want) {
		t.Fatalf("got %d records, %d fields", len(got), len(got[0]))
	}
	for i := range want {
		if got[0][i] != want[i] {
			t.Errorf("field read %d:\n got %+v\nwant %+v", i, got[0][i], want[i])
		}
	}
}

func TestNotJSON(t *testing.T) {
	var notJSON []bool
	var kinds []wsp.FieldKind
	register(func() {
		wsp.Fields("a")
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			notJSON = append(notJSON, r.NotJSON())
			kinds = append(kinds, r.Field(0).Kind())
		})
	})
	res := wsptest.New(t).Process(wsptest.JSON(`not json`), wsptest.JSON(`[1]`), wsptest.JSON(`{"a":1`),
		wsptest.JSON(` {"a":1} `), wsptest.JSON(`{"b":1}`))
	if want := []bool{true, true, true, false, false}; !reflect.DeepEqual(notJSON, want) {
		t.Errorf("NotJSON %v, want %v", notJSON, want)
	}
	if want := []wsp.FieldKind{wsp.Missing, wsp.Missing, wsp.Missing, wsp.Int, wsp.Missing}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	if !reflect.DeepEqual(res.Dropped, []int{0, 1, 2, 3, 4}) {
		t.Errorf("dropped %v", res.Dropped)
	}

	// Without declared fields the host does not look at values.
	notJSON = nil
	register(func() {
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			notJSON = append(notJSON, r.NotJSON())
			if r.Field(0).Exists() {
				t.Error("a field exists without declarations")
			}
		})
	})
	wsptest.New(t).Process(wsptest.JSON(`not json`))
	if !reflect.DeepEqual(notJSON, []bool{false}) {
		t.Errorf("NotJSON without fields: %v", notJSON)
	}
}

func TestRecordParts(t *testing.T) {
	type seen struct {
		Index   int
		Key     string
		HasKey  bool
		Value   string
		Time    int64
		HasTime bool
		A       string
		AOK     bool
		Zzz     bool
		Meta    []string
	}
	var got []seen
	register(func() {
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			var s seen
			s.Index = r.Index()
			k, ok := r.Key()
			s.Key, s.HasKey = string(k), ok
			s.Value = string(r.Value())
			s.Time, s.HasTime = r.Time()
			a, ok := r.Meta("a")
			s.A, s.AOK = string(a), ok
			_, s.Zzz = r.Meta("zzz")
			r.EachMeta(func(name, value []byte) bool {
				s.Meta = append(s.Meta, string(name)+"="+string(value))
				return string(name) != "stop"
			})
			got = append(got, s)
			out.Keep(r)
		})
	})
	in := []wsptest.Record{
		{Key: []byte("k1"), Value: []byte("v1"), Time: wsptest.Time(-5), Meta: []wsptest.Meta{{Name: "a", Value: "1"}, {Name: "", Value: ""}, {Name: "b", Value: "2"}}},
		{Key: []byte{}, Value: []byte{}},
		{Value: []byte("v3"), Time: wsptest.Time(math.MaxInt64), Meta: []wsptest.Meta{{Name: "stop", Value: "x"}, {Name: "a", Value: "late"}}},
	}
	res := wsptest.New(t).Process(in...)
	want := []seen{
		{0, "k1", true, "v1", -5, true, "1", true, false, []string{"a=1", "=", "b=2"}},
		{1, "", true, "", 0, false, "", false, false, nil},
		{2, "", false, "v3", math.MaxInt64, true, "late", true, false, []string{"stop=x"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// Keep: every part from the input, nothing copied.
	if len(res.Out) != 3 {
		t.Fatalf("out %v", res.Out)
	}
	for i, o := range res.Out {
		if o.Index != i || o.Same != wsp.SameAll || o.Port != "" || !reflect.DeepEqual(o.Record, in[i]) {
			t.Errorf("out %d: %+v", i, o)
		}
	}
	for _, c := range res.Chunks {
		if len(c) != 3*8 {
			t.Errorf("keep chunk is %d bytes, want 3 keep records", len(c))
		}
	}
}

func TestEmitToFailDropFlatMap(t *testing.T) {
	var alerts, audit wsp.PortID
	register(func() {
		alerts = wsp.Port("alerts")
		audit = wsp.Port("audit")
		if again := wsp.Port("alerts"); again != alerts {
			t.Errorf("Port(alerts) again = %d, want %d", again, alerts)
		}
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			switch string(r.Value()) {
			case "keep":
				out.Keep(r)
			case "emit":
				out.Emit(r, []byte("emitted"))
			case "emitstring":
				out.EmitString(r, "s")
			case "empty":
				out.Emit(r, nil)
			case "alert":
				out.To(alerts, r, nil)
			case "audit":
				out.To(audit, r, []byte("audited"))
			case "main":
				out.To(wsp.Main, r, []byte("main"))
			case "fail":
				out.Fail(r, "bad record")
			case "twice":
				out.Keep(r)
				out.Emit(r, []byte("copy"))
				out.To(alerts, r, nil)
			case "emit-then-fail":
				out.Keep(r)
				out.Fail(r, "late")
			case "drop":
			}
		})
	})
	in := []string{"keep", "emit", "drop", "alert", "audit", "fail", "twice", "main", "emitstring", "empty", "emit-then-fail", "drop"}
	var recs []wsptest.Record
	for i, v := range in {
		recs = append(recs, wsptest.Record{Key: []byte("k" + strconv.Itoa(i)), Value: []byte(v), Time: wsptest.Time(int64(i)),
			Meta: []wsptest.Meta{{Name: "m", Value: v}}})
	}
	h := wsptest.New(t)
	res := h.Process(recs...)
	if !reflect.DeepEqual(h.Ports(), []string{"alerts", "audit"}) {
		t.Errorf("ports %q", h.Ports())
	}
	type o struct {
		Index int
		Port  string
		Value string
		Same  wsp.Same
	}
	var got []o
	for _, x := range res.Out {
		got = append(got, o{x.Index, x.Port, string(x.Value), x.Same})
		r := recs[x.Index]
		if !reflect.DeepEqual(x.Key, r.Key) || !reflect.DeepEqual(x.Time, r.Time) || !reflect.DeepEqual(x.Meta, r.Meta) {
			t.Errorf("output %v lost key, time or meta of %+v", x, r)
		}
	}
	kt := wsp.SameKey | wsp.SameTime | wsp.SameMeta
	want := []o{
		{0, "", "keep", wsp.SameAll},
		{1, "", "emitted", kt},
		{3, "alerts", "alert", wsp.SameAll},
		{4, "audit", "audited", kt},
		{6, "", "twice", wsp.SameAll},
		{6, "", "copy", kt},
		{6, "alerts", "twice", wsp.SameAll},
		{7, "", "main", kt},
		{8, "", "s", kt},
		{9, "", "", kt},
		{10, "", "emit-then-fail", wsp.SameAll},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("out\n got %+v\nwant %+v", got, want)
	}
	if want := []wsptest.Failure{{Index: 5, Reason: "bad record"}, {Index: 10, Reason: "late"}}; !reflect.DeepEqual(res.Failed, want) {
		t.Errorf("failed %+v", res.Failed)
	}
	if !reflect.DeepEqual(res.Dropped, []int{2, 11}) {
		t.Errorf("dropped %v", res.Dropped)
	}
	if len(res.OnPort("alerts")) != 2 || len(res.OnPort("")) != 8 {
		t.Errorf("OnPort: %v", res.OnPort("alerts"))
	}
	if v, f := h.ABI(); v != 1 || f != 2 {
		t.Errorf("wsp_abi = %d, %b; want 1, ports", v, f)
	}
}

func TestEmitRecord(t *testing.T) {
	register(func() {
		p := wsp.Port("side")
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			switch r.Index() {
			case 0: // everything new
				out.EmitRecord(r, &wsp.OutRecord{Key: []byte("nk"), HasKey: true, Value: []byte("nv"), Time: -9, HasTime: true,
					Meta: []wsp.Meta{{Name: "x", Value: []byte("1")}, {Name: "", Value: nil}, {Name: "y", Value: []byte{0, 255}}}})
			case 1: // no key, no time, no meta
				out.EmitRecord(r, &wsp.OutRecord{Value: []byte("bare"), Port: p})
			case 2: // key from input, the rest new; ignored parts are not written
				out.EmitRecord(r, &wsp.OutRecord{Same: wsp.SameKey | wsp.SameMeta, Key: []byte("ignored"), HasKey: true,
					Meta: []wsp.Meta{{Name: "ignored"}}, Value: []byte("v2")})
			case 3: // an empty key is a key; time from input
				out.EmitRecord(r, &wsp.OutRecord{Key: []byte{}, HasKey: true, Same: wsp.SameTime | wsp.SameValue})
			}
		})
	})
	in := []wsptest.Record{
		{Key: []byte("k"), Value: []byte("v"), Time: wsptest.Time(1), Meta: []wsptest.Meta{{Name: "a", Value: "b"}}},
		{Key: []byte("k"), Value: []byte("v"), Time: wsptest.Time(1), Meta: []wsptest.Meta{{Name: "a", Value: "b"}}},
		{Key: []byte("k2"), Value: []byte("v"), Meta: []wsptest.Meta{{Name: "a", Value: "b"}}},
		{Value: []byte("v3"), Time: wsptest.Time(3)},
	}
	res := wsptest.New(t).Process(in...)
	want := []wsptest.Output{
		{Index: 0, Record: wsptest.Record{Key: []byte("nk"), Value: []byte("nv"), Time: wsptest.Time(-9),
			Meta: []wsptest.Meta{{Name: "x", Value: "1"}, {Name: "", Value: ""}, {Name: "y", Value: "\x00\xff"}}}},
		{Index: 1, Port: "side", Record: wsptest.Record{Value: []byte("bare")}},
		{Index: 2, Record: wsptest.Record{Key: []byte("k2"), Value: []byte("v2"), Meta: []wsptest.Meta{{Name: "a", Value: "b"}}},
			Same: wsp.SameKey | wsp.SameMeta},
		{Index: 3, Record: wsptest.Record{Key: []byte{}, Value: []byte("v3"), Time: wsptest.Time(3)},
			Same: wsp.SameTime | wsp.SameValue},
	}
	if !reflect.DeepEqual(res.Out, want) {
		t.Errorf("got  %v\nwant %v", res.Out, want)
	}
}

func TestPanics(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   func(r *wsp.Record, out *wsp.Output)
		want string
	}{
		{"string", func(*wsp.Record, *wsp.Output) { panic("boom") }, "panic: boom"},
		{"error", func(*wsp.Record, *wsp.Output) { panic(errors.New("bad")) }, "panic: bad"},
		{"runtime", func(r *wsp.Record, _ *wsp.Output) { _ = r.Value()[100] }, "panic: runtime error: index out of range [100] with length 1"},
		{"other", func(*wsp.Record, *wsp.Output) { panic(3.5) }, "panic: a value that is not a string or an error"},
		{"late registration", func(*wsp.Record, *wsp.Output) { wsp.Fields("x") },
			"panic: wsp: Fields called after wsp_init; call it from init() or OnInit"},
		{"bad port", func(r *wsp.Record, out *wsp.Output) { out.To(7, r, nil) },
			"panic: wsp: unknown port id 7 (use the value Port returned)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			register(func() { wsp.Process(c.fn) })
			h := wsptest.New(t, wsptest.Quiet())
			_, err := h.TryProcess(wsptest.JSON("x"))
			if err == nil || err.Error() != c.want {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			logs := h.Logs()
			if len(logs) != 1 || logs[0].Level != wsp.LevelError || !strings.Contains(logs[0].Msg, "goroutine") {
				t.Errorf("want one error log line with the stack, got %+v", logs)
			}
			// The instance keeps working after a panic.
			register(func() { wsp.Process(keep) })
			if res := h.Process(wsptest.JSON("y")); len(res.Out) != 1 {
				t.Errorf("after panic: %v", res.Out)
			}
		})
	}
}

func TestNotRegistered(t *testing.T) {
	register(func() {})
	h := wsptest.New(t)
	if _, err := h.TryProcess(wsptest.JSON("x")); err == nil || err.Error() != "no Process function registered" {
		t.Errorf("process: %v", err)
	}
	if _, err := h.TryKey(wsptest.JSON("x")); err == nil || err.Error() != "no Key function registered" {
		t.Errorf("key: %v", err)
	}
	if _, err := h.TryTimestamp(wsptest.JSON("x")); err == nil || err.Error() != "no Timestamp function registered" {
		t.Errorf("timestamp: %v", err)
	}
	if v, f := h.ABI(); v != 1 || f != 0 {
		t.Errorf("wsp_abi = %d, %b", v, f)
	}
}

func TestProcessBatch(t *testing.T) {
	register(func() {
		wsp.Fields("n")
		wsp.ProcessBatch(func(b *wsp.Batch, out *wsp.Output) {
			// Keep the records whose n is the largest of the batch; read
			// fields of several records at once.
			max := int64(math.MinInt64)
			for i := 0; i < b.Len(); i++ {
				if n, ok := b.Record(i).Field(0).Int(); ok && n > max {
					max = n
				}
			}
			for i := 0; i < b.Len(); i++ {
				r := b.Record(i)
				if n, _ := r.Field(0).Int(); n == max {
					out.Keep(r)
				} else if !r.Field(0).Exists() {
					out.Fail(r, "no n")
				}
			}
		})
	})
	h := wsptest.New(t)
	res := h.Process(wsptest.JSON(`{"n":3}`), wsptest.JSON(`{"n":9}`), wsptest.JSON(`{}`), wsptest.JSON(`{"n":9}`))
	if v := res.Values(); !reflect.DeepEqual(v, []string{`{"n":9}`, `{"n":9}`}) || res.Out[0].Index != 1 || res.Out[1].Index != 3 {
		t.Errorf("out %v", res.Out)
	}
	if !reflect.DeepEqual(res.Failed, []wsptest.Failure{{Index: 2, Reason: "no n"}}) || !reflect.DeepEqual(res.Dropped, []int{0}) {
		t.Errorf("failed %v dropped %v", res.Failed, res.Dropped)
	}
	// A bigger batch reallocates the record table.
	var many []wsptest.Record
	for i := 0; i < 1000; i++ {
		many = append(many, wsptest.JSON(`{"n":`+strconv.Itoa(i%500)+`}`))
	}
	if res := h.Process(many...); len(res.Out) != 2 || res.Out[0].Index != 499 || res.Out[1].Index != 999 {
		t.Errorf("big batch: %v", res.Out)
	}

	register(func() {
		wsp.ProcessBatch(func(b *wsp.Batch, out *wsp.Output) {
			out.Keep(b.Record(1))
			out.Keep(b.Record(0))
		})
	})
	_, err := wsptest.New(t, wsptest.Quiet()).TryProcess(wsptest.JSON("a"), wsptest.JSON("b"))
	if err == nil || !strings.Contains(err.Error(), "records must be emitted in ascending index order") {
		t.Errorf("out of order: %v", err)
	}
}

func TestKeyAndTimestamp(t *testing.T) {
	register(func() {
		wsp.Fields("id", "ts")
		buf := make([]byte, 0, 16)
		wsp.Key(func(r *wsp.Record) ([]byte, error) {
			id, ok := r.Field(0).Str()
			if !ok {
				return nil, errors.New("id: want string, got " + r.Field(0).TypeName())
			}
			buf = append(append(buf[:0], "id-"...), id...) // a reused buffer: the SDK copies
			return buf, nil
		})
		wsp.Timestamp(func(r *wsp.Record) (int64, error) {
			ts, ok := r.Field(1).Int()
			if !ok {
				return 0, errors.New("ts: want integer")
			}
			return ts, nil
		})
	})
	h := wsptest.New(t)
	in := []wsptest.Record{
		{Value: []byte(`{"id":"a","ts":5}`), Time: wsptest.Time(1), Meta: []wsptest.Meta{{Name: "m", Value: "1"}}},
		{Value: []byte(`{"id":7,"ts":"x"}`), Key: []byte("old")},
		{Value: []byte(`{"id":"","ts":-3}`), Key: []byte("old")},
	}
	res := h.Key(in...)
	want := []wsptest.Output{
		{Index: 0, Record: wsptest.Record{Key: []byte("id-a"), Value: in[0].Value, Time: in[0].Time, Meta: in[0].Meta},
			Same: wsp.SameValue | wsp.SameTime | wsp.SameMeta},
		{Index: 2, Record: wsptest.Record{Key: []byte("id-"), Value: in[2].Value},
			Same: wsp.SameValue | wsp.SameTime | wsp.SameMeta},
	}
	if !reflect.DeepEqual(res.Out, want) || !reflect.DeepEqual(res.Failed, []wsptest.Failure{{Index: 1, Reason: "id: want string, got number"}}) {
		t.Errorf("key: out %v failed %v", res.Out, res.Failed)
	}
	res = h.Timestamp(in...)
	want = []wsptest.Output{
		{Index: 0, Record: wsptest.Record{Value: in[0].Value, Time: wsptest.Time(5), Meta: in[0].Meta},
			Same: wsp.SameKey | wsp.SameValue | wsp.SameMeta},
		{Index: 2, Record: wsptest.Record{Key: []byte("old"), Value: in[2].Value, Time: wsptest.Time(-3)},
			Same: wsp.SameKey | wsp.SameValue | wsp.SameMeta},
	}
	if !reflect.DeepEqual(res.Out, want) || !reflect.DeepEqual(res.Failed, []wsptest.Failure{{Index: 1, Reason: "ts: want integer"}}) {
		t.Errorf("timestamp: out %v failed %v", res.Out, res.Failed)
	}
	if v, f := h.ABI(); v != 1 || f != 1 {
		t.Errorf("wsp_abi = %d, %b; want 1, fields", v, f)
	}
}

func TestOnInit(t *testing.T) {
	var cfg []string
	register(func() {
		wsp.OnInit(func(c []byte) error {
			cfg = append(cfg, string(c))
			if string(c) == `{"bad":true}` {
				return errors.New("bad config")
			}
			return nil
		})
		wsp.Process(keep)
	})
	if err := wsptest.New(t, wsptest.Config(`{"a":1}`)).TryInit(); err != nil {
		t.Fatal(err)
	}
	if err := wsptest.New(t).TryInit(); err != nil {
		t.Fatal(err)
	}
	err := wsptest.New(t, wsptest.Config([]byte(`{"bad":true}`))).TryInit()
	if err == nil || err.Error() != "bad config" {
		t.Errorf("err = %v", err)
	}
	if want := []string{`{"a":1}`, ``, `{"bad":true}`}; !reflect.DeepEqual(cfg, want) {
		t.Errorf("configs %q", cfg)
	}

	register(func() {
		wsp.OnInit(func([]byte) error { panic("init boom") })
	})
	if err := wsptest.New(t, wsptest.Quiet()).TryInit(); err == nil || err.Error() != "panic: init boom" {
		t.Errorf("panic in OnInit: %v", err)
	}
}

func TestFieldsAndPortsFromConfig(t *testing.T) {
	var field int
	var port wsp.PortID
	register(func() {
		wsp.Fields("static")
		wsp.Port("fixed")
		wsp.OnInit(func(c []byte) error {
			field = wsp.Fields(string(c))
			port = wsp.Port("dyn-" + string(c))
			return nil
		})
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			if n, _ := r.Field(field).Int(); n > 0 {
				out.To(port, r, nil)
			}
		})
	})
	for _, name := range []string{"level", "other"} { // the second Init does not accumulate
		h := wsptest.New(t, wsptest.Config(name))
		h.Init()
		if !reflect.DeepEqual(h.Fields(), []string{"static", name}) || !reflect.DeepEqual(h.Ports(), []string{"fixed", "dyn-" + name}) {
			t.Fatalf("declared %q %q", h.Fields(), h.Ports())
		}
		res := h.Process(wsptest.JSON(`{"`+name+`":1}`), wsptest.JSON(`{"`+name+`":0}`))
		if len(res.Out) != 1 || res.Out[0].Port != "dyn-"+name || field != 1 || port != 2 {
			t.Errorf("%s: out %v field %d port %d", name, res.Out, field, port)
		}
		if v, f := h.ABI(); v != 1 || f != 3 {
			t.Errorf("wsp_abi = %d, %b", v, f)
		}
	}
}

func TestBadDeclarations(t *testing.T) {
	for _, c := range []struct {
		name string
		reg  func()
		want string
	}{
		{"empty path", func() { wsp.Fields("a", "") }, `wsp: field path "" is empty`},
		{"empty segment", func() { wsp.Fields("a..b") }, `wsp: field path "a..b" has an empty segment`},
		{"trailing dot", func() { wsp.Fields("a.") }, `wsp: field path "a." has an empty segment`},
		{"space", func() { wsp.Fields(" a") }, `wsp: field path " a" starts or ends with white space`},
		{"newline", func() { wsp.Fields("a\nb") }, "contains a line break"},
		{"long path", func() { wsp.Fields(strings.Repeat("x", 1025)) }, `is longer than 1024 bytes`},
		{"too many fields", func() {
			for i := 0; i < 65; i++ {
				wsp.Fields("f" + strconv.Itoa(i))
			}
		}, "wsp: 65 fields declared; the host allows 64"},
		{"empty port", func() { wsp.Port("") }, `wsp: port name "" must be 1 to 128 bytes`},
		{"long port", func() { wsp.Port(strings.Repeat("p", 129)) }, `must be 1 to 128 bytes`},
		{"too many ports", func() {
			for i := 0; i < 256; i++ {
				wsp.Port("p" + strconv.Itoa(i))
			}
		}, `wsp: port "p255": more than 255 ports`},
		{"bad field in OnInit", func() { wsp.OnInit(func([]byte) error { wsp.Fields("x..y"); return nil }) },
			`wsp: field path "x..y" has an empty segment`},
	} {
		t.Run(c.name, func(t *testing.T) {
			register(c.reg)
			err := wsptest.New(t).TryInit()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
	// 64 fields are fine.
	register(func() {
		for i := 0; i < 64; i++ {
			wsp.Fields("f" + strconv.Itoa(i))
		}
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			if n, _ := r.Field(63).Int(); n == 63 {
				out.Keep(r)
			}
		})
	})
	if res := wsptest.New(t).Process(wsptest.JSON(`{"f63":63}`)); len(res.Out) != 1 {
		t.Errorf("64 fields: %v", res.Out)
	}
}

func TestDoubleRegistration(t *testing.T) {
	key := func(*wsp.Record) ([]byte, error) { return nil, nil }
	ts := func(*wsp.Record) (int64, error) { return 0, nil }
	onInit := func([]byte) error { return nil }
	for name, fn := range map[string]func(){
		"process":   func() { wsp.Process(keep); wsp.ProcessBatch(func(*wsp.Batch, *wsp.Output) {}) },
		"key":       func() { wsp.Key(key); wsp.Key(key) },
		"timestamp": func() { wsp.Timestamp(ts); wsp.Timestamp(ts) },
		"oninit":    func() { wsp.OnInit(onInit); wsp.OnInit(onInit) },
		"nil":       func() { wsp.Process(nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: registering twice did not panic", name)
				}
			}()
			register(fn)
		}()
	}
}

func TestLargeBatchesAndOutput(t *testing.T) {
	register(func() {
		wsp.Fields("v")
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			out.Emit(r, r.Value())
			out.Emit(r, r.Value())
		})
	})
	h := wsptest.New(t)
	big := `{"v":"` + strings.Repeat("x", 3000) + `"}`
	var in []wsptest.Record
	for i := 0; i < 500; i++ { // 1.5 MB in, 3 MB out
		in = append(in, wsptest.JSON(big))
	}
	res := h.Process(in...)
	if len(res.Out) != 1000 || len(res.Chunks) < 3 {
		t.Fatalf("%d records in %d chunks", len(res.Out), len(res.Chunks))
	}
	for i, o := range res.Out {
		if o.Index != i/2 || string(o.Value) != big {
			t.Fatalf("out %d: index %d", i, o.Index)
		}
	}
	for _, c := range res.Chunks {
		if len(c) > 1<<20+2*(32+len(big)) { // flushed after the record that passes 1 MiB
			t.Errorf("chunk of %d bytes", len(c))
		}
	}
	// And a small batch again with the grown buffers.
	if res := h.Process(wsptest.JSON(`{}`)); len(res.Out) != 2 || len(res.Chunks) != 1 {
		t.Errorf("small after big: %v", res.Out)
	}
	// An empty batch.
	if res := h.Process(); len(res.Out) != 0 || len(res.Chunks) != 0 {
		t.Errorf("empty batch: %v", res)
	}
}

func TestLog(t *testing.T) {
	register(func() {
		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
			wsp.Log(wsp.LevelDebug, "d")
			wsp.Log(wsp.LevelWarn, string(r.Value()))
		})
	})
	h := wsptest.New(t)
	h.Process(wsptest.JSON("w"))
	want := []wsptest.LogLine{{Level: wsp.LevelDebug, Msg: "d"}, {Level: wsp.LevelWarn, Msg: "w"}}
	if !reflect.DeepEqual(h.Logs(), want) {
		t.Errorf("logs %+v", h.Logs())
	}
}

func TestFieldKindString(t *testing.T) {
	names := []string{"missing", "null", "bool", "int", "float", "string", "raw", "kind(9)"}
	for i, k := range []wsp.FieldKind{wsp.Missing, wsp.Null, wsp.Bool, wsp.Int, wsp.Float, wsp.String, wsp.Raw, 9} {
		if k.String() != names[i] {
			t.Errorf("%d: %s", i, k)
		}
	}
	var zero wsp.Field
	if zero.Kind() != wsp.Missing || zero.TypeName() != "missing" || zero.Exists() {
		t.Error("zero Field is not Missing")
	}
}
