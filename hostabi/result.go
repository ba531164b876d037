package hostabi

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Typed results (ABI.md "Typed results"): a module that calls
// agg_result(ptr, len) during wsp_init declares the fields of its
// aggregate's result, and wsp_agg_finish then writes exactly
// groups*8*F bytes (F fields, 8 bytes each, little-endian, in declaration
// order, group after group) instead of `len u32 | JSON object text`
// entries. The host formats each group's values as the text of a JSON
// object itself.
//
//	declaration = field+                      (1 to MaxResultFields)
//	field       = type u8 | name_len u8 | name (1 to 255 bytes of UTF-8, no control characters)

// ResultType is the type of a declared result field.
type ResultType uint8

// Result field types. Every value is 8 bytes.
const (
	ResultInt   ResultType = 1 // i64, written as a JSON integer
	ResultFloat ResultType = 2 // f64 bits; NaN and ±Inf are written as null
	ResultBool  ResultType = 3 // u64: 0 false, 1 true; any other value fails the call
)

// ResultValueSize is the size of one result value.
const ResultValueSize = 8

// MaxResultFields is the most fields agg_result declares.
const MaxResultFields = 64

// String is the type's name in the ABI text ("int", "float", "bool").
func (t ResultType) String() string {
	switch t {
	case ResultInt:
		return "int"
	case ResultFloat:
		return "float"
	case ResultBool:
		return "bool"
	}
	return "type " + strconv.Itoa(int(t))
}

// ResultField is a declared result field.
type ResultField struct {
	Name string
	Type ResultType
}

// ResultDeclError is a refused agg_result declaration.
type ResultDeclError struct {
	Field  int    // the field's position, from 0; -1 for the declaration as a whole
	Name   string // the field's name when it could be read
	Code   int32  // the import's result: ErrBadRequest or ErrTooMany
	Reason string
}

func (e *ResultDeclError) Error() string {
	switch {
	case e.Field < 0:
		return e.Reason
	case e.Name != "":
		return fmt.Sprintf("field %d (%q): %s", e.Field, e.Name, e.Reason)
	}
	return fmt.Sprintf("field %d: %s", e.Field, e.Reason)
}

// ParseResultDecl reads and checks an agg_result declaration: at least one
// and at most MaxResultFields fields, known types, names of 1 to 255 bytes
// of valid UTF-8 without control characters, no name twice.
func ParseResultDecl(b []byte) ([]ResultField, error) {
	if len(b) == 0 {
		return nil, &ResultDeclError{Field: -1, Code: ErrBadRequest, Reason: "no fields declared"}
	}
	var out []ResultField
	for p := 0; p < len(b); {
		i := len(out)
		if i == MaxResultFields {
			return nil, &ResultDeclError{Field: i, Code: ErrTooMany,
				Reason: fmt.Sprintf("more than %d fields", MaxResultFields)}
		}
		if len(b)-p < 2 {
			return nil, &ResultDeclError{Field: i, Code: ErrBadRequest, Reason: "truncated: a field needs type u8 | name_len u8 | name"}
		}
		t, n := ResultType(b[p]), int(b[p+1])
		p += 2
		if n == 0 {
			return nil, &ResultDeclError{Field: i, Code: ErrBadRequest, Reason: "empty name"}
		}
		if n > len(b)-p {
			return nil, &ResultDeclError{Field: i, Code: ErrBadRequest,
				Reason: fmt.Sprintf("truncated: name_len %d runs past the end of the declaration", n)}
		}
		name := string(b[p : p+n])
		p += n
		bad := func(reason string) error {
			return &ResultDeclError{Field: i, Name: name, Code: ErrBadRequest, Reason: reason}
		}
		if t < ResultInt || t > ResultBool {
			return nil, bad(fmt.Sprintf("unknown type %d (1 int, 2 float, 3 bool)", t))
		}
		if !utf8.ValidString(name) {
			return nil, bad("the name is not valid UTF-8")
		}
		for k := 0; k < len(name); k++ {
			if name[k] < 0x20 {
				return nil, bad("the name holds a control character")
			}
		}
		for _, f := range out {
			if f.Name == name {
				return nil, bad("the name is declared twice")
			}
		}
		out = append(out, ResultField{Name: name, Type: t})
	}
	return out, nil
}

// AppendResultDecl encodes fields as an agg_result declaration.
func AppendResultDecl(dst []byte, fields []ResultField) []byte {
	for _, f := range fields {
		dst = append(dst, byte(f.Type), byte(len(f.Name)))
		dst = append(dst, f.Name...)
	}
	return dst
}

