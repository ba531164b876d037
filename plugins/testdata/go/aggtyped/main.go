// Command aggtyped is a test guest for typed aggregate results (agg_result)
// written against the host imports directly (no SDK), so that it can also
// break the contract. It declares the result fields
//
//	n int | q"\ float | ok bool
//
// (24 bytes a group) and its accumulators are those 24 bytes: finish writes
// each group's accumulator as its result, so a test sets the values it
// wants formatted. Add and merge keep the accumulators unchanged. The
// step's config (a JSON string) picks a behaviour:
//
//	"ok"       fixed-size accumulators (agg_size 24); finish writes in three chunks, split mid-value
//	"var"      variable-size accumulators (24 bytes, empty: zeros); finish as "ok"
//	"twice"    "ok", and wsp_init declares the same fields again (allowed)
//	"again"    wsp_init declares other fields on a second call (refused: the load fails)
//	"notnow"   "ok", and finish fails unless agg_result there returns -3
//	"short"    finish writes one byte less than groups*24
//	"long"     finish writes one byte more
//	"badtype", "dup", "empty", "none", "ctrl", "trunc", "toomany":
//	           a declaration the host refuses; wsp_init fails when agg_result does
//	"ignore"   a refused declaration (duplicate name) whose error wsp_init ignores
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o plugins/testdata/wasm/go_aggtyped.wasm ./plugins/testdata/go/aggtyped
package main

import (
	"encoding/binary"
	"unsafe"
)

//go:wasmimport wsp batch_read
func batchRead(ptr unsafe.Pointer, cap uint32) int32

//go:wasmimport wsp batch_write
func batchWrite(ptr unsafe.Pointer, len uint32) int32

//go:wasmimport wsp config_read
func configRead(ptr unsafe.Pointer, cap uint32) int32

//go:wasmimport wsp agg_size
func aggSize(size uint32) int32

//go:wasmimport wsp agg_result
func aggResult(ptr unsafe.Pointer, len uint32) int32

const size = 24

var (
	mode string
	buf  = make([]byte, 64<<10)
	out  []byte
	le   = binary.LittleEndian
)

// field encodes one declared field: type u8 | name_len u8 | name.
func field(dst []byte, typ byte, name string) []byte {
	dst = append(dst, typ, byte(len(name)))
	return append(dst, name...)
}

func fields() []byte {
	d := field(nil, 1, "n")
	d = field(d, 2, `q"\`)
	return field(d, 3, "ok")
}

func declare(d []byte) int32 {
	if len(d) == 0 {
		return aggResult(nil, 0)
	}
	return aggResult(unsafe.Pointer(&d[0]), uint32(len(d)))
}

//go:wasmexport wsp_abi
func wspABI() int64 { return 1 | 1<<2<<32 } // version 1, feature aggregate

//go:wasmexport wsp_init
func wspInit() int32 {
	var c [64]byte
	n := configRead(unsafe.Pointer(&c[0]), uint32(len(c)))
	if n > int32(len(c)) {
		return 1
	}
	mode = string(c[:n])
	if len(mode) >= 2 && mode[0] == '"' {
		mode = mode[1 : len(mode)-1]
	}
	if mode != "var" && aggSize(size) != 0 {
		return 2
	}
	var d []byte
	switch mode {
	case "badtype":
		d = field(fields(), 9, "x")
	case "dup", "ignore":
		d = field(fields(), 1, "n")
	case "empty":
		d = field(fields(), 1, "")
	case "none":
	case "ctrl":
		d = field(nil, 1, "a\nb")
	case "trunc":
		d = append(fields(), 1, 5, 'a')
	case "toomany":
		for i := 0; i < 65; i++ {
			d = field(d, 1, "f"+string(rune('A'+i%26))+string(rune('a'+i/26)))
		}
	default:
		d = fields()
	}
	rc := declare(d)
	if mode == "ignore" {
		return 0
	}
	if rc != 3 {
		return 3
	}
	switch mode {
	case "twice":
		if declare(fields()) != 3 {
			return 4
		}
	case "again":
		declare(field(nil, 1, "other"))
	}
	return 0
}

func read() []byte {
	for {
		n := batchRead(unsafe.Pointer(&buf[0]), uint32(len(buf)))
		if int(n) <= len(buf) {
			return buf[:n]
		}
		buf = make([]byte, n)
	}
}

func write(b []byte) int32 {
	if len(b) == 0 {
		return batchWrite(nil, 0)
	}
	return batchWrite(unsafe.Pointer(&b[0]), uint32(len(b)))
}

// accs returns the n accumulators of a batch of op, back to back: in the
// fixed formats they are the batch's accs; in the variable ones each
// group's (zeros when empty; its items are skipped).
func accs(d []byte, n, op int) []byte {
	if mode != "var" {
		return d[8 : 8+n*size]
	}
	out := make([]byte, 0, n*size)
	p := 8
	for g := 0; g < n; g++ {
		l := int(le.Uint32(d[p:]))
		if l == 0 {
			out = append(out, make([]byte, size)...)
		} else {
			out = append(out, d[p+4:p+4+l]...)
		}
		p += 4 + l
		items := int(le.Uint32(d[p:]))
		p += 4
		for i := 0; i < items; i++ {
			if op == 1 { // a record: 32-byte header, then its four parts
				p += 32 + int(le.Uint32(d[p+16:])) + int(le.Uint32(d[p+20:])) + int(le.Uint32(d[p+24:])) + int(le.Uint32(d[p+28:]))
			} else { // another accumulator
				p += 4 + int(le.Uint32(d[p:]))
			}
		}
	}
	return out
}

// keep writes the accumulators back unchanged (add, merge).
func keep(n int32, op int) int32 {
	d := read()
	a := accs(d, int(n), op)
	if mode != "var" {
		return write(a)
	}
	out = out[:0]
	for g := 0; g < int(n); g++ {
		out = le.AppendUint32(out, size)
		out = append(out, a[g*size:(g+1)*size]...)
	}
	return write(out)
}

//go:wasmexport wsp_agg_add
func wspAggAdd(n int32) int32 { return keep(n, 1) }

//go:wasmexport wsp_agg_merge
func wspAggMerge(n int32) int32 { return keep(n, 2) }

//go:wasmexport wsp_agg_finish
func wspAggFinish(n int32) int32 {
	if mode == "notnow" && declare(fields()) != -3 {
		return 5
	}
	res := accs(read(), int(n), 3)
	switch mode {
	case "short":
		return write(res[:len(res)-1])
	case "long":
		return write(append(res, 0))
	}
	// Three chunks, the first two ending inside a value.
	a, b := min(len(res), 5), min(len(res), 29)
	if rc := write(res[:a]); rc != 0 {
		return rc
	}
	if rc := write(res[a:b]); rc != 0 {
		return rc
	}
	return write(res[b:])
}

func main() {}
