// Package sdkconformance checks that the Go guest SDK (plugins/sdk/go) and
// the host's rendering of ABI v1 (hostabi) agree byte for byte: records the
// host encodes decode correctly in the SDK, and every output chunk the SDK
// writes parses with the host's OutputReader into the same records the SDK's
// test harness reports.
//
// The SDK runs natively here, through its test stub (package wsptest), which
// executes the same encoding and decoding code as the Wasm build.
package sdkconformance

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strconv"
	"testing"

	"github.com/wsp-project/wsp/hostabi"
	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
	"github.com/wsp-project/wsp/plugins/sdk/go/wsptest"
)

// The plugin under test: one registration per process (as in Wasm); each
// test picks the behaviour through mode.
var (
	mode    func(r *wsp.Record, out *wsp.Output)
	side    wsp.PortID
	audit   wsp.PortID
	nfields int
)

var paths = []string{"s", "i", "f", "t", "fa", "n", "obj", "arr", "miss"}

func init() {
	wsp.Fields(paths...)
	nfields = len(paths)
	side = wsp.Port("side")
	audit = wsp.Port("audit")
	wsp.Process(func(r *wsp.Record, out *wsp.Output) { mode(r, out) })
	wsp.Key(func(r *wsp.Record) ([]byte, error) {
		if r.Index()%3 == 2 {
			return nil, errors.New("no key")
		}
		return append([]byte("key-"), r.Value()...), nil
	})
	wsp.Timestamp(func(r *wsp.Record) (int64, error) {
		if r.Index()%3 == 2 {
			return 0, errors.New("no time")
		}
		return int64(r.Index()) * -1000, nil
	})
}

// TestConstants: the SDK's exported numbers are the ABI's.
func TestConstants(t *testing.T) {
	for _, c := range []struct {
		name     string
		sdk, abi uint64
	}{
		{"SameKey", uint64(wsp.SameKey), uint64(hostabi.FlagSameKey)},
		{"SameValue", uint64(wsp.SameValue), uint64(hostabi.FlagSameValue)},
		{"SameTime", uint64(wsp.SameTime), uint64(hostabi.FlagSameTime)},
		{"SameMeta", uint64(wsp.SameMeta), uint64(hostabi.FlagSameMeta)},
		{"LevelDebug", uint64(wsp.LevelDebug), uint64(hostabi.LogDebug)},
		{"LevelInfo", uint64(wsp.LevelInfo), uint64(hostabi.LogInfo)},
		{"LevelWarn", uint64(wsp.LevelWarn), uint64(hostabi.LogWarn)},
		{"LevelError", uint64(wsp.LevelError), uint64(hostabi.LogError)},
	} {
		if c.sdk != c.abi {
			t.Errorf("%s: SDK %d, ABI %d", c.name, c.sdk, c.abi)
		}
	}
	h := wsptest.New(t)
	v, f := h.ABI()
	if v != hostabi.Version || hostabi.Feature(f) != hostabi.FeatureFields|hostabi.FeaturePorts {
		t.Errorf("wsp_abi = %d, %v", v, hostabi.Feature(f).Names())
	}
}

// hostRecord is an input record as the host encodes it.
type hostRecord struct {
	key     []byte
	hasKey  bool
	value   []byte
	time    int64
	hasTime bool
	notJSON bool
	meta    [][2]string
	fields  []byte // encoded with hostabi.AppendField*
}

// encodeHost encodes recs with hostabi's encoder, as runtime/plugin does.
func encodeHost(recs []hostRecord) []byte {
	b := make([]byte, hostabi.BatchHeaderSize)
	hostabi.PutBatchHeader(b, uint32(len(recs)))
	for i, r := range recs {
		var meta []byte
		for _, m := range r.meta {
			meta = hostabi.AppendMetaEntry(meta, m[0], []byte(m[1]))
		}
		h := hostabi.Header{Index: uint32(i), Time: r.time, KeyLen: uint32(len(r.key)),
			ValueLen: uint32(len(r.value)), MetaLen: uint32(len(meta)), FieldsLen: uint32(len(r.fields))}
		if r.hasKey {
			h.Flags |= hostabi.FlagHasKey
		}
		if r.hasTime {
			h.Flags |= hostabi.FlagHasTime
		}
		if r.notJSON {
			h.Flags |= hostabi.FlagNotJSON
		}
		var hdr [hostabi.RecordHeaderSize]byte
		hostabi.PutHeader(hdr[:], &h)
		b = append(b, hdr[:]...)
		b = append(b, r.key...)
		b = append(b, r.value...)
		b = append(b, meta...)
		b = append(b, r.fields...)
	}
	return b
}

