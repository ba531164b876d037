// Package jsonfields extracts declared fields from JSON objects in one pass,
// without building a tree, and encodes them in the ABI's fields section.
//
// It is the host half of "the host decodes, the guest reads typed values":
// a guest that declares `sensor_id`, `value` and `ts` receives three tagged
// values per record instead of parsing JSON in Wasm.
package jsonfields

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/wsp-project/wsp/hostabi"
)

// Extractor finds a fixed list of dotted paths. It is immutable after New and
// safe for concurrent use; per-call scratch lives in the caller's buffers.
type Extractor struct {
	paths [][]string // split paths, in declaration order
	root  *node
}

// node is one level of the path trie.
type node struct {
	names    []string // child names, parallel to kids (a linear scan beats a map for a few keys)
	kids     []*node
	children map[string]*node
	field    int   // index of the path ending here, -1 if none
	sub      []int // every field at or below this node (reset when the key repeats)
}

// New builds an extractor for paths ("a", "a.b.c"). An empty path or segment
// is an error.
func New(paths []string) (*Extractor, error) {
	e := &Extractor{root: &node{field: -1}}
	for i, p := range paths {
		if p == "" {
			return nil, errors.New("jsonfields: empty field path")
		}
		segs := strings.Split(p, ".")
		n := e.root
		for _, s := range segs {
			if s == "" {
				return nil, errors.New("jsonfields: empty segment in field path " + strconv.Quote(p))
			}
			if n.children == nil {
				n.children = map[string]*node{}
			}
			c, ok := n.children[s]
			if !ok {
				c = &node{field: -1}
				n.children[s] = c
				n.names = append(n.names, s)
				n.kids = append(n.kids, c)
			}
			n = c
			n.sub = append(n.sub, i)
		}
		if n.field >= 0 {
			return nil, errors.New("jsonfields: field path declared twice: " + strconv.Quote(p))
		}
		n.field = i
		e.paths = append(e.paths, segs)
	}
	return e, nil
}

// Len is the number of declared fields.
func (e *Extractor) Len() int { return len(e.paths) }

// child finds the child named key.
func (n *node) child(key []byte) *node {
	if len(n.names) <= 8 {
		for i, name := range n.names {
			if name == string(key) {
				return n.kids[i]
			}
		}
		return nil
	}
	return n.children[unsafe.String(unsafe.SliceData(key), len(key))]
}

// span locates one field's value inside the input.
type span struct {
	start, end int  // value bytes [start, end) in the input
	kind       byte // first byte class: '"', '{', '[', 't', 'f', 'n', '0' (number)
	escaped    bool // string contains escapes
}

// Scratch is reusable per-goroutine working memory for Append.
type Scratch struct {
	spans []span
	found []bool
	str   []byte
}

// Append encodes the fields of JSON text v onto dst in declaration order and
// reports whether v was a well-formed JSON object. When it was not, every
// field is encoded as missing.
func (e *Extractor) Append(dst []byte, v []byte, s *Scratch) (out []byte, ok bool) {
	n := len(e.paths)
	if cap(s.spans) < n {
		s.spans = make([]span, n)
		s.found = make([]bool, n)
	}
	s.spans = s.spans[:n]
	s.found = s.found[:n]
	for i := range s.found {
		s.found[i] = false
	}
	p := parser{b: v, s: s}
	p.skipWS()
	if p.i >= len(v) || v[p.i] != '{' {
		return appendMissing(dst, n), false
	}
	if !p.object(e.root) {
		return appendMissing(dst, n), false
	}
	p.skipWS()
	if p.i != len(v) {
		return appendMissing(dst, n), false
	}
	for i := 0; i < n; i++ {
		if !s.found[i] {
			dst = append(dst, hostabi.FieldMissing)
			continue
		}
		dst = e.appendValue(dst, v, s.spans[i], s)
	}
	return dst, true
}

func appendMissing(dst []byte, n int) []byte {
	for i := 0; i < n; i++ {
		dst = append(dst, hostabi.FieldMissing)
	}
	return dst
}

