package wsp

import (
	"encoding/binary"
	"math"
)

var le = binary.LittleEndian

// Record is one input record: a view into the batch the SDK copied from the
// host. It and every slice its methods return are valid only during the
// call that received it; copy what you keep. Methods do not allocate.
type Record struct {
	// buf is the whole batch buffer. The record is only its header offset:
	// the batch loop stores two integers per record and the accessors read
	// the header, because in Go's Wasm code (run by wazero) every memory
	// access and every pointer store costs.
	buf   []byte
	foff  []uint32 // offsets in buf of the declared fields' entries; 0: Missing
	index int
	hdr   int // offset of the record header in buf
}

// head returns the record's 32-byte header.
func (r *Record) head() []byte { return r.buf[r.hdr : r.hdr+recordHeaderSize] }

// Index is the record's position in its batch (0..n-1).
func (r *Record) Index() int { return r.index }

// Key returns the record's key; ok is false when the record has none (an
// empty key is still a key).
func (r *Record) Key() (key []byte, ok bool) {
	h := r.head()
	s := r.hdr + recordHeaderSize
	e := s + int(load32(h, 16))
	return r.buf[s:e:e], h[7]&flagHasKey != 0
}

// Value returns the record's value (the message payload).
func (r *Record) Value() []byte {
	h := r.head()
	s := r.hdr + recordHeaderSize + int(load32(h, 16))
	e := s + int(load32(h, 20))
	return r.buf[s:e:e]
}

// Time returns the record's event time in milliseconds since the Unix epoch;
// ok is false when it has none.
func (r *Record) Time() (ms int64, ok bool) {
	h := r.head()
	return int64(load64(h, 8)), h[7]&flagHasTime != 0
}

// NotJSON reports that the host found the value not to be a JSON object, so
// every field is Missing. The host decides this only for modules that
// declared fields; without fields it is always false.
func (r *Record) NotJSON() bool { return r.head()[7]&flagNotJSON != 0 }

// flags returns the record's header flags.
func (r *Record) flags() uint8 { return r.head()[7] }

// metaSection returns the record's encoded metadata.
func (r *Record) metaSection() []byte {
	h := r.head()
	s := r.hdr + recordHeaderSize + int(load32(h, 16)) + int(load32(h, 20))
	e := s + int(load32(h, 24))
	return r.buf[s:e:e]
}

// Meta returns the value of the first metadata entry called name.
func (r *Record) Meta(name string) (value []byte, ok bool) {
	m := r.metaSection()
	for len(m) >= 8 {
		nl := le.Uint32(m)
		if uint64(nl)+8 > uint64(len(m)) {
			break
		}
		n := m[4 : 4+nl]
		vl := le.Uint32(m[4+nl:])
		rest := m[8+nl:]
		if uint64(vl) > uint64(len(rest)) {
			break
		}
		if string(n) == name {
			return rest[:vl:vl], true
		}
		m = rest[vl:]
	}
	return nil, false
}

// EachMeta calls fn for each metadata entry in order until fn returns false.
func (r *Record) EachMeta(fn func(name, value []byte) bool) {
	m := r.metaSection()
	for len(m) >= 8 {
		nl := le.Uint32(m)
		if uint64(nl)+8 > uint64(len(m)) {
			return
		}
		n := m[4 : 4+nl : 4+nl]
		vl := le.Uint32(m[4+nl:])
		rest := m[8+nl:]
		if uint64(vl) > uint64(len(rest)) {
			return
		}
		if !fn(n, rest[:vl:vl]) {
			return
		}
		m = rest[vl:]
	}
}

// Field returns declared field i (see Fields). A number outside the
// declared fields gives a Missing field. The SDK locates the fields of a
// record while it walks the batch; Field and the Field methods only slice
// and load, and are small enough to be inlined into the caller.
func (r *Record) Field(i int) Field {
	if uint(i) < uint(len(r.foff)) {
		if off := r.foff[i]; off != 0 {
			return Field{e: r.buf[off:]}
		}
	}
	return Field{}
}

