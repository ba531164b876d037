package wsp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/plugins/sdk/go/internal/stubhost"
)

// withHost runs fn against a fresh stub host in phase p.
func withHost(t testing.TB, h *stubhost.Host, fn func()) {
	t.Helper()
	stubhost.Mu.Lock()
	defer stubhost.Mu.Unlock()
	stubhost.Current = h
	defer func() { stubhost.Current = nil }()
	fn()
}

// batchOf encodes n records with the given values and no other parts.
func batchOf(values ...string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(values)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for i, v := range values {
		var h [32]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(i))
		binary.LittleEndian.PutUint32(h[20:], uint32(len(v)))
		b = append(b, h[:]...)
		b = append(b, v...)
	}
	return b
}

func TestOutputBytes(t *testing.T) {
	resetRegistrations()
	side := Port("side")
	Process(func(r *Record, out *Output) {
		out.Keep(r)
		out.Emit(r, []byte("ab"))
		out.To(side, r, nil)
		out.EmitRecord(r, &OutRecord{Port: side, Same: SameAll})
		out.EmitRecord(r, &OutRecord{Key: []byte("k"), HasKey: true, Time: -2, HasTime: true,
			Meta: []Meta{{Name: "m", Value: []byte("v")}}, Same: SameValue})
		out.Fail(r, "why")
	})
	var chunk []byte
	h := &stubhost.Host{Phase: stubhost.Init}
	withHost(t, h, func() {
		if rc := runInit(); rc != 0 {
			t.Fatal(h.FailMsg)
		}
		h.Phase = stubhost.Call
		in := batchOf("x")
		in[8+7] = flagHasKey | flagHasTime // record 0 has an (empty) key and a time
		h.Input = in
		h.Write = func(c []byte) int32 { chunk = append(chunk, c...); return 0 }
		if rc := runBatch(exportProcess, 1); rc != 0 {
			t.Fatal(h.FailMsg)
		}
	})
	want := []byte{
		// Keep: an 8-byte keep record: index 0, port 0, kind 2, flags 0.
		0, 0, 0, 0, 0, 0, 2, 0,
		// Emit: same_key|same_time|same_meta, value_len 2.
		0, 0, 0, 0, 0, 0, 0, 0xD0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		'a', 'b',
		// To(side, r, nil) and EmitRecord(SameAll, side): keep records on port 1.
		0, 0, 0, 0, 1, 0, 2, 0,
		0, 0, 0, 0, 1, 0, 2, 0,
		// EmitRecord: has_key|has_time|same_value, time -2, key_len 1, meta_len 10.
		0, 0, 0, 0, 0, 0, 0, 0x23, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0,
		'k', 1, 0, 0, 0, 'm', 1, 0, 0, 0, 'v',
		// Fail: kind 1, no flags, the reason as the value.
		0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		'w', 'h', 'y',
	}
	if !bytes.Equal(chunk, want) {
		t.Errorf("chunk\n% x\nwant\n% x", chunk, want)
	}
}

func TestHostErrors(t *testing.T) {
	resetRegistrations()
	Process(func(r *Record, out *Output) { out.Keep(r) })
	h := &stubhost.Host{Phase: stubhost.Init}
	withHost(t, h, func() {
		if rc := runInit(); rc != 0 {
			t.Fatal(h.FailMsg)
		}
		h.Phase = stubhost.Call
		h.Write = func([]byte) int32 { return errMalformed }
		for _, c := range []struct {
			in   []byte
			n    int32
			want string
		}{
			{batchOf("a", "b"), 2, "batch_write: malformed"},
			{batchOf("a", "b"), 3, "wsp: the batch holds 2 records, the call says 3"},
			{batchOf("a")[:40], 1, "wsp: malformed input batch"},       // header cut short
			{batchOf("abc")[:42], 1, "wsp: malformed input batch"},     // value runs past the end
			{append(batchOf("a"), 0), 1, "wsp: malformed input batch"}, // trailing byte
			{[]byte{1, 0, 0}, 1, "wsp: malformed input batch"},         // shorter than a batch header
		} {
			h.Input = c.in
			if rc := runBatch(exportProcess, c.n); rc != 1 || h.FailMsg != c.want {
				t.Errorf("rc %d, fail %q; want %q", rc, h.FailMsg, c.want)
			}
		}
		h.Phase = stubhost.Idle // batch_read outside a call
		if rc := runBatch(exportProcess, 1); rc != 1 || h.FailMsg != "batch_read: not allowed now" {
			t.Errorf("rc %d, fail %q", rc, h.FailMsg)
		}
	})
	if len(h.Logs) != 0 {
		t.Errorf("host errors are not panics of user code, yet logged %q", h.Logs)
	}
}