// seen is what the SDK's Record reports.
type seen struct {
	Index   int
	Key     string
	HasKey  bool
	Value   string
	Time    int64
	HasTime bool
	NotJSON bool
	Meta    [][2]string
	Fields  []string
}

func describe(f wsp.Field) string {
	switch f.Kind() {
	case wsp.Int:
		v, _ := f.Int()
		return "int " + strconv.FormatInt(v, 10)
	case wsp.Float:
		v, _ := f.Float()
		return "float " + strconv.FormatFloat(v, 'g', -1, 64)
	case wsp.String:
		v, _ := f.Str()
		return "string " + strconv.Quote(string(v))
	case wsp.Raw:
		v, _ := f.Raw()
		return f.TypeName() + " " + string(v)
	case wsp.Bool:
		v, _ := f.Bool()
		return "bool " + strconv.FormatBool(v)
	}
	return f.TypeName()
}

// TestHostEncodingDecodesInSDK: a batch made with hostabi's encoder reads back
// exactly through the SDK's Record and Field methods.
func TestHostEncodingDecodesInSDK(t *testing.T) {
	all := func() []byte {
		var f []byte
		f = hostabi.AppendFieldBytes(f, hostabi.FieldString, []byte("héllo\x00\"")) // s
		f = hostabi.AppendFieldInt(f, math.MinInt64)                                // i
		f = hostabi.AppendFieldFloat(f, -2.5e-300)                                  // f
		f = hostabi.AppendFieldTag(f, hostabi.FieldTrue)                            // t
		f = hostabi.AppendFieldTag(f, hostabi.FieldFalse)                           // fa
		f = hostabi.AppendFieldTag(f, hostabi.FieldNull)                            // n
		f = hostabi.AppendFieldBytes(f, hostabi.FieldRaw, []byte(`{"a":[1]}`))      // obj
		f = hostabi.AppendFieldBytes(f, hostabi.FieldRaw, []byte(`[]`))             // arr
		f = hostabi.AppendFieldTag(f, hostabi.FieldMissing)                         // miss
		return f
	}()
	missing := bytes.Repeat([]byte{hostabi.FieldMissing}, nfields)
	recs := []hostRecord{
		{key: []byte("k0"), hasKey: true, value: []byte(`{"x":1}`), time: math.MaxInt64, hasTime: true,
			meta: [][2]string{{"a", "1"}, {"", ""}, {"bin", "\x00\xff"}}, fields: all},
		{hasKey: true, value: []byte{}, time: -1, fields: missing},                    // empty key; time bytes present but not flagged
		{value: []byte("not json"), notJSON: true, fields: missing},                   // not an object
		{key: []byte("k3"), value: bytes.Repeat([]byte("v"), 70000), fields: missing}, // larger than the SDK's first buffer
	}
	batch := encodeHost(recs)

	var got []seen
	mode = func(r *wsp.Record, out *wsp.Output) {
		s := seen{Index: r.Index(), Value: string(r.Value()), NotJSON: r.NotJSON()}
		k, ok := r.Key()
		s.Key, s.HasKey = string(k), ok
		s.Time, s.HasTime = r.Time()
		r.EachMeta(func(n, v []byte) bool {
			s.Meta = append(s.Meta, [2]string{string(n), string(v)})
			return true
		})
		for i := 0; i <= nfields; i++ { // one beyond the declared fields
			s.Fields = append(s.Fields, describe(r.Field(i)))
		}
		if v, ok := r.Meta("bin"); ok != (r.Index() == 0) || string(v) != map[bool]string{true: "\x00\xff"}[ok] {
			t.Errorf("record %d: Meta(bin) = %q, %v", r.Index(), v, ok)
		}
		got = append(got, s)
		out.Keep(r)
	}
	h := wsptest.New(t)
	h.Init()
	chunks, rc, msg := h.RawCall(batch, len(recs))
	if rc != 0 {
		t.Fatalf("wsp_process returned %d: %s", rc, msg)
	}
	allMissing := make([]string, nfields+1)
	for i := range allMissing {
		allMissing[i] = "missing"
	}
	want := []seen{
		{0, "k0", true, `{"x":1}`, math.MaxInt64, true, false, [][2]string{{"a", "1"}, {"", ""}, {"bin", "\x00\xff"}},
			[]string{`string "héllo\x00\""`, "int -9223372036854775808", "float -2.5e-300", "bool true", "bool false",
				"null", `object {"a":[1]}`, "array []", "missing", "missing"}},
		{1, "", true, "", -1, false, false, nil, allMissing},
		{2, "", false, "not json", 0, false, true, nil, allMissing},
		{3, "k3", false, string(bytes.Repeat([]byte("v"), 70000)), 0, false, false, nil, allMissing},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			if i < len(want) && !reflect.DeepEqual(got[i], want[i]) {
				g := got[i]
				g.Value = g.Value[:min(len(g.Value), 20)]
				t.Errorf("record %d:\n got %+v", i, g)
			}
		}
		if len(got) != len(want) {
			t.Errorf("got %d records, want %d", len(got), len(want))
		}
	}
	// And the keeps parse with the host's reader.
	n := 0
	for _, c := range chunks {
		rd := hostabi.NewOutputReader(c, uint32(len(recs)), 2)
		var o hostabi.OutputRecord
		for {
			ok, err := rd.Next(&o)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if o.Kind != hostabi.KindKeep || int(o.Index) != n || o.Port != 0 {
				t.Errorf("output %d: %+v", n, o.Header)
			}
			n++
		}
	}
	if n != len(recs) {
		t.Errorf("%d keep records, want %d", n, len(recs))
	}
}

