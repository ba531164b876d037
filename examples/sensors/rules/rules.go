// Package rules holds the cleaning rules of the sensors example as a pure
// function over already-extracted fields, so that the Wasm plugin (which gets
// the fields decoded by the host, see hostabi/ABI.md) and the native baselines
// apply exactly the same logic and produce byte-identical output.
//
// The package uses only the standard library and no reflection, and compiles
// for GOOS=wasip1 GOARCH=wasm.
//
// # The rules
//
// A reading is one JSON line such as
//
//	{"sensor_id":"s-0042","value":21.53,"ts":1700000000123,"unit":"F"}
//
// Checks happen in this order; the first failing one gives the reason:
//
//  1. The line must be a JSON object, else Fail "not a JSON object".
//     (Decided by whoever extracts the fields; see ReasonNotObject.)
//  2. sensor_id: a non-empty string. "sensor_id: missing",
//     "sensor_id: want string, got <type>" (number, bool, null, object, array),
//     "sensor_id: empty".
//  3. ts: an Int (JSON number without fraction or exponent that fits int64).
//     "ts: missing", "ts: want integer epoch ms, got <type>" (string, bool,
//     null, object, array, or "fraction" for any other number).
//  4. value: a JSON number. "value: missing", "value: want number, got <type>".
//     An Int is converted as float64(Int) (so the literal -0 gives 0, while
//     -0.0 gives -0); a Float is used as is.
//  5. unit: absent or "C" means Celsius; "F" means value = (value - 32) * 5 / 9
//     in float64 in exactly that order; anything else (including null and
//     non-strings) fails with "unit: unknown unit".
//  6. A Celsius value outside [-90, 60] is dropped (Drop, not a failure).
//     ±Inf (a number literal too large for float64) is therefore dropped too.
//  7. Kept readings become exactly
//     {"sensor_id":<string>,"ts":<integer>,"value":<number>}
//     with keys sorted, no spaces, the string and the float64 formatted as Go's
//     encoding/json.Marshal formats them (HTML-escaping included).
package rules

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Kind is the type of an extracted field (the tags of hostabi/ABI.md, with
// false and true folded into Bool).
type Kind uint8

const (
	Missing Kind = iota // the key is absent (or the line is not an object)
	Null                // JSON null
	Bool                // JSON true/false (Field.Bool)
	Int                 // JSON number without fraction/exponent that fits int64 (Field.Int)
	Float               // any other JSON number (Field.Float; ±Inf if out of float64 range)
	String              // JSON string (Field.Str holds the unescaped UTF-8 bytes)
	Raw                 // JSON object or array (Field.RawKind is '{' or '['; Field.Str may hold the text)
)

var kindNames = [...]string{"missing", "null", "bool", "int", "float", "string", "raw"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Field is one extracted top-level field of a reading.
type Field struct {
	Kind  Kind
	Int   int64
	Float float64
	// Str is the unescaped string for String (not required to be valid UTF-8:
	// invalid bytes are written as \ufffd, as encoding/json does). For Raw it
	// may hold the JSON text of the object or array.
	Str     []byte
	Bool    bool
	RawKind byte // '{' (object) or '[' (array) for Raw; if 0, Str[0] is used
}

// Convenience constructors.
func MissingField() Field         { return Field{} }
func NullField() Field            { return Field{Kind: Null} }
func BoolField(b bool) Field      { return Field{Kind: Bool, Bool: b} }
func IntField(i int64) Field      { return Field{Kind: Int, Int: i} }
func FloatField(f float64) Field  { return Field{Kind: Float, Float: f} }
func StringField(s []byte) Field  { return Field{Kind: String, Str: s} }
func RawField(text []byte) Field  { return Field{Kind: Raw, Str: text} }
func ObjectField() Field          { return Field{Kind: Raw, RawKind: '{'} }
func ArrayField() Field           { return Field{Kind: Raw, RawKind: '['} }
func (f Field) isRawObject() bool { return f.rawKind() == '{' }
func (f Field) rawKind() byte {
	if f.RawKind != 0 {
		return f.RawKind
	}
	for _, c := range f.Str {
		if c == '{' || c == '[' {
			return c
		}
	}
	return '{'
}

// TypeName is the JSON type name used in failure reasons: "string", "number",
// "bool", "null", "object", "array" (and "missing").
func TypeName(f Field) string {
	switch f.Kind {
	case Null:
		return "null"
	case Bool:
		return "bool"
	case Int, Float:
		return "number"
	case String:
		return "string"
	case Raw:
		if f.isRawObject() {
			return "object"
		}
		return "array"
	}
	return "missing"
}

// Verdict is the outcome of cleaning one reading.
type Verdict uint8

const (
	Keep Verdict = iota // the reading is valid; the output line was appended
	Fail                // the reading is invalid; the reason says why (goes to the error output)
	Drop                // the reading is valid but implausible; it is counted as a drop
)

func (v Verdict) String() string {
	switch v {
	case Keep:
		return "keep"
	case Fail:
		return "fail"
	case Drop:
		return "drop"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Plausible Celsius range (inclusive).
const (
	MinCelsius = -90.0
	MaxCelsius = 60.0
)

// Failure reasons. The type-dependent ones are "<prefix><type>".
const (
	ReasonNotObject     = "not a JSON object"
	ReasonSensorMissing = "sensor_id: missing"
	ReasonSensorEmpty   = "sensor_id: empty"
	ReasonTSMissing     = "ts: missing"
	ReasonValueMissing  = "value: missing"
	ReasonUnknownUnit   = "unit: unknown unit"

	PrefixSensorType = "sensor_id: want string, got "
	PrefixTSType     = "ts: want integer epoch ms, got "
	PrefixValueType  = "value: want number, got "
)

// Preformatted type reasons, so that Clean never allocates.
const (
	reasonSensorNumber = PrefixSensorType + "number"
	reasonSensorBool   = PrefixSensorType + "bool"
	reasonSensorNull   = PrefixSensorType + "null"
	reasonSensorObject = PrefixSensorType + "object"
	reasonSensorArray  = PrefixSensorType + "array"

	reasonTSString   = PrefixTSType + "string"
	reasonTSBool     = PrefixTSType + "bool"
	reasonTSNull     = PrefixTSType + "null"
	reasonTSObject   = PrefixTSType + "object"
	reasonTSArray    = PrefixTSType + "array"
	reasonTSFraction = PrefixTSType + "fraction"

	reasonValueString = PrefixValueType + "string"
	reasonValueBool   = PrefixValueType + "bool"
	reasonValueNull   = PrefixValueType + "null"
	reasonValueObject = PrefixValueType + "object"
	reasonValueArray  = PrefixValueType + "array"
)

// Clean applies rules 2-7 to the four fields of a reading that is a JSON
// object (for a line that is not a JSON object, fail with ReasonNotObject
// without calling Clean). On Keep it appends the output line, without a
// newline, to dst and returns the extended slice; on Fail and Drop it returns
// dst unchanged, and reason is empty except for Fail. Clean does not allocate
// unless dst must grow.
func Clean(dst []byte, sensorID, value, ts, unit Field) (out []byte, v Verdict, reason string) {
	// 2. sensor_id
	switch sensorID.Kind {
	case String:
		if len(sensorID.Str) == 0 {
			return dst, Fail, ReasonSensorEmpty
		}
	case Missing:
		return dst, Fail, ReasonSensorMissing
	case Int, Float:
		return dst, Fail, reasonSensorNumber
	case Bool:
		return dst, Fail, reasonSensorBool
	case Null:
		return dst, Fail, reasonSensorNull
	default:
		if sensorID.isRawObject() {
			return dst, Fail, reasonSensorObject
		}
		return dst, Fail, reasonSensorArray
	}

	// 3. ts
	switch ts.Kind {
	case Int:
	case Missing:
		return dst, Fail, ReasonTSMissing
	case Float:
		return dst, Fail, reasonTSFraction
	case String:
		return dst, Fail, reasonTSString
	case Bool:
		return dst, Fail, reasonTSBool
	case Null:
		return dst, Fail, reasonTSNull
	default:
		if ts.isRawObject() {
			return dst, Fail, reasonTSObject
		}
		return dst, Fail, reasonTSArray
	}

	// 4. value
	var c float64
	switch value.Kind {
	case Int:
		c = float64(value.Int) // correctly rounded, same as parsing the literal
	case Float:
		c = value.Float
	case Missing:
		return dst, Fail, ReasonValueMissing
	case String:
		return dst, Fail, reasonValueString
	case Bool:
		return dst, Fail, reasonValueBool
	case Null:
		return dst, Fail, reasonValueNull
	default:
		if value.isRawObject() {
			return dst, Fail, reasonValueObject
		}
		return dst, Fail, reasonValueArray
	}

	// 5. unit
	switch unit.Kind {
	case Missing:
	case String:
		if len(unit.Str) != 1 || (unit.Str[0] != 'C' && unit.Str[0] != 'F') {
			return dst, Fail, ReasonUnknownUnit
		}
		if unit.Str[0] == 'F' {
			c = (c - 32) * 5 / 9
		}
	default:
		return dst, Fail, ReasonUnknownUnit
	}

	// 6. plausibility (NaN, which JSON cannot produce, is dropped as well)
	if !(c >= MinCelsius && c <= MaxCelsius) {
		return dst, Drop, ""
	}

	// 7. output
	dst = append(dst, `{"sensor_id":`...)
	dst = AppendJSONString(dst, sensorID.Str)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts.Int, 10)
	dst = append(dst, `,"value":`...)
	dst = AppendJSONFloat(dst, c)
	dst = append(dst, '}')
	return dst, Keep, ""
}

// AppendJSONFloat appends f formatted exactly as encoding/json formats a
// float64 (ES6 style: 'f' format, or 'e' format with a non-padded exponent
// when |f| < 1e-6 or |f| >= 1e21). NaN and ±Inf, which JSON cannot
// represent, are appended as the strconv 'g' text (encoding/json would fail).
func AppendJSONFloat(dst []byte, f float64) []byte {
	if out, ok := appendShortDecimal(dst, f); ok {
		return out
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// pow10 are the exact powers of ten used by appendShortDecimal.
var pow10 = [...]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6}

// appendShortDecimal formats f without strconv when it is a decimal with at
// most 6 fraction digits and |f| < 1e8 (most sensor readings): it finds the
// fewest fraction digits p for which m/10^p == f exactly, with m an integer.
// In that range different m give different doubles (10^-6 is larger than
// the spacing of doubles below 1e8), so m/10^p is the shortest decimal that
// reads back as f, which is what strconv's shortest 'f' formatting prints.
// Otherwise it reports false and the caller uses strconv. Zero is left to
// strconv (for -0). TestAppendJSONFloat checks it against encoding/json.
func appendShortDecimal(dst []byte, f float64) ([]byte, bool) {
	if !(f > -1e8 && f < 1e8) || f == 0 {
		return dst, false
	}
	for p := 0; p < len(pow10); p++ {
		m := math.Round(f * pow10[p])
		if m/pow10[p] != f {
			continue
		}
		neg := m < 0
		u := uint64(math.Abs(m))
		var digits [24]byte
		i := len(digits)
		for n := 0; u > 0 || n <= p; n++ {
			if n == p && p > 0 {
				i--
				digits[i] = '.'
			}
			i--
			digits[i] = byte('0' + u%10)
			u /= 10
		}
		if neg {
			dst = append(dst, '-')
		}
		return append(dst, digits[i:]...), true
	}
	return dst, false
}

const hexDigits = "0123456789abcdef"

// needsEscape[c] reports whether ASCII byte c must be escaped by encoding/json
// with HTML escaping on: control characters, '"', '\\', '<', '>' and '&'.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'], t['<'], t['>'], t['&'] = true, true, true, true, true
	return t
}()

// AppendJSONString appends s as a quoted JSON string exactly as
// encoding/json.Marshal does: HTML-escaping <, > and & as \u003c, \u003e and
// \u0026, escaping U+2028 and U+2029, and replacing each invalid UTF-8 byte
// by \ufffd.
func AppendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if !needsEscape[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRune(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
