package hostabi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Batch layout (all integers little-endian, no padding, no alignment):
//
//	input batch  = BatchHeader record*          (what batch_read copies)
//	output chunk = record*                      (what batch_write receives)
//	BatchHeader  = count u32 | flags u32 (0 in v1)
//	record       = header(32 bytes) key value meta fields
//	header       = index u32 | port u16 | kind u8 | flags u8 | time i64 |
//	               key_len u32 | value_len u32 | meta_len u32 | fields_len u32
//	meta         = (name_len u32 name value_len u32 value)*
//	fields       = one entry per declared field, in declaration order:
//	               tag u8, then: Int i64 | Float f64 | String/Raw len u32 bytes | nothing
const (
	BatchHeaderSize  = 8
	RecordHeaderSize = 32
)

// Kind of an output record.
const (
	KindEmit uint8 = 0 // a record for the port
	KindFail uint8 = 1 // the input record Index failed; Value is the reason
	// KindKeep re-emits input record Index unchanged to Port. A keep record
	// is only KeepRecordSize bytes: index u32 | port u16 | kind u8 | flags u8 (0).
	// It is the cheap path for filters and pass-through.
	KindKeep uint8 = 2
)

// KeepRecordSize is the size of a KindKeep record.
const KeepRecordSize = 8

// Record flags.
const (
	FlagHasTime uint8 = 1 << 0 // Time is set
	FlagHasKey  uint8 = 1 << 1 // Key is set (an empty key is still a key)
	FlagNotJSON uint8 = 1 << 2 // input: the value is not a JSON object; all fields are Missing

	// Output only: take the part from the input record Index instead of
	// from this record (its length must then be 0). This lets a filter or
	// a map that changes only the value avoid copying the rest.
	FlagSameKey   uint8 = 1 << 4
	FlagSameValue uint8 = 1 << 5
	FlagSameTime  uint8 = 1 << 6
	FlagSameMeta  uint8 = 1 << 7

	inputFlags  = FlagHasTime | FlagHasKey | FlagNotJSON
	outputFlags = FlagHasTime | FlagHasKey | FlagSameKey | FlagSameValue | FlagSameTime | FlagSameMeta
)

// Field tags in the fields section.
const (
	FieldMissing uint8 = 0
	FieldNull    uint8 = 1
	FieldFalse   uint8 = 2
	FieldTrue    uint8 = 3
	FieldInt     uint8 = 4 // i64: a JSON integer literal that fits int64
	FieldFloat   uint8 = 5 // f64: any other JSON number
	FieldString  uint8 = 6 // u32 length + the unescaped UTF-8 bytes
	FieldRaw     uint8 = 7 // u32 length + the JSON text of an object or array
)

// Header is a decoded record header.
type Header struct {
	Index     uint32
	Port      uint16
	Kind      uint8
	Flags     uint8
	Time      int64
	KeyLen    uint32
	ValueLen  uint32
	MetaLen   uint32
	FieldsLen uint32
}

// BodyLen is the number of bytes that follow the header.
func (h *Header) BodyLen() uint64 {
	return uint64(h.KeyLen) + uint64(h.ValueLen) + uint64(h.MetaLen) + uint64(h.FieldsLen)
}

// PutBatchHeader writes the input batch header into b[:8].
func PutBatchHeader(b []byte, count uint32) {
	binary.LittleEndian.PutUint32(b[0:], count)
	binary.LittleEndian.PutUint32(b[4:], 0)
}

// PutHeader writes h into b[:32].
func PutHeader(b []byte, h *Header) {
	_ = b[RecordHeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], h.Index)
	binary.LittleEndian.PutUint16(b[4:], h.Port)
	b[6] = h.Kind
	b[7] = h.Flags
	binary.LittleEndian.PutUint64(b[8:], uint64(h.Time))
	binary.LittleEndian.PutUint32(b[16:], h.KeyLen)
	binary.LittleEndian.PutUint32(b[20:], h.ValueLen)
	binary.LittleEndian.PutUint32(b[24:], h.MetaLen)
	binary.LittleEndian.PutUint32(b[28:], h.FieldsLen)
}