// hostView is an output record as the host's reader sees it, with the
// same_* parts resolved from the input as runtime/plugin resolves them.
type hostView struct {
	Index  int
	Port   string
	Fail   string
	Key    *string
	Value  string
	Time   *int64
	Meta   [][2]string
	Parts  wsp.Same
	IsKeep bool
}

// readChunks parses chunks with hostabi.OutputReader.
func readChunks(t *testing.T, chunks [][]byte, in []wsptest.Record, ports []string) []hostView {
	t.Helper()
	var views []hostView
	last := -1
	for _, c := range chunks {
		rd := hostabi.NewOutputReader(c, uint32(len(in)), uint16(len(ports)))
		var o hostabi.OutputRecord
		for {
			ok, err := rd.Next(&o)
			if err != nil {
				t.Fatalf("host reader: %v", err)
			}
			if !ok {
				break
			}
			if int(o.Index) < last {
				t.Fatalf("output for input %d after input %d", o.Index, last)
			}
			last = int(o.Index)
			src := in[o.Index]
			v := hostView{Index: int(o.Index)}
			if o.Port > 0 {
				v.Port = ports[o.Port-1]
			}
			if o.Kind == hostabi.KindFail {
				v.Fail = string(o.Value)
				views = append(views, v)
				continue
			}
			f := o.Flags
			if o.Kind == hostabi.KindKeep {
				v.IsKeep = true
				f = hostabi.FlagSameKey | hostabi.FlagSameValue | hostabi.FlagSameTime | hostabi.FlagSameMeta
			}
			v.Parts = wsp.Same(f) & wsp.SameAll
			switch {
			case f&hostabi.FlagSameKey != 0:
				if src.Key != nil {
					k := string(src.Key)
					v.Key = &k
				}
			case f&hostabi.FlagHasKey != 0:
				k := string(o.Key)
				v.Key = &k
			}
			if f&hostabi.FlagSameValue != 0 {
				v.Value = string(src.Value)
			} else {
				v.Value = string(o.Value)
			}
			switch {
			case f&hostabi.FlagSameTime != 0:
				v.Time = src.Time
			case f&hostabi.FlagHasTime != 0:
				tm := o.Time
				v.Time = &tm
			}
			if f&hostabi.FlagSameMeta != 0 {
				for _, m := range src.Meta {
					v.Meta = append(v.Meta, [2]string{m.Name, m.Value})
				}
			} else {
				it := hostabi.NewMetaIter(o.Meta)
				for {
					name, val, ok, err := it.Next()
					if err != nil {
						t.Fatalf("meta: %v", err)
					}
					if !ok {
						break
					}
					v.Meta = append(v.Meta, [2]string{string(name), string(val)})
				}
			}
			views = append(views, v)
		}
	}
	return views
}

