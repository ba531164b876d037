package plugin

// Interrupting a guest cheaply.
//
// wazero stops a running guest only in its termination mode
// (WithCloseOnContextDone), which leaves native code at every loop header to
// ask Go whether the module was closed, and starts a goroutine per call. Go
// guests compile every function around a loop, so they ran 2-3 times slower
// with a time limit than without.
//
// Instead, wsp rewrites the module when it loads: it adds an i32 local (a
// counter, in a register) to every function and puts at the head of every
// loop
//
//	counter += 1
//	if counter & (tickEvery-1) == 0 { drop(batch_read(0, 0)) }
//
// so that every tickEvery loop iterations the guest calls the host import
// batch_read it already has (no function index moves). The host checks the
// call's deadline there, on the calling goroutine, and aborts a call past it.
// Leaving native code now and then matters as much as the check itself:
// Go cannot stop the world (for GC) while a goroutine runs in native code,
// so a guest that never left it would freeze the whole process. Straight
// code without loops always ends; recursion ends in a stack-overflow trap.
//
// If the module cannot be rewritten (no batch_read import, an instruction
// this decoder does not know, a global or local index that does not exist), or may
// block inside a host call (a granted real clock lets it sleep), wsp falls
// back to wazero's termination mode: never less safe.

import (
	"errors"
	"fmt"
)

// tickEvery is how many loop iterations pass between two deadline checks.
const tickEvery = 1024

var errInstrument = errors.New("instrument")

type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, fmt.Errorf("%w: unexpected end at byte %d", errInstrument, r.off)
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// uleb reads an unsigned LEB128 of up to 64 bits.
func (r *reader) uleb() (uint64, error) {
	var v uint64
	for shift := 0; shift < 70; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: LEB128 too long at byte %d", errInstrument, r.off)
}

// skipLEB skips a signed or unsigned LEB128.
func (r *reader) skipLEB() error {
	_, err := r.uleb()
	return err
}

func (r *reader) skip(n int) error {
	if n < 0 || r.off+n > len(r.b) {
		return fmt.Errorf("%w: %d bytes past the end at byte %d", errInstrument, n, r.off)
	}
	r.off += n
	return nil
}

func appendULEB(dst []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			dst = append(dst, c|0x80)
			continue
		}
		return append(dst, c)
	}
}

type section struct {
	id   byte
	body []byte
}

// sections splits a module (header checked by the caller) into its sections.
func sections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 {
		return nil, fmt.Errorf("%w: too short", errInstrument)
	}
	var secs []section
	r := &reader{b: wasm, off: 8}
	for r.off < len(wasm) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		n, err := r.uleb()
		if err != nil {
			return nil, err
		}
		start := r.off
		if err := r.skip(int(n)); err != nil {
			return nil, err
		}
		secs = append(secs, section{id, wasm[start:r.off]})
	}
	return secs, nil
}

// hasStart reports whether the module has a start section. A start
// function runs inside instantiation, outside any time limit, so ABI v1
// refuses such modules (reactors use _initialize, which is limited). A
// module whose sections do not parse is left to the compiler to refuse.
func hasStart(wasm []byte) bool {
	secs, _ := sections(wasm)
	for _, s := range secs {
		if s.id == 8 {
			return true
		}
	}
	return false
}

