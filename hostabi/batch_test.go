package hostabi

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	cases := []Header{
		{},
		{Index: 7, Port: 3, Kind: KindFail, Flags: FlagHasTime | FlagHasKey, Time: -15, KeyLen: 1, ValueLen: 2, MetaLen: 3, FieldsLen: 4},
		{Index: math.MaxUint32, Port: math.MaxUint16, Kind: 255, Flags: 255, Time: math.MinInt64, KeyLen: math.MaxUint32},
		{Time: math.MaxInt64},
	}
	for _, h := range cases {
		var b [RecordHeaderSize]byte
		PutHeader(b[:], &h)
		if got := GetHeader(b[:]); got != h {
			t.Errorf("round trip: got %+v want %+v", got, h)
		}
	}
	// The layout is the spec's: little-endian, index at 0, time at 8.
	var b [RecordHeaderSize]byte
	PutHeader(b[:], &Header{Index: 0x01020304, Port: 0x0506, Kind: 7, Flags: 8, Time: 0x1112131415161718, ValueLen: 0x21})
	want := []byte{4, 3, 2, 1, 6, 5, 7, 8, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 0, 0, 0, 0, 0x21, 0, 0, 0}
	if string(b[:24]) != string(want) {
		t.Errorf("layout = % x\nwant     % x", b[:24], want)
	}
}

func TestBatchHeader(t *testing.T) {
	b := make([]byte, BatchHeaderSize)
	PutBatchHeader(b, 1024)
	if binary.LittleEndian.Uint32(b) != 1024 || binary.LittleEndian.Uint32(b[4:]) != 0 {
		t.Fatalf("batch header % x", b)
	}
}

func TestMeta(t *testing.T) {
	var sec []byte
	sec = AppendMetaEntry(sec, "path", []byte("a.jsonl"))
	sec = AppendMetaEntry(sec, "", nil)
	sec = AppendMetaEntry(sec, "k", []byte("v"))
	if len(sec) != MetaEntrySize("path", []byte("a.jsonl"))+MetaEntrySize("", nil)+MetaEntrySize("k", []byte("v")) {
		t.Fatalf("size mismatch %d", len(sec))
	}
	buf := make([]byte, len(sec))
	n := PutMetaEntry(buf, "path", []byte("a.jsonl"))
	n += PutMetaEntry(buf[n:], "", nil)
	PutMetaEntry(buf[n:], "k", []byte("v"))
	if string(buf) != string(sec) {
		t.Fatal("Put and Append disagree")
	}
	it := NewMetaIter(sec)
	var got []string
	for {
		k, v, ok, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, string(k)+"="+string(v))
	}
	if strings.Join(got, ",") != "path=a.jsonl,=,k=v" {
		t.Fatalf("entries %q", got)
	}
	for cut := 1; cut < len(sec); cut++ {
		it := NewMetaIter(sec[:cut])
		var err error
		for {
			var ok bool
			_, _, ok, err = it.Next()
			if !ok {
				break
			}
		}
		// A cut that falls between entries is a valid shorter section.
		if err == nil && cut != 19 && cut != 27 {
			t.Errorf("cut at %d parsed without error", cut)
		}
		if err != nil && !errors.Is(err, ErrMalformedMeta) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}

func TestFieldEncoders(t *testing.T) {
	var b []byte
	b = AppendFieldTag(b, FieldNull)
	b = AppendFieldInt(b, -2)
	b = AppendFieldFloat(b, 2.5)
	b = AppendFieldBytes(b, FieldString, []byte("hé"))
	b = AppendFieldBytes(b, FieldRaw, []byte("[1]"))
	want := []byte{FieldNull, FieldInt, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, FieldFloat}
	want = binary.LittleEndian.AppendUint64(want, math.Float64bits(2.5))
	want = append(want, FieldString, 3, 0, 0, 0, 'h', 0xc3, 0xa9, FieldRaw, 3, 0, 0, 0, '[', '1', ']')
	if string(b) != string(want) {
		t.Fatalf("fields % x\nwant   % x", b, want)
	}
}

// chunk builds an output chunk from headers and bodies.
func chunk(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch x := p.(type) {
		case Header:
			var h [RecordHeaderSize]byte
			PutHeader(h[:], &x)
			b = append(b, h[:]...)
		case string:
			b = append(b, x...)
		case []byte:
			b = append(b, x...)
		}
	}
	return b
}

func keep(index uint32, port uint16) []byte {
	b := binary.LittleEndian.AppendUint32(nil, index)
	b = binary.LittleEndian.AppendUint16(b, port)
	return append(b, KindKeep, 0)
}