func TestMalformedFieldsSection(t *testing.T) {
	// The host is trusted, but a short, truncated or unknown entry reads as
	// Missing (with every entry after it) rather than past the record.
	resetRegistrations()
	Fields("a", "b", "c", "d")
	var got [][]FieldKind
	Process(func(r *Record, out *Output) {
		var k []FieldKind
		for i := 0; i < 5; i++ {
			k = append(k, r.Field(i).Kind())
		}
		got = append(got, k)
		if v, ok := r.Field(0).Str(); ok && string(v) != "a" {
			t.Errorf("string %q", v)
		}
	})
	sections := [][]byte{
		{},
		{tagTrue},
		{tagInt, 1, 2},
		{tagNull, tagString, 9, 0, 0, 0, 'a'},
		{tagString, 1, 0, 0, 0, 'a', tagString, 1},
		{tagFalse, 9, tagTrue},
		{tagRaw, 1, 0, 0, 0, '[', tagFloat, 0, 0, 0, 0, 0, 0, 0, 0, tagMissing, tagNull, tagTrue},
	}
	want := [][]FieldKind{
		{Missing, Missing, Missing, Missing, Missing},
		{Bool, Missing, Missing, Missing, Missing},
		{Missing, Missing, Missing, Missing, Missing},
		{Null, Missing, Missing, Missing, Missing},
		{String, Missing, Missing, Missing, Missing},
		{Bool, Missing, Missing, Missing, Missing},
		{Raw, Float, Missing, Null, Missing}, // a fifth entry beyond the declared four is ignored
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(sections)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for i, sec := range sections {
		var h [32]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(i))
		binary.LittleEndian.PutUint32(h[28:], uint32(len(sec)))
		b = append(b, h[:]...)
		b = append(b, sec...)
	}
	h := &stubhost.Host{Phase: stubhost.Init}
	withHost(t, h, func() {
		if rc := runInit(); rc != 0 {
			t.Fatal(h.FailMsg)
		}
		h.Phase = stubhost.Call
		h.Input = b
		h.Write = func([]byte) int32 { return 0 }
		if rc := runBatch(exportProcess, int32(len(sections))); rc != 0 {
			t.Fatal(h.FailMsg)
		}
	})
	for i := range want {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("section % x: %v, want %v", sections[i], got[i], want[i])
		}
	}
}

func TestLongFailMessageIsCut(t *testing.T) {
	h := &stubhost.Host{}
	withHost(t, h, func() { hostFail(strings.Repeat("x", 5000)) })
	if len(h.FailMsg) != 4096 {
		t.Errorf("fail message of %d bytes", len(h.FailMsg))
	}
}