// harnessViews turns what wsptest decoded into the same form, in output
// order (failures and records interleaved as the chunks hold them).
func harnessViews(t *testing.T, res *wsptest.Result, views []hostView) []hostView {
	t.Helper()
	var out []hostView
	oi, fi := 0, 0
	for _, hv := range views {
		if hv.Fail != "" {
			f := res.Failed[fi]
			fi++
			out = append(out, hostView{Index: f.Index, Fail: f.Reason})
			continue
		}
		o := res.Out[oi]
		oi++
		v := hostView{Index: o.Index, Port: o.Port, Value: string(o.Value), Time: o.Time, Parts: o.Same, IsKeep: hv.IsKeep}
		if o.Key != nil {
			k := string(o.Key)
			v.Key = &k
		}
		for _, m := range o.Meta {
			v.Meta = append(v.Meta, [2]string{m.Name, m.Value})
		}
		out = append(out, v)
	}
	if oi != len(res.Out) || fi != len(res.Failed) {
		t.Fatalf("the harness decoded %d records and %d failures, the host reader %d and %d",
			len(res.Out), len(res.Failed), oi, fi)
	}
	return out
}

// TestSDKOutputParsesWithHostReader: every kind of output the SDK writes
// parses with hostabi.OutputReader, and means the same to the host as to
// the SDK's harness.
func TestSDKOutputParsesWithHostReader(t *testing.T) {
	mode = func(r *wsp.Record, out *wsp.Output) {
		switch r.Index() % 9 {
		case 0:
			out.Keep(r)
		case 1:
			out.Emit(r, append([]byte("mapped:"), r.Value()...))
		case 2: // drop
		case 3:
			out.To(side, r, nil)
		case 4:
			out.To(audit, r, []byte("audited"))
		case 5:
			out.Fail(r, "reason "+strconv.Itoa(r.Index()))
		case 6: // flat map over all forms
			out.Keep(r)
			out.EmitString(r, "second")
			out.EmitRecord(r, &wsp.OutRecord{Port: side, Key: []byte{}, HasKey: true, Value: []byte("third"),
				Time: -7, HasTime: true, Meta: []wsp.Meta{{Name: "x", Value: []byte("y")}, {Name: "", Value: nil}}})
			out.Fail(r, "and a failure")
		case 7:
			out.EmitRecord(r, &wsp.OutRecord{Same: wsp.SameKey | wsp.SameMeta, Value: []byte("v7")})
		case 8:
			out.EmitRecord(r, &wsp.OutRecord{Same: wsp.SameAll, Port: audit})
		}
	}
	var in []wsptest.Record
	for i := 0; i < 300; i++ {
		r := wsptest.Record{Value: []byte(`{"i":` + strconv.Itoa(i) + `}`)}
		if i%2 == 0 {
			r.Key = []byte("key" + strconv.Itoa(i))
		}
		if i%4 < 2 {
			r.Time = wsptest.Time(int64(i) * 1000)
		}
		if i%5 == 0 {
			r.Meta = []wsptest.Meta{{Name: "m", Value: strconv.Itoa(i)}}
		}
		in = append(in, r)
	}
	h := wsptest.New(t)
	res := h.Process(in...)
	views := readChunks(t, res.Chunks, in, h.Ports())
	if len(views) != len(res.Out)+len(res.Failed) || len(views) < 300 {
		t.Fatalf("%d host records for %d outputs and %d failures", len(views), len(res.Out), len(res.Failed))
	}
	if got := harnessViews(t, res, views); !reflect.DeepEqual(got, views) {
		for i := range got {
			if !reflect.DeepEqual(got[i], views[i]) {
				t.Fatalf("output %d: harness %+v, host %+v", i, got[i], views[i])
			}
		}
	}
	// Spot checks of what the host sees.
	for _, v := range views {
		switch {
		case v.Index%9 == 0 && !v.IsKeep, v.Index%9 == 3 && (!v.IsKeep || v.Port != "side"):
			t.Errorf("%+v: want a keep record", v)
		case v.Index%9 == 1 && (v.Parts != wsp.SameKey|wsp.SameTime|wsp.SameMeta || v.Value != `mapped:{"i":`+strconv.Itoa(v.Index)+`}`):
			t.Errorf("%+v: want a mapped value", v)
		case v.Index%9 == 2:
			t.Errorf("%+v: want a drop", v)
		}
	}
}

