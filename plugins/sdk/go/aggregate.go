package wsp

import (
	"math"
	"unsafe"
)

// AggregateFuncs are a module's aggregate (the `aggregate` feature of the
// ABI): a window step with `aggregate: {module: ...}` keeps one accumulator
// per key and window as bytes in the host, and calls these a batch of
// windows at a time. The accumulator's layout is the module's own.
//
// With Size > 0 the accumulators are fixed-size (the ABI's agg_size): every
// acc is exactly Size bytes, all zero for a new window, so the layout must
// read all-zero as empty (keep a count, or a "set" flag). Add and Merge
// then change acc in place and return it (returning another slice, or one
// of another length, fails the call). The SDK hands them slices of the
// batch buffer and writes the batch's accumulators back in one piece, which
// makes the per-window cost several times smaller than with variable-size
// accumulators: use it whenever the state has a bounded size (counts, sums,
// minima, fixed sketches).
type AggregateFuncs struct {
	// Size is the fixed size of the accumulators in bytes (1 to 65536),
	// or 0 for variable-size accumulators.
	Size int
	// Add folds r into acc and returns the accumulator. Variable size: acc
	// is empty for a new window (Add creates it); Add may change acc in
	// place or append to it, and the host keeps what it returns. Fixed
	// size: see Size.
	Add func(acc []byte, r *Record) []byte
	// Merge folds other into acc and returns the result, as Add. Session
	// windows merge when a record bridges them, so every aggregate must
	// merge.
	Merge func(acc, other []byte) []byte
	// Finish appends the window's result to dst as the text of a JSON
	// object, whose fields join the window's result record.
	Finish func(dst, acc []byte) []byte
}

// maxAccSize is the host's limit on a fixed accumulator size.
const maxAccSize = 64 << 10

// Aggregate registers the module's aggregate. Call it from init(); Add,
// Merge and Finish are all required.
func Aggregate(f AggregateFuncs) {
	checkLoad("Aggregate", f.Add == nil || f.Merge == nil || f.Finish == nil)
	if f.Size < 0 || f.Size > maxAccSize {
		panic("wsp: Aggregate Size " + itoa(int64(f.Size)) + " out of range [0, " + itoa(maxAccSize) + "]")
	}
	if reg.aggregate != nil {
		panic("wsp: an Aggregate is already registered")
	}
	reg.aggregate = &f
}

// The ops of the aggregate exports (hostabi.AggOp).
const (
	aggAdd    = 1
	aggMerge  = 2
	aggFinish = 3
)

var aggNames = [...]string{aggAdd: "wsp_agg_add", aggMerge: "wsp_agg_merge", aggFinish: "wsp_agg_finish"}

var accBuf []byte // the accumulator being worked on

// runAgg is wsp_agg_add, wsp_agg_merge and wsp_agg_finish over n groups:
// one batch_read, then for each group its accumulator and items, and the
// new accumulator (or the result) written back as `len u32 | bytes`.
func runAgg(op int, n int32) (rc int32) {
	f := reg.aggregate
	if f == nil {
		hostFail("no Aggregate registered")
		return 1
	}
	defer func() {
		if v := recover(); v != nil {
			out.buf = out.buf[:0]
			failWith(v, aggNames[op])
			rc = 1
		}
	}()
	data := readBatch()
	if int(le.Uint32(data)) != int(n) || int(le.Uint32(data[4:])) != op {
		panic(hostError("wsp: the aggregate batch header does not match the call"))
	}
	out.reset()
	if f.Size > 0 {
		aggFixed(op, data, int(n), f)
		return 0
	}
	if aggGroups(op, data, int(n), f) != len(data) {
		panic(errMalformedBatch)
	}
	out.flush()
	return 0
}