// FieldKind is the type of a Field.
type FieldKind uint8

// Field kinds. JSON false and true are both Bool.
const (
	Missing FieldKind = iota // absent, or the value is not a JSON object
	Null                     // JSON null
	Bool                     // JSON true or false
	Int                      // a JSON number without fraction or exponent that fits int64
	Float                    // any other JSON number (±Inf when beyond float64)
	String                   // a JSON string
	Raw                      // a JSON object or array, as its JSON text
)

var kindNames = [...]string{"missing", "null", "bool", "int", "float", "string", "raw"}

// String names the kind ("missing", "null", "bool", "int", "float",
// "string", "raw").
func (k FieldKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + itoa(int64(k)) + ")"
}

// Field is one declared JSON field of a record, decoded by the host. The
// zero Field is Missing. Its byte slices point into the batch: valid during
// the call only.
type Field struct {
	// e is the rest of the batch from the field's entry on: tag, then
	// payload. Empty for a field that is not in the section. The SDK's walk
	// checked that the payload is complete.
	e []byte
}

var tagKinds = [8]FieldKind{Missing, Null, Bool, Bool, Int, Float, String, Raw}

// Kind is the field's type.
func (f Field) Kind() FieldKind {
	if len(f.e) == 0 {
		return Missing
	}
	return tagKinds[f.e[0]&7]
}

// Exists reports whether the field is present (any kind but Missing; a JSON
// null is present).
func (f Field) Exists() bool { return len(f.e) != 0 && f.e[0] != tagMissing }

// Int returns an Int field's value; ok is false for every other kind (a
// Float, even integral, is not converted).
func (f Field) Int() (v int64, ok bool) {
	if len(f.e) >= 9 && f.e[0] == tagInt {
		return int64(load64(f.e, 1)), true
	}
	return 0, false
}

// Float returns a number's value: a Float's, or an Int's converted to
// float64; ok is false for other kinds.
func (f Field) Float() (v float64, ok bool) {
	if len(f.e) < 9 {
		return 0, false
	}
	switch bits := load64(f.e, 1); f.e[0] {
	case tagFloat:
		return math.Float64frombits(bits), true
	case tagInt:
		return float64(int64(bits)), true
	}
	return 0, false
}

// Str returns a String field's unescaped UTF-8 bytes; ok is false for other
// kinds.
func (f Field) Str() (v []byte, ok bool) {
	if len(f.e) >= 5 && f.e[0] == tagString {
		n := 5 + load32(f.e, 1)
		return f.e[5:n:n], true
	}
	return nil, false
}

// Bool returns a Bool field's value; ok is false for other kinds.
func (f Field) Bool() (v, ok bool) {
	if len(f.e) != 0 && (f.e[0] == tagTrue || f.e[0] == tagFalse) {
		return f.e[0] == tagTrue, true
	}
	return false, false
}

// Raw returns the JSON text of a Raw field (an object or an array); ok is
// false for other kinds.
func (f Field) Raw() (text []byte, ok bool) {
	if len(f.e) >= 5 && f.e[0] == tagRaw {
		n := 5 + load32(f.e, 1)
		return f.e[5:n:n], true
	}
	return nil, false
}

// TypeName is the field's JSON type, for messages: "missing", "null",
// "bool", "number" (Int and Float), "string", "object" or "array".
func (f Field) TypeName() string {
	switch f.Kind() {
	case Null:
		return "null"
	case Bool:
		return "bool"
	case Int, Float:
		return "number"
	case String:
		return "string"
	case Raw:
		text, _ := f.Raw()
		for _, c := range text {
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				if c == '[' {
					return "array"
				}
				break
			}
		}
		return "object"
	}
	return "missing"
}

// Batch is the batch of input records of one call (ProcessBatch). It is
// valid during that call only.
type Batch struct {
	recs []Record
}

// Len is the number of records.
func (b *Batch) Len() int { return len(b.recs) }

// Record returns record i (0 <= i < Len()). The pointer is stable for the
// duration of the call.
func (b *Batch) Record(i int) *Record { return &b.recs[i] }