func (e *Extractor) appendValue(dst, v []byte, sp span, s *Scratch) []byte {
	lit := v[sp.start:sp.end]
	switch sp.kind {
	case 'n':
		return append(dst, hostabi.FieldNull)
	case 't':
		return append(dst, hostabi.FieldTrue)
	case 'f':
		return append(dst, hostabi.FieldFalse)
	case '{', '[':
		return hostabi.AppendFieldBytes(dst, hostabi.FieldRaw, lit)
	case '"':
		body := lit[1 : len(lit)-1]
		if sp.escaped {
			s.str = unescape(s.str[:0], body)
			body = s.str
		}
		return hostabi.AppendFieldBytes(dst, hostabi.FieldString, body)
	default: // number
		if i, ok := parseInt(lit); ok {
			return hostabi.AppendFieldInt(dst, i)
		}
		f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(lit), len(lit)), 64)
		if err != nil && !math.IsInf(f, 0) {
			return append(dst, hostabi.FieldMissing)
		}
		return hostabi.AppendFieldFloat(dst, f)
	}
}

// parseInt parses a JSON integer literal (no fraction, no exponent) that fits int64.
func parseInt(b []byte) (int64, bool) {
	neg := false
	i := 0
	if len(b) > 0 && b[0] == '-' {
		neg = true
		i = 1
	}
	if i == len(b) || len(b)-i > 19 {
		return 0, false
	}
	var u uint64
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// parser is a validating single-pass JSON scanner.
type parser struct {
	b []byte
	i int
	s *Scratch
}

func (p *parser) skipWS() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object parses an object at p.i; n is the trie node for its members (nil
// when no declared path goes below this level).
func (p *parser) object(n *node) bool {
	p.i++ // '{'
	p.skipWS()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.skipWS()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return false
		}
		ks := p.i
		esc, ok := p.str()
		if !ok {
			return false
		}
		key := p.b[ks+1 : p.i-1]
		var child *node
		if n != nil && n.children != nil {
			if esc {
				p.s.str = unescape(p.s.str[:0], key)
				key = p.s.str
			}
			child = n.child(key)
		}
		p.skipWS()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return false
		}
		p.i++
		p.skipWS()
		if !p.value(child) {
			return false
		}
		p.skipWS()
		if p.i >= len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// value parses any value at p.i, recording it when n marks a declared field.
func (p *parser) value(n *node) bool {
	if p.i >= len(p.b) {
		return false
	}
	start := p.i
	c := p.b[p.i]
	sp := span{start: start}
	if n != nil {
		// A repeated key replaces the earlier value entirely, as in
		// encoding/json: forget what was found under it.
		for _, f := range n.sub {
			p.s.found[f] = false
		}
	}
	switch {
	case c == '"':
		esc, ok := p.str()
		if !ok {
			return false
		}
		sp.kind, sp.escaped = '"', esc
	case c == '{':
		var below *node
		if n != nil && n.children != nil {
			below = n
		}
		if !p.object(below) {
			return false
		}
		sp.kind = '{'
	case c == '[':
		if !p.array() {
			return false
		}
		sp.kind = '['
	case c == 't':
		if !p.lit("true") {
			return false
		}
		sp.kind = 't'
	case c == 'f':
		if !p.lit("false") {
			return false
		}
		sp.kind = 'f'
	case c == 'n':
		if !p.lit("null") {
			return false
		}
		sp.kind = 'n'
	case c == '-' || (c >= '0' && c <= '9'):
		if !p.number() {
			return false
		}
		sp.kind = '0'
	default:
		return false
	}
	if n != nil && n.field >= 0 {
		sp.end = p.i
		p.s.spans[n.field] = sp
		p.s.found[n.field] = true
	}
	return true
}

func (p *parser) array() bool {
	p.i++ // '['
	p.skipWS()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return true
	}
	for {
		p.skipWS()
		if !p.value(nil) {
			return false
		}
		p.skipWS()
		if p.i >= len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return true
		default:
			return false
		}
	}
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str scans a string starting at the quote; reports whether it had escapes.
func (p *parser) str() (escaped, ok bool) {
	p.i++
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return escaped, true
		case c == '\\':
			escaped = true
			if p.i+1 >= len(p.b) {
				return false, false
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return false, false
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if hexVal(h) < 0 {
						return false, false
					}
				}
				p.i += 6
			default:
				return false, false
			}
		case c < 0x20:
			return false, false
		default:
			p.i++
		}
	}
	return false, false
}

func (p *parser) number() bool {
	b, i := p.b, p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	p.i = i
	return true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unescape decodes a JSON string body (already validated) onto dst.
// Invalid surrogates become U+FFFD, as encoding/json does.
func unescape(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch b[i] {
		case '"', '\\', '/':
			dst = append(dst, b[i])
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
			r := rune(hex4(b[i+1:]))
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
					r2 := rune(hex4(b[i+3:]))
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						i += 6
						dst = utf8.AppendRune(dst, d)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

func hex4(b []byte) int {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}
