// Package ops holds wsp's native pipeline steps: key, event_time and
// window. They run in the host, over records whose fields the host reads
// from JSON without building a tree (package jsonfields).
package ops

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/jsonfields"
)

// value is one decoded field.
type value struct {
	tag uint8 // hostabi.Field*
	i   int64
	f   float64
	b   []byte // String or Raw: points into the reader's buffer
}

// fieldReader extracts a fixed list of fields from JSON records. One per
// worker: it reuses its buffers.
type fieldReader struct {
	ex      *jsonfields.Extractor
	scratch jsonfields.Scratch
	buf     []byte
	vals    []value
}

func newFieldReader(paths []string) (*fieldReader, error) {
	ex, err := jsonfields.New(paths)
	if err != nil {
		return nil, err
	}
	return &fieldReader{ex: ex, vals: make([]value, len(paths))}, nil
}

// read extracts the fields of v; ok is false when v is not a JSON object.
// The values are valid until the next read.
func (fr *fieldReader) read(v []byte) (vals []value, ok bool) {
	fr.buf, ok = fr.ex.Append(fr.buf[:0], v, &fr.scratch)
	p := 0
	for i := range fr.vals {
		x := &fr.vals[i]
		x.tag = fr.buf[p]
		p++
		switch x.tag {
		case hostabi.FieldInt:
			x.i = int64(binary.LittleEndian.Uint64(fr.buf[p:]))
			p += 8
		case hostabi.FieldFloat:
			x.f = math.Float64frombits(binary.LittleEndian.Uint64(fr.buf[p:]))
			p += 8
		case hostabi.FieldString, hostabi.FieldRaw:
			n := int(binary.LittleEndian.Uint32(fr.buf[p:]))
			x.b = fr.buf[p+4 : p+4+n]
			p += 4 + n
		}
	}
	return fr.vals, ok
}

// number returns a numeric field as float64.
func (x *value) number() (float64, bool) {
	switch x.tag {
	case hostabi.FieldInt:
		return float64(x.i), true
	case hostabi.FieldFloat:
		return x.f, true
	}
	return 0, false
}

// kindName names a field's JSON type for error messages.
func (x *value) kindName() string {
	switch x.tag {
	case hostabi.FieldMissing:
		return "missing"
	case hostabi.FieldNull:
		return "null"
	case hostabi.FieldFalse, hostabi.FieldTrue:
		return "a boolean"
	case hostabi.FieldInt, hostabi.FieldFloat:
		return "a number"
	case hostabi.FieldString:
		return "a string"
	default:
		return "an object or array"
	}
}

// text is the field as key bytes: a string's bytes, a number's or a
// boolean's JSON text, an object's or array's raw JSON.
func (x *value) text(dst []byte) ([]byte, bool) {
	switch x.tag {
	case hostabi.FieldString, hostabi.FieldRaw:
		return append(dst, x.b...), true
	case hostabi.FieldInt:
		return strconv.AppendInt(dst, x.i, 10), true
	case hostabi.FieldFloat:
		return strconv.AppendFloat(dst, x.f, 'g', -1, 64), true
	case hostabi.FieldTrue:
		return append(dst, "true"...), true
	case hostabi.FieldFalse:
		return append(dst, "false"...), true
	}
	return dst, false
}
