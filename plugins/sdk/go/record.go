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
	// buf is the whole batch buffer; it changes only when the buffer grows,
	// so that the per-record parse stores no pointers (a pointer store costs
	// a write-barrier check, which is slow in Go's Wasm code).
	buf    []byte
	foff   []uint32 // offsets of the known field entries (relative to fields)
	index  int
	time   int64
	key    uint32 // offset of the key in buf
	value  uint32 // offset of the value (= end of the key)
	meta   uint32 // offset of the meta section
	fields uint32 // offset of the fields section
	end    uint32 // end of the record
	fknown uint32 // foff[:fknown] are known
	fnext  uint32 // offset (relative to fields) of entry fknown
	flags  uint8
}

// Index is the record's position in its batch (0..n-1).
func (r *Record) Index() int { return r.index }

// Key returns the record's key; ok is false when the record has none (an
// empty key is still a key).
func (r *Record) Key() (key []byte, ok bool) {
	return r.buf[r.key:r.value:r.value], r.flags&flagHasKey != 0
}

// Value returns the record's value (the message payload).
func (r *Record) Value() []byte {
	return r.buf[r.value:r.meta:r.meta]
}

// Time returns the record's event time in milliseconds since the Unix epoch;
// ok is false when it has none.
func (r *Record) Time() (ms int64, ok bool) {
	return r.time, r.flags&flagHasTime != 0
}

// NotJSON reports that the host found the value not to be a JSON object, so
// every field is Missing. The host decides this only for modules that
// declared fields; without fields it is always false.
func (r *Record) NotJSON() bool { return r.flags&flagNotJSON != 0 }

// Meta returns the value of the first metadata entry called name.
func (r *Record) Meta(name string) (value []byte, ok bool) {
	m := r.buf[r.meta:r.fields]
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
	m := r.buf[r.meta:r.fields]
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
// declared fields gives a Missing field. Fields are decoded lazily: a record
// pays only for the fields it reads, and each at most once.
func (r *Record) Field(i int) Field {
	if uint(i) >= uint(len(r.foff)) {
		return Field{}
	}
	fs := r.buf[r.fields:r.end]
	for int(r.fknown) <= i {
		off := r.fnext
		if uint64(off) >= uint64(len(fs)) {
			return Field{} // section shorter than the declared fields
		}
		r.foff[r.fknown] = off
		r.fknown++
		r.fnext = off + entrySize(fs[off:])
	}
	return decodeField(fs[r.foff[i]:])
}

// entrySize is the encoded size of the field entry starting at e[0]; it
// may point past the section for a malformed entry, which later reads treat
// as the end.
func entrySize(e []byte) uint32 {
	switch e[0] {
	case tagInt, tagFloat:
		return 9
	case tagString, tagRaw:
		if len(e) < 5 {
			return uint32(len(e))
		}
		n := uint64(le.Uint32(e[1:])) + 5
		if n > uint64(len(e)) {
			return uint32(len(e))
		}
		return uint32(n)
	}
	return 1
}

func decodeField(e []byte) Field {
	switch e[0] {
	case tagNull:
		return Field{kind: Null}
	case tagFalse:
		return Field{kind: Bool}
	case tagTrue:
		return Field{kind: Bool, bits: 1}
	case tagInt, tagFloat:
		if len(e) < 9 {
			return Field{}
		}
		k := Int
		if e[0] == tagFloat {
			k = Float
		}
		return Field{kind: k, bits: le.Uint64(e[1:])}
	case tagString, tagRaw:
		if len(e) < 5 {
			return Field{}
		}
		n := uint64(le.Uint32(e[1:]))
		if n+5 > uint64(len(e)) {
			return Field{}
		}
		k := String
		if e[0] == tagRaw {
			k = Raw
		}
		return Field{kind: k, b: e[5 : 5+n : 5+n]}
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
	b    []byte
	bits uint64
	kind FieldKind
}

// Kind is the field's type.
func (f Field) Kind() FieldKind { return f.kind }

// Exists reports whether the field is present (any kind but Missing; a JSON
// null is present).
func (f Field) Exists() bool { return f.kind != Missing }

// Int returns an Int field's value; ok is false for every other kind (a
// Float, even integral, is not converted).
func (f Field) Int() (v int64, ok bool) {
	if f.kind != Int {
		return 0, false
	}
	return int64(f.bits), true
}

// Float returns a number's value: a Float's, or an Int's converted to
// float64; ok is false for other kinds.
func (f Field) Float() (v float64, ok bool) {
	switch f.kind {
	case Float:
		return math.Float64frombits(f.bits), true
	case Int:
		return float64(int64(f.bits)), true
	}
	return 0, false
}

// Str returns a String field's unescaped UTF-8 bytes; ok is false for other
// kinds.
func (f Field) Str() (v []byte, ok bool) {
	if f.kind != String {
		return nil, false
	}
	return f.b, true
}

// Bool returns a Bool field's value; ok is false for other kinds.
func (f Field) Bool() (v, ok bool) {
	if f.kind != Bool {
		return false, false
	}
	return f.bits != 0, true
}

// Raw returns the JSON text of a Raw field (an object or an array); ok is
// false for other kinds.
func (f Field) Raw() (text []byte, ok bool) {
	if f.kind != Raw {
		return nil, false
	}
	return f.b, true
}

// TypeName is the field's JSON type, for messages: "missing", "null",
// "bool", "number" (Int and Float), "string", "object" or "array".
func (f Field) TypeName() string {
	switch f.kind {
	case Null:
		return "null"
	case Bool:
		return "bool"
	case Int, Float:
		return "number"
	case String:
		return "string"
	case Raw:
		for _, c := range f.b {
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