// aggFixed runs a batch in the fixed formats (Size > 0):
//
//	groups u32 | op u32 | accs (groups*Size bytes) | add: records (index = group)
//	                                               | merge: counts (u32*groups) | other accs
//
// (finish: nothing after the accs). Add and merge change the accumulators
// in place in the batch buffer, which is then written back as it is.
func aggFixed(op int, data []byte, n int, f *AggregateFuncs) {
	s := f.Size
	accEnd := batchHeaderSize + n*s
	if op == aggFinish {
		if len(data) != accEnd {
			panic(errMalformedBatch)
		}
		finishFixed(data, n, s, f.Finish)
		out.flush()
		return
	}
	if len(data) < accEnd {
		panic(errMalformedBatch)
	}
	var p int
	if op == aggAdd {
		full := data[:cap(data)]
		r := &one
		if unsafe.SliceData(r.buf) != unsafe.SliceData(full) {
			r.buf = full
		}
		p = addFixed(r, data, n, s, len(r.foff), f.Add)
	} else {
		p = mergeFixed(data, n, s, f.Merge)
	}
	switch {
	case p == -2:
		what := "Add"
		if op == aggMerge {
			what = "Merge"
		}
		panic(hostError("wsp: with a fixed Size (" + itoa(int64(s)) + ") " + what + " must change acc in place and return it"))
	case p != len(data):
		panic(errMalformedBatch)
	}
	if rc := hostBatchWrite(data[batchHeaderSize:accEnd]); rc != 0 {
		panic(newHostError("batch_write", rc))
	}
}

// addFixed folds the records of a fixed add batch into the accumulators in
// data and returns the offset after the last record, -1 for a malformed
// batch or -2 when add did not return its acc. A record's index is its
// group, so this is one flat loop, as scanProcess in run.go, with one slice
// compare more.
func addFixed(r *Record, data []byte, n, s, nf int, add func([]byte, *Record) []byte) int {
	p := batchHeaderSize + n*s
	for p < len(data) {
		if len(data)-p < recordHeaderSize {
			return -1
		}
		w2, w3 := load64(data, p+16), load64(data, p+24)
		end := p + recordHeaderSize + int(uint32(w2)) + int(w2>>32) + int(uint32(w3)) + int(w3>>32)
		g := int(load32(data, p))
		if end > len(data) || g >= n {
			return -1
		}
		a := batchHeaderSize + g*s
		acc := data[a : a+s : a+s]
		r.hdr, r.index = p, g
		if nf == 1 {
			// walkFields for one field, inline: a call less per record.
			fs := end - int(w3>>32)
			tag := *(*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(data)), fs))
			sz := int(entrySizes[tag]) + int(load32(data, fs+1)&entryLenMask[tag])
			if uint(sz-1) >= uint(end-fs) {
				fs = 0
			}
			r.foff[0] = uint32(fs)
		} else if nf > 0 {
			walkFields(r.foff, data, p)
		}
		p = end
		if ret := add(acc, r); unsafe.SliceData(ret) != unsafe.SliceData(acc) || len(ret) != s {
			return -2
		}
	}
	return p
}

// mergeFixed folds the other accumulators of a fixed merge batch into the
// accumulators in data; results as addFixed.
func mergeFixed(data []byte, n, s int, merge func(acc, other []byte) []byte) int {
	a := batchHeaderSize
	c := a + n*s
	if len(data)-c < 4*n {
		return -1
	}
	p := c + 4*n
	for g := 0; g < n; g++ {
		items := int(load32(data, c+4*g))
		acc := data[a : a+s : a+s]
		a += s
		for i := 0; i < items; i++ {
			if len(data)-p < s {
				return -1
			}
			if ret := merge(acc, data[p:p+s:p+s]); unsafe.SliceData(ret) != unsafe.SliceData(acc) || len(ret) != s {
				return -2
			}
			p += s
		}
	}
	return p
}

// finishFixed appends `len u32 | result` for each accumulator of a fixed
// finish batch to the output, flushing it when it passes flushAt.
func finishFixed(data []byte, n, s int, finish func(dst, acc []byte) []byte) {
	buf := out.buf
	a := batchHeaderSize
	for g := 0; g < n; g++ {
		l := len(buf)
		buf = finish(append(buf, 0, 0, 0, 0), data[a:a+s:a+s])
		store32(buf, l, uint32(len(buf)-l-4))
		a += s
		if len(buf) >= flushAt {
			out.buf = buf
			out.flush()
			buf = out.buf
		}
	}
	out.buf = buf
}