// TestNoAllocations checks that a batch allocates nothing once the buffers
// have grown, for the per-record and batch forms, with fields read.
func TestNoAllocations(t *testing.T) {
	for _, batchForm := range []bool{false, true} {
		resetRegistrations()
		Fields("a", "b")
		fn := func(r *Record, out *Output) {
			r.Field(1)
			if n, _ := r.Field(0).Int(); n%2 == 0 {
				out.Keep(r)
			} else {
				out.Emit(r, r.Value())
			}
		}
		if batchForm {
			ProcessBatch(func(b *Batch, out *Output) {
				for i := 0; i < b.Len(); i++ {
					fn(b.Record(i), out)
				}
			})
		} else {
			Process(fn)
		}
		in, n := benchBatch(1000)
		h := &stubhost.Host{Phase: stubhost.Init}
		withHost(t, h, func() {
			if rc := runInit(); rc != 0 {
				t.Fatal(h.FailMsg)
			}
			h.Phase = stubhost.Call
			h.Input = in
			h.Write = func([]byte) int32 { return 0 }
			allocs := testing.AllocsPerRun(20, func() {
				if rc := runBatch(exportProcess, int32(n)); rc != 0 {
					t.Fatal(h.FailMsg)
				}
			})
			if allocs != 0 {
				t.Errorf("batch form %v: %v allocations per batch", batchForm, allocs)
			}
		})
	}
}

// benchBatch encodes n records {"a":i,"b":"..."} with the fields section
// for ("a", "b").
func benchBatch(n int) ([]byte, int) {
	b := binary.LittleEndian.AppendUint32(nil, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for i := 0; i < n; i++ {
		v := []byte(`{"a":` + itoa(int64(i)) + `,"b":"hello world"}`)
		f := []byte{tagInt}
		f = binary.LittleEndian.AppendUint64(f, uint64(i))
		f = append(f, tagString)
		f = binary.LittleEndian.AppendUint32(f, 11)
		f = append(f, "hello world"...)
		var h [32]byte
		binary.LittleEndian.PutUint32(h[0:], uint32(i))
		binary.LittleEndian.PutUint32(h[20:], uint32(len(v)))
		binary.LittleEndian.PutUint32(h[28:], uint32(len(f)))
		b = append(b, h[:]...)
		b = append(b, v...)
		b = append(b, f...)
	}
	return b, n
}

// BenchmarkKeep measures the SDK's per-record cost natively (visit and
// keep); the Wasm figure comes from the host's benchmarks.
func BenchmarkKeep(b *testing.B) {
	resetRegistrations()
	Process(func(r *Record, out *Output) { out.Keep(r) })
	in, n := benchBatch(1000)
	h := &stubhost.Host{Phase: stubhost.Init}
	withHost(b, h, func() {
		runInit()
		h.Phase = stubhost.Call
		h.Input = in
		h.Write = func([]byte) int32 { return 0 }
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			runBatch(exportProcess, int32(n))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})
}

// aggBatch encodes a finish batch of accs: fixed (groups | op | accs) or
// variable (groups | op | (acc_len | acc | items 0)*).
func aggBatch(fixed bool, accs ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(accs)))
	b = binary.LittleEndian.AppendUint32(b, aggFinish)
	for _, a := range accs {
		if !fixed {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(a)))
		}
		b = append(b, a...)
		if !fixed {
			b = binary.LittleEndian.AppendUint32(b, 0)
		}
	}
	return b
}