func TestOutputReader(t *testing.T) {
	meta := AppendMetaEntry(nil, "m", []byte("v"))
	c := chunk(
		Header{Index: 0, Flags: FlagHasKey | FlagHasTime, Time: -5, KeyLen: 1, ValueLen: 3, MetaLen: uint32(len(meta))}, "k", "abc", meta,
		keep(1, 2),
		Header{Index: 1, Kind: KindFail, ValueLen: 4}, "oops",
		Header{Index: 3, Flags: FlagSameKey | FlagSameValue | FlagSameTime | FlagSameMeta},
	)
	r := NewOutputReader(c, 4, 2)
	var got []OutputRecord
	for {
		var o OutputRecord
		ok, err := r.Next(&o)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, o)
	}
	if len(got) != 4 {
		t.Fatalf("%d records", len(got))
	}
	if string(got[0].Key) != "k" || string(got[0].Value) != "abc" || string(got[0].Meta) != string(meta) || got[0].Time != -5 {
		t.Errorf("record 0 = %+v", got[0])
	}
	if got[1].Kind != KindKeep || got[1].Index != 1 || got[1].Port != 2 || got[1].Value != nil {
		t.Errorf("keep record = %+v", got[1])
	}
	if got[2].Kind != KindFail || string(got[2].Value) != "oops" {
		t.Errorf("fail record = %+v", got[2])
	}
	if got[3].Index != 3 || got[3].Flags != FlagSameKey|FlagSameValue|FlagSameTime|FlagSameMeta {
		t.Errorf("same record = %+v", got[3])
	}
}

// TestOutputReaderRejects: every way a guest can break an output chunk is
// an error naming the record and the byte offset, never a panic or a read
// outside the chunk.
func TestOutputReaderRejects(t *testing.T) {
	ok := chunk(Header{Index: 0, ValueLen: 1}, "x")
	cases := []struct {
		name  string
		chunk []byte
		want  string
	}{
		{"short header", append(append([]byte{}, ok...), 1, 2, 3), "record 1 at byte 33: 3 trailing bytes"},
		{"unknown kind", chunk(Header{Kind: 9}), "unknown kind 9"},
		{"unknown flags", chunk(Header{Flags: FlagNotJSON}), "unknown flags 0x4"},
		{"index out of range", chunk(Header{Index: 4}), "index 4 out of range (batch has 4 records)"},
		{"undeclared port", chunk(Header{Port: 3}), "port 3 not declared"},
		{"fields in output", chunk(Header{FieldsLen: 1}, "x"), "fields_len must be 0"},
		{"same with length", chunk(Header{Flags: FlagSameValue, ValueLen: 1}, "x"), "must have length 0"},
		{"value past end", chunk(Header{ValueLen: 10}, "abc"), "run past the chunk end"},
		{"huge lengths", chunk(Header{KeyLen: math.MaxUint32, ValueLen: math.MaxUint32}), "run past the chunk end"},
		{"keep index", keep(9, 0), "index 9 out of range"},
		{"keep port", keep(0, 5), "port 5 not declared"},
		{"keep flags", append(keep(0, 0)[:7], 1), "a keep record has no flags"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewOutputReader(c.chunk, 4, 2)
			var err error
			for {
				var o OutputRecord
				var more bool
				more, err = r.Next(&o)
				if err != nil || !more {
					break
				}
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestFeatureNames(t *testing.T) {
	if got := strings.Join((FeatureFields | FeatureState | Feature(1<<20)).Names(), ","); got != "fields,state,unknown-bit-20" {
		t.Errorf("names = %s", got)
	}
	if FeaturesV1&FeatureAggregate == 0 || FeaturesV1&FeatureState == 0 || FeaturesV1&FeatureTimers == 0 {
		t.Error("a v1 host implements aggregates, state and timers")
	}
}

func FuzzOutputReader(f *testing.F) {
	f.Add(chunk(Header{Index: 0, ValueLen: 1}, "x"), uint32(2), uint16(1))
	f.Add(keep(0, 1), uint32(1), uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, inputs uint32, ports uint16) {
		r := NewOutputReader(b, inputs, ports)
		for i := 0; i < len(b)+1; i++ {
			var o OutputRecord
			more, err := r.Next(&o)
			if err != nil || !more {
				return
			}
			if o.Index >= inputs || o.Port > ports {
				t.Fatalf("accepted index %d port %d", o.Index, o.Port)
			}
		}
		t.Fatal("reader did not advance")
	})
}
