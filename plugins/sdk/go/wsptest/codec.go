package wsptest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

var le = binary.LittleEndian

// Layout of ABI v1 (hostabi/ABI.md).
const (
	batchHeaderSize  = 8
	recordHeaderSize = 32
	keepRecordSize   = 8
	kindKeep         = 2

	flagHasTime = 1 << 0
	flagHasKey  = 1 << 1
	flagNotJSON = 1 << 2
	sameFlags   = uint8(wsp.SameAll)
	outputFlags = flagHasTime | flagHasKey | sameFlags

	tagMissing = 0
	tagNull    = 1
	tagFalse   = 2
	tagTrue    = 3
	tagInt     = 4
	tagFloat   = 5
	tagString  = 6
	tagRaw     = 7
)

// EncodeBatch encodes recs as the input batch the host stages for
// batch_read. When fields is not empty, each record carries a fields
// section for those paths, extracted from its value by ExtractFields; with
// no fields, records have no fields section and no not_json flag, as with
// the wsp host. Exported for ABI conformance tests.
func EncodeBatch(recs []Record, fields []string) []byte {
	b := make([]byte, batchHeaderSize, 1024)
	le.PutUint32(b, uint32(len(recs)))
	for i := range recs {
		b = appendRecord(b, uint32(i), &recs[i], fields)
	}
	return b
}

// appendRecord appends r as a record of an input batch with the given
// index (its position in the batch, or in an aggregate batch its position
// in its group or its group's number), with a fields section for fields.
func appendRecord(b []byte, index uint32, r *Record, fields []string) []byte {
	var flags uint8
	if r.Time != nil {
		flags |= flagHasTime
	}
	if r.Key != nil {
		flags |= flagHasKey
	}
	var meta []byte
	for _, m := range r.Meta {
		meta = le.AppendUint32(meta, uint32(len(m.Name)))
		meta = append(meta, m.Name...)
		meta = le.AppendUint32(meta, uint32(len(m.Value)))
		meta = append(meta, m.Value...)
	}
	var fsec []byte
	if len(fields) > 0 {
		var notJSON bool
		fsec, notJSON = ExtractFields(r.Value, fields)
		if notJSON {
			flags |= flagNotJSON
		}
	}
	var t int64
	if r.Time != nil {
		t = *r.Time
	}
	b = le.AppendUint32(b, index)
	b = le.AppendUint16(b, 0)
	b = append(b, 0, flags)
	b = le.AppendUint64(b, uint64(t))
	b = le.AppendUint32(b, uint32(len(r.Key)))
	b = le.AppendUint32(b, uint32(len(r.Value)))
	b = le.AppendUint32(b, uint32(len(meta)))
	b = le.AppendUint32(b, uint32(len(fsec)))
	b = append(b, r.Key...)
	b = append(b, r.Value...)
	b = append(b, meta...)
	return append(b, fsec...)
}

// ExtractFields encodes the fields section for JSON value v and the dotted
// field paths, as the wsp host does: one entry per path, Missing for every
// path when v is not a well-formed JSON object (notJSON is then true), the
// last occurrence of a repeated key winning, integers (no '.', 'e' or 'E'
// and fitting int64) as Int, other numbers as Float, strings unescaped, and
// objects and arrays as their JSON text. Exported for conformance tests.
func ExtractFields(v []byte, paths []string) (section []byte, notJSON bool) {
	t := strings.TrimLeft(string(v), " \t\r\n")
	if !strings.HasPrefix(t, "{") || !json.Valid(v) {
		return make([]byte, len(paths)), true // all tagMissing
	}
	for _, p := range paths {
		section = appendField(section, json.RawMessage(t), strings.Split(p, "."))
	}
	return section, false
}

