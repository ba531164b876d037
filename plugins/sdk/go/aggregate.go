package wsp

import (
	"math"
	"unicode/utf8"
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
	// Finish turns acc into the window's result, whose fields join the
	// window's result record. Without Results it appends the result to dst
	// as the text of a JSON object. With Results, dst is exactly
	// 8*len(Results) bytes, all zero: Finish stores field i at dst[8*i:]
	// (PutInt64At, PutFloat64At, PutBoolAt) and returns dst, and the host
	// writes the JSON text (returning another slice fails the call).
	Finish func(dst, acc []byte) []byte
	// Results, when set, are the fields of the result, in order: typed
	// results (the ABI's agg_result). The host then formats the JSON text
	// natively, which is several times cheaper per window than
	// strconv in Wasm: use them whenever the result is a fixed set of
	// numbers (counts, sums, averages, minima) or flags.
	Results []ResultField
}

// ResultType is the type of a result field (AggregateFuncs.Results).
type ResultType uint8

// Result field types. Every value takes 8 bytes of Finish's dst.
const (
	ResultInt   ResultType = 1 // an int64 (PutInt64At), written as a JSON integer
	ResultFloat ResultType = 2 // a float64 (PutFloat64At), written as a JSON number; NaN and ±Inf as null
	ResultBool  ResultType = 3 // PutBoolAt: 0 false, 1 true (other values fail the call)
)

// ResultField is a field of an aggregate's typed result: its JSON name
// (1 to 255 bytes of UTF-8, no control characters, unique) and type.
type ResultField struct {
	Name string
	Type ResultType
}

// maxResultFields is the host's limit on result fields.
const maxResultFields = 64

// checkResults returns what is wrong with fields as typed results, or "".
func checkResults(fields []ResultField) string {
	if len(fields) > maxResultFields {
		return itoa(int64(len(fields))) + " Results; the host allows " + itoa(maxResultFields)
	}
	for i, f := range fields {
		at := "Results[" + itoa(int64(i)) + "]"
		if f.Name != "" {
			at += " (\"" + f.Name + "\")"
		}
		switch {
		case f.Type < ResultInt || f.Type > ResultBool:
			return at + ": unknown Type " + itoa(int64(f.Type)) + " (ResultInt, ResultFloat or ResultBool)"
		case f.Name == "":
			return at + ": empty Name"
		case len(f.Name) > 255:
			return at + ": Name longer than 255 bytes"
		case !utf8.ValidString(f.Name):
			return at + ": Name is not valid UTF-8"
		}
		for k := 0; k < len(f.Name); k++ {
			if f.Name[k] < 0x20 {
				return at + ": Name holds a control character"
			}
		}
		for _, g := range fields[:i] {
			if g.Name == f.Name {
				return at + ": Name declared twice"
			}
		}
	}
	return ""
}

// resultDecl encodes fields as agg_result's declaration: type u8 |
// name_len u8 | name, per field.
func resultDecl(fields []ResultField) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, byte(f.Type), byte(len(f.Name)))
		b = append(b, f.Name...)
	}
	return b
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
	if msg := checkResults(f.Results); msg != "" {
		panic("wsp: Aggregate " + msg)
	}
	if reg.aggregate != nil {
		panic("wsp: an Aggregate is already registered")
	}
	f.Results = append([]ResultField(nil), f.Results...)
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
		if w := 8 * len(f.Results); w > 0 {
			finishTyped(data, n, s, w, f.Finish)
			return
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

// errTypedFinish is the failure of a Finish that did not return its dst.
const errTypedFinish = hostError("wsp: with Results, Finish must fill dst in place and return it")

// finishTyped writes the typed results (w = 8*len(Results) bytes per
// group) of a fixed finish batch's n accumulators of s bytes: in chunks of
// up to flushAt bytes of the output buffer, zeroed, then filled in place by
// finish, one call per group.
func finishTyped(data []byte, n, s, w int, finish func(dst, acc []byte) []byte) {
	per := max(1, flushAt/w)
	a := batchHeaderSize
	for n > 0 {
		k := min(n, per)
		buf := out.buf[:0]
		if cap(buf) < k*w {
			buf = make([]byte, 0, k*w)
			out.buf = buf
		}
		buf = buf[:k*w]
		clear(buf)
		if !fillTyped(buf, data, a, s, w, finish) {
			panic(errTypedFinish)
		}
		if rc := hostBatchWrite(buf); rc != 0 {
			panic(newHostError("batch_write", rc))
		}
		a += k * s
		n -= k
	}
}

// fillTyped is finishTyped's loop over one chunk: buf gets len(buf)/w
// groups' results from the accumulators at data[a:]. False when finish
// did not return its dst. Kept apart from finishTyped and its calls, as
// the loops in run.go (see the performance note there).
//
//go:noinline
func fillTyped(buf, data []byte, a, s, w int, finish func(dst, acc []byte) []byte) bool {
	for d := 0; d < len(buf); d += w {
		dst := buf[d : d+w : d+w]
		if ret := finish(dst, data[a:a+s:a+s]); unsafe.SliceData(ret) != unsafe.SliceData(dst) || len(ret) != w {
			return false
		}
		a += s
	}
	return true
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
		if op == aggFinish && len(f.Results) > 0 {
			// Typed results: 8 bytes per field, no length.
			w := 8 * len(f.Results)
			out.makeRoom(w)
			l := len(out.buf)
			out.buf = out.buf[:l+w]
			dst := out.buf[l : l+w : l+w]
			clear(dst)
			if ret := f.Finish(dst, acc); unsafe.SliceData(ret) != unsafe.SliceData(dst) || len(ret) != w {
				panic(errTypedFinish)
			}
			accBuf = acc[:0]
			continue
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

// Int64At returns the int64 at acc[off:off+8].
func Int64At(acc []byte, off int) int64 { return int64(Uint64At(acc, off)) }

// PutInt64At stores v at acc[off:off+8] (a ResultInt field of Finish's dst).
func PutInt64At(acc []byte, off int, v int64) { PutUint64At(acc, off, uint64(v)) }

// PutBoolAt stores v at acc[off:off+8] as 1 or 0 (a ResultBool field).
func PutBoolAt(acc []byte, off int, v bool) {
	var u uint64
	if v {
		u = 1
	}
	PutUint64At(acc, off, u)
}

// Float64At returns the float64 at acc[off:off+8].
func Float64At(acc []byte, off int) float64 { return math.Float64frombits(Uint64At(acc, off)) }

// PutFloat64At stores v at acc[off:off+8].
func PutFloat64At(acc []byte, off int, v float64) { PutUint64At(acc, off, math.Float64bits(v)) }