// TestKeyAndTimestampOutput: the key and timestamp exports' chunks parse
// with the host's reader, one answer per input.
func TestKeyAndTimestampOutput(t *testing.T) {
	var in []wsptest.Record
	for i := 0; i < 10; i++ {
		in = append(in, wsptest.Record{Value: []byte("v" + strconv.Itoa(i)), Key: []byte("old")})
	}
	h := wsptest.New(t)
	for _, fn := range []string{"key", "timestamp"} {
		var res *wsptest.Result
		if fn == "key" {
			res = h.Key(in...)
		} else {
			res = h.Timestamp(in...)
		}
		views := readChunks(t, res.Chunks, in, h.Ports())
		if len(views) != len(in) {
			t.Fatalf("%s: %d answers for %d inputs", fn, len(views), len(in))
		}
		for i, v := range views {
			switch {
			case i%3 == 2 && v.Fail == "":
				t.Errorf("%s %d: want a failure, got %+v", fn, i, v)
			case i%3 != 2 && fn == "key" && (v.Key == nil || *v.Key != "key-v"+strconv.Itoa(i)):
				t.Errorf("key %d: %+v", i, v)
			case i%3 != 2 && fn == "timestamp" && (v.Time == nil || *v.Time != int64(i)*-1000 || *v.Key != "old"):
				t.Errorf("timestamp %d: %+v", i, v)
			}
		}
	}
}

// TestHarnessEncodingIsTheHosts: wsptest encodes input batches exactly as
// hostabi does, and its fields sections use the ABI's tags and layouts.
func TestHarnessEncodingIsTheHosts(t *testing.T) {
	in := []wsptest.Record{
		{Key: []byte("k"), Value: []byte(`v`), Time: wsptest.Time(-3), Meta: []wsptest.Meta{{Name: "a", Value: "b"}}},
		{Key: []byte{}, Value: []byte{}},
		{Value: []byte("x")},
	}
	var hr []hostRecord
	for _, r := range in {
		h := hostRecord{key: r.Key, hasKey: r.Key != nil, value: r.Value, hasTime: r.Time != nil}
		if r.Time != nil {
			h.time = *r.Time
		}
		for _, m := range r.Meta {
			h.meta = append(h.meta, [2]string{m.Name, m.Value})
		}
		hr = append(hr, h)
	}
	if got, want := wsptest.EncodeBatch(in, nil), encodeHost(hr); !bytes.Equal(got, want) {
		t.Errorf("batch\n% x\nwant\n% x", got, want)
	}

	sec, notJSON := wsptest.ExtractFields([]byte(`{"s":"a\u00e9","i":-12,"f":0.5,"t":true,"fa":false,"n":null,"obj":{"k":[1]},"arr":[2],"big":1e2}`),
		append(paths, "big"))
	var want []byte
	want = hostabi.AppendFieldBytes(want, hostabi.FieldString, []byte("aé"))
	want = hostabi.AppendFieldInt(want, -12)
	want = hostabi.AppendFieldFloat(want, 0.5)
	want = hostabi.AppendFieldTag(want, hostabi.FieldTrue)
	want = hostabi.AppendFieldTag(want, hostabi.FieldFalse)
	want = hostabi.AppendFieldTag(want, hostabi.FieldNull)
	want = hostabi.AppendFieldBytes(want, hostabi.FieldRaw, []byte(`{"k":[1]}`))
	want = hostabi.AppendFieldBytes(want, hostabi.FieldRaw, []byte(`[2]`))
	want = hostabi.AppendFieldTag(want, hostabi.FieldMissing)
	want = hostabi.AppendFieldFloat(want, 100)
	if notJSON || !bytes.Equal(sec, want) {
		t.Errorf("fields\n% x\nwant\n% x", sec, want)
	}
	if sec, notJSON := wsptest.ExtractFields([]byte(`[1]`), paths); !notJSON || !bytes.Equal(sec, make([]byte, len(paths))) {
		t.Errorf("not an object: % x %v", sec, notJSON)
	}
}