// ResultFormat turns the typed values of one group into the text of a JSON
// object. The `"name":` parts are encoded once, when it is made.
type ResultFormat struct {
	cols  []resultCol
	size  int
	width int // an upper bound of the text's length
}

type resultCol struct {
	key string // `{"name":` for the first field, `,"name":` for the others
	typ ResultType
}

// maxValueText bounds the text of one value: 20 bytes for an int64, 25
// for a float (-0.0000012345678901234567), 5 for false.
const maxValueText = 32

// NewResultFormat prepares the format of fields (as ParseResultDecl
// returned them).
func NewResultFormat(fields []ResultField) *ResultFormat {
	f := &ResultFormat{size: ResultValueSize * len(fields), width: 1}
	for i, fd := range fields {
		var k []byte
		if i == 0 {
			k = append(k, '{')
		} else {
			k = append(k, ',')
		}
		k = appendJSONName(k, fd.Name)
		k = append(k, ':')
		f.cols = append(f.cols, resultCol{key: string(k), typ: fd.Type})
		f.width += len(k) + maxValueText
	}
	return f
}

// Size is the number of bytes of one group's values: 8 per field.
func (f *ResultFormat) Size() int { return f.size }

// Width is an upper bound of the length of one group's text.
func (f *ResultFormat) Width() int { return f.width }

// Append appends the JSON object of one group's values (exactly Size()
// bytes) to dst. A bool value other than 0 or 1 is an error.
func (f *ResultFormat) Append(dst, vals []byte) ([]byte, error) {
	_ = vals[f.size-1]
	if cap(dst)-len(dst) < f.width {
		dst = slices.Grow(dst, f.width)
	}
	p := len(dst)
	b := dst[:p+f.width] // room for everything: no appends below
	for i := range f.cols {
		c := &f.cols[i]
		p += copy(b[p:], c.key)
		v := binary.LittleEndian.Uint64(vals[8*i:])
		switch c.typ {
		case ResultInt:
			p = putInt(b, p, int64(v))
		case ResultFloat:
			x := math.Float64frombits(v)
			if i := int64(x); float64(i) == x && i < 1e15 && i > -1e15 && (i != 0 || v == 0) {
				p = putInt(b, p, i) // as AppendJSONFloat, without the call
				break
			}
			t := AppendJSONFloat(b[p:p], x) // fits: maxValueText
			p += len(t)
		default:
			switch v {
			case 0:
				p += copy(b[p:], "false")
			case 1:
				p += copy(b[p:], "true")
			default:
				return dst, fmt.Errorf("result field %d is a bool but holds %d (0 false, 1 true)", i, v)
			}
		}
	}
	b[p] = '}'
	return b[:p+1], nil
}

// putInt writes i in decimal at b[p:] and returns the offset after it.
func putInt(b []byte, p int, i int64) int {
	u := uint64(i)
	if i < 0 {
		b[p] = '-'
		p++
		u = -u
	}
	if u < 10 {
		b[p] = byte('0' + u)
		return p + 1
	}
	var t [20]byte
	k := len(t)
	for u >= 10 {
		q := u / 10
		k--
		t[k] = byte('0' + u - q*10)
		u = q
	}
	k--
	t[k] = byte('0' + u)
	return p + copy(b[p:], t[k:])
}

// AppendJSONFloat writes x as a JSON number as encoding/json does (and as
// the host's window results do): integral values below 1e21 without a
// fraction, exponents below 1e-6 and from 1e21 on; NaN and ±Inf as null.
func AppendJSONFloat(b []byte, x float64) []byte {
	// Integral values below 1e15 first: the same text as AppendFloat's,
	// faster. (For NaN, ±Inf and values out of int64's range the
	// conversion gives some i with float64(i) != x.)
	if i := int64(x); float64(i) == x && i < 1e15 && i > -1e15 && (i != 0 || !math.Signbit(x)) {
		return strconv.AppendInt(b, i, 10)
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(b, "null"...)
	}
	if a := math.Abs(x); a != 0 && (a < 1e-6 || a >= 1e21) {
		n := len(b)
		b = strconv.AppendFloat(b, x, 'e', -1, 64)
		// e-07 -> e-7, as encoding/json writes it
		if m := len(b) - n; m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
		return b
	}
	return strconv.AppendFloat(b, x, 'f', -1, 64)
}

// appendJSONName writes a checked name (valid UTF-8, no control
// characters) as a JSON string.
func appendJSONName(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}
