// Command aggraw is a test guest for the fixed-size aggregate formats
// written against the host imports directly (no SDK), so that it can also
// break the contract. Its accumulator is 8 bytes: a count of records (add)
// or the sum of the counts (merge); finish gives {"n":N}. The step's config
// (a JSON string) picks a behaviour:
//
//	"ok"     add and merge write the accumulators back in three chunks, split mid-accumulator
//	"short"  add writes one byte less than groups*8
//	"long"   add writes one byte more
//	"trap"   add traps (an out-of-bounds load)
//	"twice"  wsp_init also checks that agg_size(8) again is accepted and agg_size(16) refused
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o plugins/testdata/wasm/go_aggraw.wasm ./plugins/testdata/go/aggraw
package main

import (
	"encoding/binary"
	"strconv"
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

const size = 8

var (
	mode string
	buf  = make([]byte, 64<<10)
	out  []byte
	le   = binary.LittleEndian
)

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
	if aggSize(size) != 0 {
		return 2
	}
	if mode == "twice" && (aggSize(size) != 0 || aggSize(16) != -5) {
		return 3
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

// writeAccs writes accs back as the mode says.
func writeAccs(accs []byte) int32 {
	switch mode {
	case "short":
		return write(accs[:len(accs)-1])
	case "long":
		return write(append(accs, 0))
	}
	// Three chunks, the first two ending inside an accumulator.
	a, b := min(len(accs), 5), min(len(accs), 13)
	if rc := write(accs[:a]); rc != 0 {
		return rc
	}
	if rc := write(accs[a:b]); rc != 0 {
		return rc
	}
	return write(accs[b:])
}

func recordEnd(d []byte, p int) int {
	return p + 32 + int(le.Uint32(d[p+16:])) + int(le.Uint32(d[p+20:])) + int(le.Uint32(d[p+24:])) + int(le.Uint32(d[p+28:]))
}

//go:wasmexport wsp_agg_add
func wspAggAdd(n int32) int32 {
	if mode == "trap" {
		// A load far outside linear memory: a Wasm trap, not a Go panic.
		return int32(*(*byte)(unsafe.Pointer(uintptr(0xFFFFFFF0))))
	}
	d := read()
	g := int(n)
	accs := d[8 : 8+g*size]
	// The records of all groups; a record's index is its group.
	p := 8 + g*size
	for p < len(d) {
		i := int(le.Uint32(d[p:]))
		le.PutUint64(accs[i*size:], le.Uint64(accs[i*size:])+1)
		p = recordEnd(d, p)
	}
	if p != len(d) {
		return 4
	}
	return writeAccs(accs)
}

//go:wasmexport wsp_agg_merge
func wspAggMerge(n int32) int32 {
	d := read()
	g := int(n)
	accs := d[8 : 8+g*size]
	counts := d[8+g*size:]
	p := 8 + g*size + 4*g
	for i := 0; i < g; i++ {
		k := int(le.Uint32(counts[4*i:]))
		for j := 0; j < k; j++ {
			le.PutUint64(accs[i*size:], le.Uint64(accs[i*size:])+le.Uint64(d[p:]))
			p += size
		}
	}
	if p != len(d) {
		return 4
	}
	return writeAccs(accs)
}

//go:wasmexport wsp_agg_finish
func wspAggFinish(n int32) int32 {
	d := read()
	out = out[:0]
	for i := 0; i < int(n); i++ {
		l := len(out)
		out = append(out, 0, 0, 0, 0)
		out = append(out, `{"n":`...)
		out = strconv.AppendUint(out, le.Uint64(d[8+i*size:]), 10)
		out = append(out, '}')
		le.PutUint32(out[l:], uint32(len(out)-l-4))
	}
	return write(out)
}

func main() {}