// aggGroups runs the groups of an aggregate batch and returns the offset
// after the last one. It is apart from runAgg, whose defer makes every
// loop in it slow in Go's Wasm code.
func aggGroups(op int, data []byte, n int, f *AggregateFuncs) int {
	full := data[:cap(data)]
	r := &one
	if len(r.buf) == 0 || &r.buf[0] != &full[0] {
		r.buf = full
	}
	p := batchHeaderSize
	nf := len(r.foff)
	for g := 0; g < n; g++ {
		// A group: acc_len u32 | acc | items u32 | items. Checks that fail
		// leave at once (see scan in run.go for why the loops look so).
		if len(data)-p < 4 {
			panic(errMalformedBatch)
		}
		al := int(load32(data, p))
		p += 4
		if len(data)-p < al+4 {
			panic(errMalformedBatch)
		}
		acc := append(accBuf[:0], data[p:p+al]...)
		p += al
		items := int(load32(data, p))
		p += 4
		switch op {
		case aggAdd:
			if acc, p = addRecords(r, data, p, items, nf, acc, f.Add); p < 0 {
				panic(errMalformedBatch)
			}
		case aggMerge:
			for i := 0; i < items; i++ {
				if len(data)-p < 4 {
					panic(errMalformedBatch)
				}
				ol := int(load32(data, p))
				p += 4
				if len(data)-p < ol {
					panic(errMalformedBatch)
				}
				acc = f.Merge(acc, data[p:p+ol:p+ol])
				p += ol
			}
		}
		l := len(out.buf)
		if op == aggFinish {
			out.buf = f.Finish(append(out.buf, 0, 0, 0, 0), acc)
		} else {
			out.buf = append(append(out.buf, 0, 0, 0, 0), acc...)
		}
		store32(out.buf, l, uint32(len(out.buf)-l-4))
		accBuf = acc[:0]
		if len(out.buf) >= flushAt {
			out.flush()
		}
	}
	return p
}

// addRecords folds the items records from data[p:] into acc with add and
// returns it and the offset after them, or -1 for a malformed batch. It is
// its own small function so that its loop stays cheap in Go's Wasm code.
func addRecords(r *Record, data []byte, p, items, nf int, acc []byte, add func([]byte, *Record) []byte) ([]byte, int) {
	for i := 0; i < items; i++ {
		if len(data)-p < recordHeaderSize {
			return acc, -1
		}
		w2, w3 := load64(data, p+16), load64(data, p+24)
		end := p + recordHeaderSize + int(uint32(w2)) + int(w2>>32) + int(uint32(w3)) + int(w3>>32)
		if end > len(data) {
			return acc, -1
		}
		r.hdr, r.index = p, i
		if nf > 0 {
			walkFields(r.foff, data, p)
		}
		acc = add(acc, r)
		p = end
	}
	return acc, p
}

// recordEnd returns the offset after the record whose header starts at
// data[p], or -1 when it runs past the batch.
func recordEnd(data []byte, p int) int {
	if len(data)-p < recordHeaderSize {
		return -1
	}
	w2, w3 := load64(data, p+16), load64(data, p+24)
	end := p + recordHeaderSize + int(uint32(w2)) + int(w2>>32) + int(uint32(w3)) + int(w3>>32)
	if end > len(data) {
		return -1
	}
	return end
}

// Accumulator helpers: fixed-width little-endian values at byte offsets of
// an accumulator, without encoding/binary's per-byte work in Wasm. They
// panic (failing the call) when acc is too short.

// Uint64At returns the uint64 at acc[off:off+8].
func Uint64At(acc []byte, off int) uint64 {
	_ = acc[off+7]
	return load64(acc, off)
}

// PutUint64At stores v at acc[off:off+8].
func PutUint64At(acc []byte, off int, v uint64) {
	_ = acc[off+7]
	store64(acc, off, v)
}

// Float64At returns the float64 at acc[off:off+8].
func Float64At(acc []byte, off int) float64 { return math.Float64frombits(Uint64At(acc, off)) }

// PutFloat64At stores v at acc[off:off+8].
func PutFloat64At(acc []byte, off int, v float64) { PutUint64At(acc, off, math.Float64bits(v)) }