// TestTypedResults: with Results, Finish fills a zeroed dst of 8 bytes per
// field in place, and the SDK declares the fields (agg_result) and writes
// the values back without lengths, in both accumulator modes.
func TestTypedResults(t *testing.T) {
	for _, size := range []int{16, 0} {
		resetRegistrations()
		Aggregate(AggregateFuncs{
			Size:    size,
			Results: []ResultField{{"n", ResultInt}, {"s", ResultFloat}, {"b", ResultBool}},
			Add:     func(acc []byte, r *Record) []byte { return acc },
			Merge:   func(acc, other []byte) []byte { return acc },
			Finish: func(dst, acc []byte) []byte {
				if Uint64At(dst, 0)|Uint64At(dst, 8)|Uint64At(dst, 16) != 0 {
					panic("dst is not zeroed")
				}
				PutInt64At(dst, 0, -Int64At(acc, 0))
				PutFloat64At(dst, 8, Float64At(acc, 8)/2)
				PutBoolAt(dst, 16, Int64At(acc, 0) > 1)
				return dst
			},
		})
		acc := func(n int64, s float64) []byte {
			b := binary.LittleEndian.AppendUint64(nil, uint64(n))
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(s))
		}
		var got []byte
		h := &stubhost.Host{Phase: stubhost.Init}
		withHost(t, h, func() {
			if rc := runInit(); rc != 0 {
				t.Fatal(h.FailMsg)
			}
			if h.AccSize != size || string(h.Results) != "\x01\x01n\x02\x01s\x03\x01b" {
				t.Fatalf("declared %d %q", h.AccSize, h.Results)
			}
			h.Phase = stubhost.Call
			h.Input = aggBatch(size > 0, acc(1, 3), acc(5, -1))
			h.Write = func(c []byte) int32 { got = append(got, c...); return 0 }
			if rc := runAgg(aggFinish, 2); rc != 0 {
				t.Fatal(h.FailMsg)
			}
		})
		want := append(append(acc(-1, 1.5), make([]byte, 8)...), acc(-5, -0.5)...)
		want = binary.LittleEndian.AppendUint64(want, 1)
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: wrote % x\nwant % x", size, got, want)
		}
	}
	// A Finish that does not return dst fails the call.
	resetRegistrations()
	Aggregate(AggregateFuncs{Size: 8, Results: []ResultField{{"n", ResultInt}},
		Add: func(acc []byte, r *Record) []byte { return acc }, Merge: func(acc, other []byte) []byte { return acc },
		Finish: func(dst, acc []byte) []byte { return append(dst, 0) }})
	h := &stubhost.Host{Phase: stubhost.Init}
	withHost(t, h, func() {
		if rc := runInit(); rc != 0 {
			t.Fatal(h.FailMsg)
		}
		h.Phase = stubhost.Call
		h.Input = aggBatch(true, make([]byte, 8))
		h.Write = func(c []byte) int32 { return 0 }
		if rc := runAgg(aggFinish, 1); rc == 0 || !strings.Contains(h.FailMsg, "must fill dst in place") {
			t.Fatalf("rc %d, %q", rc, h.FailMsg)
		}
	})
	resetRegistrations()
}

// TestBadResults: Aggregate refuses bad Results at registration.
func TestBadResults(t *testing.T) {
	defer resetRegistrations()
	var many []ResultField
	for i := 0; i < 65; i++ {
		many = append(many, ResultField{Name: itoa(int64(i)), Type: ResultInt})
	}
	for _, c := range []struct {
		results []ResultField
		msg     string
	}{
		{[]ResultField{{"a", ResultInt}, {"a", ResultFloat}}, `Results[1] ("a"): Name declared twice`},
		{[]ResultField{{"", ResultInt}}, `Results[0]: empty Name`},
		{[]ResultField{{"a", 7}}, `Results[0] ("a"): unknown Type 7`},
		{[]ResultField{{"a\tb", ResultInt}}, `control character`},
		{[]ResultField{{"\xff", ResultInt}}, `not valid UTF-8`},
		{[]ResultField{{strings.Repeat("x", 256), ResultInt}}, `longer than 255 bytes`},
		{many, `65 Results; the host allows 64`},
	} {
		resetRegistrations()
		func() {
			defer func() {
				if v := recover(); v == nil || !strings.Contains(fmt.Sprint(v), c.msg) {
					t.Errorf("%v: panic %v, want %q", c.results, v, c.msg)
				}
			}()
			Aggregate(AggregateFuncs{Results: c.results, Add: func(acc []byte, r *Record) []byte { return acc },
				Merge: func(acc, other []byte) []byte { return acc }, Finish: func(dst, acc []byte) []byte { return dst }})
		}()
	}
}