// GetHeader reads a header from b[:32].
func GetHeader(b []byte) Header {
	_ = b[RecordHeaderSize-1]
	return Header{
		Index:     binary.LittleEndian.Uint32(b[0:]),
		Port:      binary.LittleEndian.Uint16(b[4:]),
		Kind:      b[6],
		Flags:     b[7],
		Time:      int64(binary.LittleEndian.Uint64(b[8:])),
		KeyLen:    binary.LittleEndian.Uint32(b[16:]),
		ValueLen:  binary.LittleEndian.Uint32(b[20:]),
		MetaLen:   binary.LittleEndian.Uint32(b[24:]),
		FieldsLen: binary.LittleEndian.Uint32(b[28:]),
	}
}

// MetaEntrySize is the encoded size of one metadata entry.
func MetaEntrySize(name string, value []byte) int { return 8 + len(name) + len(value) }

// PutMetaEntry writes one metadata entry at b and returns the bytes written.
func PutMetaEntry(b []byte, name string, value []byte) int {
	binary.LittleEndian.PutUint32(b, uint32(len(name)))
	n := 4 + copy(b[4:], name)
	binary.LittleEndian.PutUint32(b[n:], uint32(len(value)))
	n += 4
	n += copy(b[n:], value)
	return n
}

// AppendMetaEntry appends one metadata entry to dst.
func AppendMetaEntry(dst []byte, name string, value []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(name)))
	dst = append(dst, name...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// ErrMalformedMeta is returned by MetaIter for a section that does not parse.
var ErrMalformedMeta = errors.New("malformed metadata section")

// MetaIter walks an encoded metadata section.
type MetaIter struct {
	b   []byte
	off int
}

// NewMetaIter starts a walk over section b.
func NewMetaIter(b []byte) MetaIter { return MetaIter{b: b} }

// Next returns the next entry; ok is false at the end or on error (check Err).
func (m *MetaIter) Next() (name, value []byte, ok bool, err error) {
	if m.off == len(m.b) {
		return nil, nil, false, nil
	}
	rest := m.b[m.off:]
	if len(rest) < 4 {
		return nil, nil, false, ErrMalformedMeta
	}
	nl := uint64(binary.LittleEndian.Uint32(rest))
	if uint64(len(rest)) < 8+nl {
		return nil, nil, false, ErrMalformedMeta
	}
	name = rest[4 : 4+nl]
	vl := uint64(binary.LittleEndian.Uint32(rest[4+nl:]))
	if uint64(len(rest)) < 8+nl+vl {
		return nil, nil, false, ErrMalformedMeta
	}
	value = rest[8+nl : 8+nl+vl]
	m.off += int(8 + nl + vl)
	return name, value, true, nil
}

// Field encoders, for the host's fields section.

// AppendFieldTag appends a payload-less field (Missing, Null, False, True).
func AppendFieldTag(dst []byte, tag uint8) []byte { return append(dst, tag) }

// AppendFieldInt appends an Int field.
func AppendFieldInt(dst []byte, v int64) []byte {
	dst = append(dst, FieldInt)
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

// AppendFieldFloat appends a Float field.
func AppendFieldFloat(dst []byte, v float64) []byte {
	dst = append(dst, FieldFloat)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// AppendFieldBytes appends a String or Raw field.
func AppendFieldBytes(dst []byte, tag uint8, v []byte) []byte {
	dst = append(dst, tag)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v)))
	return append(dst, v...)
}

// OutputRecord is one record parsed from an output chunk. Its slices point
// into the chunk (guest memory): copy what is kept.
type OutputRecord struct {
	Header
	Key, Value, Meta []byte
}

// ParseError says where an output chunk stopped making sense.
type ParseError struct {
	Record int    // 0-based record number within the chunk
	Offset int    // byte offset of that record within the chunk
	Reason string // what was wrong
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("record %d at byte %d: %s", e.Record, e.Offset, e.Reason)
}

// OutputReader walks an output chunk, checking every length against the
// chunk, every index against the input batch size and every port against the
// number of ports, so nothing a guest writes can make the host read outside
// the chunk.
type OutputReader struct {
	b      []byte
	off    int
	n      int
	inputs uint32
	ports  uint16
	state  bool // KindState entries are allowed (FeatureState)
}

// NewOutputReader walks chunk b for a call over inputs input records with
// ports named ports (port 0, the main output, always exists).
func NewOutputReader(b []byte, inputs uint32, ports uint16) OutputReader {
	return OutputReader{b: b, inputs: inputs, ports: ports}
}

// AllowState lets the chunk hold KindState entries (a module with
// FeatureState); their Port is a StateOp, checked by its own rules.
func (r *OutputReader) AllowState() { r.state = true }