func appendField(dst []byte, cur json.RawMessage, path []string) []byte {
	for _, seg := range path {
		if len(cur) == 0 || cur[0] != '{' {
			return append(dst, tagMissing)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil {
			return append(dst, tagMissing)
		}
		next, ok := obj[seg]
		if !ok {
			return append(dst, tagMissing)
		}
		cur = next
	}
	lit := string(cur)
	switch lit[0] {
	case 'n':
		return append(dst, tagNull)
	case 't':
		return append(dst, tagTrue)
	case 'f':
		return append(dst, tagFalse)
	case '{', '[':
		return appendBytes(dst, tagRaw, cur)
	case '"':
		return appendBytes(dst, tagString, unescape(nil, cur[1:len(cur)-1]))
	}
	if !strings.ContainsAny(lit, ".eE") {
		if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
			dst = append(dst, tagInt)
			return le.AppendUint64(dst, uint64(i))
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !math.IsInf(f, 0) {
		return append(dst, tagMissing)
	}
	dst = append(dst, tagFloat)
	return le.AppendUint64(dst, math.Float64bits(f))
}

func appendBytes(dst []byte, tag uint8, v []byte) []byte {
	dst = append(dst, tag)
	dst = le.AppendUint32(dst, uint32(len(v)))
	return append(dst, v...)
}

// unescape decodes a valid JSON string body the way the wsp host does:
// bytes other than escapes are copied as they are (invalid UTF-8 included),
// and an unpaired surrogate escape becomes U+FFFD.
func unescape(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch b[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(b[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
					if d := utf16.DecodeRune(r, hex4(b[i+3:])); d != utf8.RuneError {
						i += 6
						dst = utf8.AppendRune(dst, d)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, b[i])
		}
	}
	return dst
}

func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(n)
}

// decoder checks and decodes output chunks with the rules of the wsp
// host's output reader.
type decoder struct {
	recs  []Record
	ports []string
	res   *Result
	last  int
	seen  []bool
	err   error
	state bool      // state entries allowed (a keyed-state plugin)
	ops   []stateOp // the state entries, in order
}

func (d *decoder) write(chunk []byte) int32 {
	d.res.Chunks = append(d.res.Chunks, append([]byte(nil), chunk...))
	if d.err != nil {
		return -2
	}
	if err := d.decode(chunk); err != nil {
		d.err = err
		return -2
	}
	return 0
}

func (d *decoder) decode(b []byte) error {
	for n, off := 0, 0; off < len(b); n++ {
		fail := func(reason string) error {
			return errors.New("record " + strconv.Itoa(n) + " at byte " + strconv.Itoa(off) + ": " + reason)
		}
		rest := b[off:]
		if len(rest) >= keepRecordSize && rest[6] == kindKeep {
			index := le.Uint32(rest[0:])
			port := le.Uint16(rest[4:])
			switch {
			case rest[7] != 0:
				return fail("a keep record has no flags")
			case uint64(index) >= uint64(len(d.recs)):
				return fail("index " + strconv.Itoa(int(index)) + " out of range (batch has " + strconv.Itoa(len(d.recs)) + " records)")
			case int(port) > len(d.ports):
				return fail("port " + strconv.Itoa(int(port)) + " not declared")
			case int(index) < d.last:
				return fail("output for input " + strconv.Itoa(int(index)) + " follows output for input " +
					strconv.Itoa(d.last) + ": records must be emitted in ascending index order")
			}
			d.last = int(index)
			d.seen[index] = true
			o := Output{Index: int(index), Record: d.recs[index], Same: wsp.SameAll}
			if port > 0 {
				o.Port = d.ports[port-1]
			}
			d.res.Out = append(d.res.Out, o)
			off += keepRecordSize
			continue
		}
		if len(rest) < recordHeaderSize {
			return fail(strconv.Itoa(len(rest)) + " trailing bytes, shorter than a record header")
		}
		index := le.Uint32(rest[0:])
		port := le.Uint16(rest[4:])
		kind, flags := rest[6], rest[7]
		t := int64(le.Uint64(rest[8:]))
		kl, vl := uint64(le.Uint32(rest[16:])), uint64(le.Uint32(rest[20:]))
		ml, fl := uint64(le.Uint32(rest[24:])), le.Uint32(rest[28:])
		if kind == kindState && d.state {
			if why := checkStateOp(port, flags, t, kl, vl, ml); why != "" {
				return fail(why)
			}
			switch {
			case uint64(index) >= uint64(len(d.recs)):
				return fail("index " + strconv.Itoa(int(index)) + " out of range (batch has " + strconv.Itoa(len(d.recs)) + " records)")
			case fl != 0 || uint64(len(rest)-recordHeaderSize) < kl+vl:
				return fail("lengths run past the chunk end")
			case int(index) < d.last:
				return fail("output for input " + strconv.Itoa(int(index)) + " follows output for input " +
					strconv.Itoa(d.last) + ": records must be emitted in ascending index order")
			}
			d.last = int(index)
			p := uint64(recordHeaderSize)
			d.ops = append(d.ops, stateOp{index: int(index), op: port, t: t,
				k: append([]byte{}, rest[p:p+kl]...), v: append([]byte{}, rest[p+kl:p+kl+vl]...)})
			off += int(p + kl + vl)
			continue
		}
		switch {
		case kind > kindKeep:
			return fail("unknown kind " + strconv.Itoa(int(kind)))
		case flags&^outputFlags != 0:
			return fail("unknown flags " + strconv.Itoa(int(flags&^outputFlags)))
		case uint64(index) >= uint64(len(d.recs)):
			return fail("index " + strconv.Itoa(int(index)) + " out of range (batch has " + strconv.Itoa(len(d.recs)) + " records)")
		case int(port) > len(d.ports):
			return fail("port " + strconv.Itoa(int(port)) + " not declared")
		case fl != 0:
			return fail("fields_len must be 0 in output records")
		case flags&uint8(wsp.SameKey) != 0 && kl != 0,
			flags&uint8(wsp.SameValue) != 0 && vl != 0,
			flags&uint8(wsp.SameMeta) != 0 && ml != 0:
			return fail("a part taken from the input record must have length 0")
		case uint64(len(rest)-recordHeaderSize) < kl+vl+ml:
			return fail("lengths run past the chunk end")
		case int(index) < d.last:
			return fail("output for input " + strconv.Itoa(int(index)) + " follows output for input " +
				strconv.Itoa(d.last) + ": records must be emitted in ascending index order")
		}
		d.last = int(index)
		d.seen[index] = true
		p := uint64(recordHeaderSize)
		key, value, meta := rest[p:p+kl], rest[p+kl:p+kl+vl], rest[p+kl+vl:p+kl+vl+ml]
		off += int(p + kl + vl + ml)
		in := &d.recs[index]
		if kind == 1 {
			d.res.Failed = append(d.res.Failed, Failure{Index: int(index), Reason: string(value)})
			continue
		}
		o := Output{Index: int(index), Same: wsp.Same(flags & sameFlags)}
		if port > 0 {
			o.Port = d.ports[port-1]
		}
		switch {
		case flags&uint8(wsp.SameKey) != 0:
			o.Key = in.Key
		case flags&flagHasKey != 0:
			o.Key = append([]byte{}, key...)
		}
		if flags&uint8(wsp.SameValue) != 0 {
			o.Value = in.Value
		} else {
			o.Value = append([]byte{}, value...)
		}
		switch {
		case flags&uint8(wsp.SameTime) != 0:
			o.Time = in.Time
		case flags&flagHasTime != 0:
			o.Time = Time(t)
		}
		if flags&uint8(wsp.SameMeta) != 0 {
			o.Meta = in.Meta
		} else {
			for len(meta) > 0 {
				if len(meta) < 4 {
					return fail("malformed metadata")
				}
				nl := uint64(le.Uint32(meta))
				if uint64(len(meta)) < 8+nl {
					return fail("malformed metadata")
				}
				name := meta[4 : 4+nl]
				mvl := uint64(le.Uint32(meta[4+nl:]))
				if uint64(len(meta)) < 8+nl+mvl {
					return fail("malformed metadata")
				}
				o.Meta = append(o.Meta, Meta{Name: string(name), Value: string(meta[8+nl : 8+nl+mvl])})
				meta = meta[8+nl+mvl:]
			}
		}
		d.res.Out = append(d.res.Out, o)
	}
	return nil
}
