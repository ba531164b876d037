package wsp

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