// Next parses the next record into rec and reports whether there was one;
// at the end of the chunk it returns false, nil. The common path is a few
// loads and one combined check; the reasons are worked out only on error.
func (r *OutputReader) Next(rec *OutputRecord) (bool, error) {
	rest := r.b[r.off:]
	if len(rest) == 0 {
		return false, nil
	}
	h := &rec.Header
	if len(rest) >= KeepRecordSize && rest[6] == KindKeep {
		*h = Header{Index: binary.LittleEndian.Uint32(rest), Port: binary.LittleEndian.Uint16(rest[4:]), Kind: KindKeep, Flags: rest[7]}
		if h.Index >= r.inputs || h.Port > r.ports || h.Flags != 0 {
			return false, r.fail(r.reason(h, len(rest)))
		}
		rec.Key, rec.Value, rec.Meta = nil, nil, nil
		r.off += KeepRecordSize
		r.n++
		return true, nil
	}
	if len(rest) < RecordHeaderSize {
		return false, r.fail(fmt.Sprintf("%d trailing bytes, shorter than a record header", len(rest)))
	}
	*h = GetHeader(rest)
	body := uint64(h.KeyLen) + uint64(h.ValueLen) + uint64(h.MetaLen)
	if h.Kind == KindState && r.state {
		if why := checkStateEntry(h); why != "" || h.Index >= r.inputs || h.FieldsLen != 0 || uint64(len(rest)-RecordHeaderSize) < body {
			if why == "" {
				why = r.reason(&Header{Index: h.Index, FieldsLen: h.FieldsLen, KeyLen: h.KeyLen, ValueLen: h.ValueLen}, len(rest))
			}
			return false, r.fail(why)
		}
		return r.body(rec, rest, h), nil
	}
	if h.Kind > KindKeep || h.Flags&^outputFlags != 0 || h.Index >= r.inputs || h.Port > r.ports ||
		h.FieldsLen != 0 || uint64(len(rest)-RecordHeaderSize) < body ||
		(h.Flags&FlagSameKey != 0 && h.KeyLen != 0) || (h.Flags&FlagSameValue != 0 && h.ValueLen != 0) ||
		(h.Flags&FlagSameMeta != 0 && h.MetaLen != 0) {
		return false, r.fail(r.reason(h, len(rest)))
	}
	return r.body(rec, rest, h), nil
}

// body slices the parts of the record whose header h starts rest.
func (r *OutputReader) body(rec *OutputRecord, rest []byte, h *Header) bool {
	p := uint32(RecordHeaderSize)
	rec.Key = rest[p : p+h.KeyLen]
	p += h.KeyLen
	rec.Value = rest[p : p+h.ValueLen]
	p += h.ValueLen
	rec.Meta = rest[p : p+h.MetaLen]
	p += h.MetaLen
	r.off += int(p)
	r.n++
	return true
}

func (r *OutputReader) fail(reason string) error {
	return &ParseError{Record: r.n, Offset: r.off, Reason: reason}
}

// reason explains why header h failed the combined check.
func (r *OutputReader) reason(h *Header, left int) string {
	switch {
	case h.Kind == KindKeep && h.Flags != 0:
		return "a keep record has no flags"
	case h.Kind == KindState:
		return "a state entry (kind 3) from a module without the state feature"
	case h.Kind > KindKeep:
		return fmt.Sprintf("unknown kind %d", h.Kind)
	case h.Flags&^outputFlags != 0:
		return fmt.Sprintf("unknown flags %#x", h.Flags&^outputFlags)
	case h.Index >= r.inputs:
		return fmt.Sprintf("index %d out of range (batch has %d records)", h.Index, r.inputs)
	case h.Port > r.ports:
		return fmt.Sprintf("port %d not declared (module declared %d ports)", h.Port, r.ports)
	case h.FieldsLen != 0:
		return "fields_len must be 0 in output records"
	case h.Flags&FlagSameKey != 0 && h.KeyLen != 0,
		h.Flags&FlagSameValue != 0 && h.ValueLen != 0,
		h.Flags&FlagSameMeta != 0 && h.MetaLen != 0:
		return "a part taken from the input record must have length 0"
	}
	return fmt.Sprintf("lengths (key %d, value %d, meta %d) run past the chunk end (%d bytes left)",
		h.KeyLen, h.ValueLen, h.MetaLen, left-RecordHeaderSize)
}
