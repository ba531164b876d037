package rules

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the nesting limit of encoding/json (an object or array nested
// deeper than this makes the line invalid JSON).
const MaxDepth = 10000

// CleanJSON is the native-Go baseline: it extracts the four top-level fields
// of one JSON line with a hand-written scanner (no encoding/json, no
// allocation in the common case) and applies Clean. A line that is not
// exactly one valid JSON object (surrounding JSON whitespace allowed) fails
// with ReasonNotObject. Validity is decided as encoding/json decides it
// (including invalid UTF-8 inside strings being accepted and the 10000 nesting
// limit); a key that repeats takes its last value.
func CleanJSON(dst, line []byte) (out []byte, v Verdict, reason string) {
	var f [4]Field
	if !extract(line, &f) {
		return dst, Fail, ReasonNotObject
	}
	return Clean(dst, f[slotSensorID], f[slotValue], f[slotTS], f[slotUnit])
}

// ExtractFields extracts the top-level sensor_id, value, ts and unit fields of
// one JSON line as CleanJSON does. ok is false if the line is not exactly one
// valid JSON object. String fields may alias line.
func ExtractFields(line []byte) (sensorID, value, ts, unit Field, ok bool) {
	var f [4]Field
	if !extract(line, &f) {
		return Field{}, Field{}, Field{}, Field{}, false
	}
	return f[slotSensorID], f[slotValue], f[slotTS], f[slotUnit], true
}

const (
	slotSensorID = iota
	slotValue
	slotTS
	slotUnit
)

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// extract parses one top-level object, filling the four slots.
func extract(b []byte, f *[4]Field) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return false
			}
			end, flags := scanString(b, i)
			if end < 0 {
				return false
			}
			slot := -1
			if flags&strEscaped == 0 {
				slot = keySlot(b[i+1 : end-1])
			} else {
				slot = keySlot(decodeString(b[i+1:end-1], flags))
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return false
			}
			i = skipWS(b, i+1)
			if slot >= 0 {
				i = parseField(b, i, &f[slot])
			} else {
				i = skipValue(b, i, 2)
			}
			if i < 0 {
				return false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return false
			}
			if b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if b[i] == '}' {
				i++
				break
			}
			return false
		}
	}
	return skipWS(b, i) == len(b)
}

func keySlot(k []byte) int {
	switch string(k) {
	case "sensor_id":
		return slotSensorID
	case "value":
		return slotValue
	case "ts":
		return slotTS
	case "unit":
		return slotUnit
	}
	return -1
}

// parseField parses the value at b[i] (a top-level member value) into f and
// returns the index after it, or -1.
func parseField(b []byte, i int, f *Field) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		end, flags := scanString(b, i)
		if end < 0 {
			return -1
		}
		*f = Field{Kind: String, Str: decodeString(b[i+1:end-1], flags)}
		return end
	case c == '{' || c == '[':
		end := skipValue(b, i, 2)
		if end < 0 {
			return -1
		}
		*f = Field{Kind: Raw, RawKind: c, Str: b[i:end]}
		return end
	case c == '-' || (c >= '0' && c <= '9'):
		end, isInt := scanNumber(b, i)
		if end < 0 {
			return -1
		}
		*f = numberField(b[i:end], isInt)
		return end
	case c == 't':
		if hasLit(b, i, "true") {
			*f = Field{Kind: Bool, Bool: true}
			return i + 4
		}
	case c == 'f':
		if hasLit(b, i, "false") {
			*f = Field{Kind: Bool}
			return i + 5
		}
	case c == 'n':
		if hasLit(b, i, "null") {
			*f = Field{Kind: Null}
			return i + 4
		}
	}
	return -1
}

func hasLit(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// numberField converts a validated JSON number literal.
func numberField(lit []byte, isInt bool) Field {
	if isInt {
		if n, ok := parseInt64(lit); ok {
			return Field{Kind: Int, Int: n}
		}
	}
	// ParseFloat only fails on a valid literal with ErrRange on overflow, and
	// then returns ±Inf, which is what we want.
	x, _ := strconv.ParseFloat(string(lit), 64)
	return Field{Kind: Float, Float: x}
}

// parseInt64 parses a validated integer literal (-?digits), reporting false on
// overflow.
func parseInt64(lit []byte) (int64, bool) {
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	if len(lit) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range lit {
		u = u*10 + uint64(c-'0') // at most 19 digits: cannot wrap uint64
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// scanNumber validates the JSON number at b[i] and returns the index after it
// and whether it has neither fraction nor exponent.
func scanNumber(b []byte, i int) (end int, isInt bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1, false
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return -1, false
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -1, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -1, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i, isInt
}

const (
	strEscaped  = 1 << iota // contains a backslash escape
	strNonASCII             // contains a byte >= 0x80
)

// scanString validates the JSON string starting at b[i] == '"' and returns
// the index after the closing quote (or -1) and flags.
func scanString(b []byte, i int) (end int, flags int) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, flags
		case c == '\\':
			flags |= strEscaped
			i++
			if i >= len(b) {
				return -1, 0
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 || hex4(b[i+1:i+5]) < 0 {
					return -1, 0
				}
				i += 5
			default:
				return -1, 0
			}
		case c < 0x20:
			return -1, 0
		case c >= utf8.RuneSelf:
			flags |= strNonASCII
			i++
		default:
			i++
		}
	}
	return -1, 0
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// decodeString unescapes the validated contents s of a JSON string as
// encoding/json does (invalid UTF-8 bytes and unpaired surrogates become
// U+FFFD). Without escapes and invalid UTF-8 it returns s itself.
func decodeString(s []byte, flags int) []byte {
	if flags&strEscaped == 0 && (flags&strNonASCII == 0 || utf8.Valid(s)) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				rr := hex4(s[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if len(s)-r >= 6 && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							r += 6
							continue
						}
					}
					rr = utf8.RuneError
				}
				out = utf8.AppendRune(out, rr)
				continue
			default: // '"', '\\', '/'
				out = append(out, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			out = utf8.AppendRune(out, rr)
			r += size
		}
	}
	return out
}

// skipValue validates the JSON value at b[i] and returns the index after it,
// or -1. depth is the nesting level a container starting at b[i] would have
// (the top-level object is level 1).
func skipValue(b []byte, i int, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		end, _ := scanString(b, i)
		return end
	case c == '-' || (c >= '0' && c <= '9'):
		end, _ := scanNumber(b, i)
		return end
	case c == 't':
		if hasLit(b, i, "true") {
			return i + 4
		}
	case c == 'f':
		if hasLit(b, i, "false") {
			return i + 5
		}
	case c == 'n':
		if hasLit(b, i, "null") {
			return i + 4
		}
	case c == '{':
		if depth > MaxDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i, _ = scanString(b, i); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = skipValue(b, skipWS(b, i+1), depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case '}':
				return i + 1
			default:
				return -1
			}
		}
	case c == '[':
		if depth > MaxDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case ']':
				return i + 1
			default:
				return -1
			}
		}
	}
	return -1
}