// instrument returns the module with the stop global and loop checks added.
func instrument(wasm []byte) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	// Count globals (imported and defined) to learn the new global's index.
	var globals, batchRead uint64
	var haveBatchRead bool
	var params []uint64    // parameter count per type index
	var funcTypes []uint64 // type index per defined function
	for _, s := range secs {
		switch s.id {
		case 2:
			g, br, ok, err := importInfo(s.body)
			if err != nil {
				return nil, err
			}
			globals += g
			batchRead, haveBatchRead = br, ok
		case 6:
			sr := &reader{b: s.body}
			n, err := sr.uleb()
			if err != nil {
				return nil, err
			}
			globals += n
		case 1:
			p, err := paramCounts(s.body)
			if err != nil {
				return nil, err
			}
			params = p
		case 3:
			sr := &reader{b: s.body}
			n, err := sr.uleb()
			if err != nil {
				return nil, err
			}
			for i := uint64(0); i < n; i++ {
				t, err := sr.uleb()
				if err != nil {
					return nil, err
				}
				if t >= uint64(len(params)) {
					return nil, fmt.Errorf("%w: function %d has unknown type %d", errInstrument, i, t)
				}
				funcTypes = append(funcTypes, t)
			}
		}
	}
	if !haveBatchRead {
		return nil, fmt.Errorf("%w: the module does not import %s.batch_read", errInstrument, "wsp")
	}
	// Per loop head, with L a local the rewrite adds to each function:
	// L += 1; if L & (tickEvery-1) == 0 { drop(batch_read(0, 0)) }
	br := appendULEB(nil, batchRead)
	checkFor := func(local uint64) []byte {
		l := appendULEB(nil, local)
		var c []byte
		c = append(append(c, 0x20), l...)                            // local.get L
		c = append(c, 0x41, 0x01, 0x6a)                              // i32.const 1; i32.add
		c = append(append(c, 0x22), l...)                            // local.tee L
		c = append(append(c, 0x41), appendSLEB(nil, tickEvery-1)...) // i32.const 1023
		c = append(c, 0x71, 0x45, 0x04, 0x40)                        // i32.and; i32.eqz; if
		c = append(c, 0x41, 0x00, 0x41, 0x00)                        // i32.const 0; i32.const 0
		c = append(append(c, 0x10), br...)                           // call batch_read
		return append(c, 0x1a, 0x0b)                                 // drop; end
	}
	out := append([]byte(nil), wasm[:8]...)
	for _, s := range secs {
		body := s.body
		if s.id == 10 {
			b, err := instrumentCode(s.body, checkFor, globals, funcTypes, params)
			if err != nil {
				return nil, err
			}
			body = b
		}
		out = append(out, s.id)
		out = appendULEB(out, uint64(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

// paramCounts reads a type section: the parameter count of each type.
func paramCounts(body []byte) ([]uint64, error) {
	r := &reader{b: body}
	n, err := r.uleb()
	if err != nil {
		return nil, err
	}
	var out []uint64
	for i := uint64(0); i < n; i++ {
		form, err := r.byte()
		if err != nil {
			return nil, err
		}
		if form != 0x60 {
			return nil, fmt.Errorf("%w: type %d has form %#x", errInstrument, i, form)
		}
		np, err := r.uleb()
		if err != nil {
			return nil, err
		}
		for j := uint64(0); j < np; j++ {
			if err := skipValType(r); err != nil {
				return nil, err
			}
		}
		nr, err := r.uleb()
		if err != nil {
			return nil, err
		}
		for j := uint64(0); j < nr; j++ {
			if err := skipValType(r); err != nil {
				return nil, err
			}
		}
		out = append(out, np)
	}
	return out, nil
}

func appendSLEB(dst []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

// importInfo counts the global imports of an import section and finds the
// function index of wsp.batch_read.
func importInfo(body []byte) (globals, batchRead uint64, found bool, err error) {
	r := &reader{b: body}
	n, err := r.uleb()
	if err != nil {
		return 0, 0, false, err
	}
	var g, funcs uint64
	var name string
	readName := func() error {
		l, err := r.uleb()
		if err != nil {
			return err
		}
		start := r.off
		if err := r.skip(int(l)); err != nil {
			return err
		}
		name = string(r.b[start:r.off])
		return nil
	}
	skipLimits := func() error {
		flags, err := r.byte()
		if err != nil {
			return err
		}
		if err := r.skipLEB(); err != nil {
			return err
		}
		if flags&1 != 0 {
			return r.skipLEB()
		}
		return nil
	}
	for i := uint64(0); i < n; i++ {
		if err := readName(); err != nil {
			return 0, 0, false, err
		}
		mod := name
		if err := readName(); err != nil {
			return 0, 0, false, err
		}
		kind, err := r.byte()
		if err != nil {
			return 0, 0, false, err
		}
		switch kind {
		case 0: // func: type index
			if mod == "wsp" && name == "batch_read" {
				batchRead, found = funcs, true
			}
			funcs++
			err = r.skipLEB()
		case 1: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = skipLimits()
			}
		case 2: // memory
			err = skipLimits()
		case 3: // global: valtype, mutability
			g++
			err = r.skip(2)
		case 4: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				err = r.skipLEB()
			}
		default:
			err = fmt.Errorf("%w: unknown import kind %d", errInstrument, kind)
		}
		if err != nil {
			return 0, 0, false, err
		}
	}
	return g, batchRead, found, nil
}

// instrumentCode rewrites every function body of a code section.
func instrumentCode(body []byte, checkFor func(local uint64) []byte, globals uint64, funcTypes, params []uint64) ([]byte, error) {
	r := &reader{b: body}
	n, err := r.uleb()
	if err != nil {
		return nil, err
	}
	if n != uint64(len(funcTypes)) {
		return nil, fmt.Errorf("%w: %d bodies for %d functions", errInstrument, n, len(funcTypes))
	}
	out := appendULEB(nil, n)
	var fn []byte
	for i := uint64(0); i < n; i++ {
		size, err := r.uleb()
		if err != nil {
			return nil, err
		}
		start := r.off
		if err := r.skip(int(size)); err != nil {
			return nil, err
		}
		fn, err = instrumentFunc(fn[:0], body[start:r.off], checkFor, globals, params[funcTypes[i]])
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = appendULEB(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	return out, nil
}

// instrumentFunc copies one function body, adding an i32 local (the loop
// counter) and the check after each loop's block type. It decodes every
// instruction, so that a 0x03 byte inside an immediate is never mistaken for
// a loop, and refuses global or local indexes the function does not have
// (invalid in the original module; a local one would reach the counter).
func instrumentFunc(dst, f []byte, checkFor func(local uint64) []byte, globals, params uint64) ([]byte, error) {
	r := &reader{b: f}
	groups, err := r.uleb()
	if err != nil {
		return nil, err
	}
	locals := params
	for i := uint64(0); i < groups; i++ {
		k, err := r.uleb()
		if err != nil {
			return nil, err
		}
		locals += k
		if err := skipValType(r); err != nil {
			return nil, err
		}
	}
	if locals >= 50000 {
		return nil, fmt.Errorf("%w: %d locals", errInstrument, locals)
	}
	counter := locals // the new local's index
	check := checkFor(counter)
	dst = appendULEB(dst, groups+1)
	hdr := &reader{b: f}
	_, _ = hdr.uleb()
	dst = append(dst, f[hdr.off:r.off]...) // the original groups
	dst = append(dst, 0x01, 0x7f)          // one more i32
	mark := r.off                          // bytes of f before mark are already in dst
	for r.off < len(f) {
		op, _ := r.byte()
		switch {
		case op == 0x03: // loop bt
			if err := skipBlockType(r); err != nil {
				return nil, err
			}
			dst = append(dst, f[mark:r.off]...)
			dst = append(dst, check...)
			mark = r.off
		case op == 0x02 || op == 0x04 || op == 0x06: // block, if, try: bt
			err = skipBlockType(r)
		case op == 0x23 || op == 0x24: // global.get, global.set
			var g uint64
			if g, err = r.uleb(); err == nil && g >= globals {
				err = fmt.Errorf("%w: global %d does not exist", errInstrument, g)
			}
		case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
			var l uint64
			if l, err = r.uleb(); err == nil && l >= counter {
				err = fmt.Errorf("%w: local %d does not exist", errInstrument, l)
			}
		case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0x08 || op == 0x09 || op == 0x18 ||
			op == 0x25 || op == 0x26 || op == 0x07 || op == 0xd2 || op == 0x14: // one index
			err = r.skipLEB()
		case op == 0x0e: // br_table
			var k uint64
			if k, err = r.uleb(); err == nil {
				for j := uint64(0); j <= k && err == nil; j++ {
					err = r.skipLEB()
				}
			}
		case op == 0x11 || op == 0x13: // call_indirect: type, table
			if err = r.skipLEB(); err == nil {
				err = r.skipLEB()
			}
		case op == 0x1c: // select t*
			var k uint64
			if k, err = r.uleb(); err == nil {
				for j := uint64(0); j < k && err == nil; j++ {
					err = skipValType(r)
				}
			}
		case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
			err = skipMemarg(r)
		case op == 0x3f || op == 0x40: // memory.size/grow: memory index
			err = r.skipLEB()
		case op == 0x41 || op == 0x42: // i32/i64.const
			err = r.skipLEB()
		case op == 0x43:
			err = r.skip(4)
		case op == 0x44:
			err = r.skip(8)
		case op == 0xd0: // ref.null heaptype
			err = skipValType(r)
		case op == 0xfc:
			err = skipFC(r)
		case op == 0xfd:
			err = skipFD(r)
		case op == 0xfe:
			err = skipFE(r)
		case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x19 || op == 0x1a || op == 0x1b ||
			(op >= 0x45 && op <= 0xc4) || op == 0xd1 || op == 0xd3:
			// no immediates
		default:
			return nil, fmt.Errorf("%w: opcode %#x at byte %d is not handled", errInstrument, op, r.off-1)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(dst, f[mark:]...), nil
}

func skipValType(r *reader) error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	if c == 0x63 || c == 0x64 { // (ref null? ht): a heap type follows
		return r.skipLEB()
	}
	return nil
}

func skipBlockType(r *reader) error {
	if r.off >= len(r.b) {
		return fmt.Errorf("%w: block type past the end", errInstrument)
	}
	c := r.b[r.off]
	switch {
	case c == 0x40 || (c >= 0x6f && c <= 0x7f):
		r.off++
		return nil
	case c == 0x63 || c == 0x64:
		r.off++
		return r.skipLEB()
	}
	return r.skipLEB() // a type index (s33)
}

func skipMemarg(r *reader) error {
	align, err := r.uleb()
	if err != nil {
		return err
	}
	if align&0x40 != 0 { // multi-memory: a memory index follows
		if err := r.skipLEB(); err != nil {
			return err
		}
	}
	return r.skipLEB()
}

func skipFC(r *reader) error {
	sub, err := r.uleb()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // saturating truncations
		return nil
	case sub == 8: // memory.init data, mem
		if err := r.skipLEB(); err != nil {
			return err
		}
		return r.skipLEB()
	case sub == 9 || sub == 13 || sub == 15 || sub == 16 || sub == 17: // one index
		return r.skipLEB()
	case sub == 10 || sub == 12 || sub == 14: // two indexes
		if err := r.skipLEB(); err != nil {
			return err
		}
		return r.skipLEB()
	case sub == 11: // memory.fill mem
		return r.skipLEB()
	}
	return fmt.Errorf("%w: 0xfc %d is not handled", errInstrument, sub)
}

func skipFD(r *reader) error {
	sub, err := r.uleb()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		return skipMemarg(r)
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		return r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		return r.skip(1)
	case sub >= 84 && sub <= 91: // load and store lane
		if err := skipMemarg(r); err != nil {
			return err
		}
		return r.skip(1)
	}
	return nil // every other SIMD instruction has no immediate
}

func skipFE(r *reader) error {
	sub, err := r.uleb()
	if err != nil {
		return err
	}
	if sub == 3 { // atomic.fence
		return r.skip(1)
	}
	return skipMemarg(r)
}
