package wsp

// AggregateFuncs are a module's aggregate (the `aggregate` feature of the
// ABI): a window step with `aggregate: {module: ...}` keeps one accumulator
// per key and window as bytes in the host, and calls these a batch of
// windows at a time. The accumulator's layout is the module's own.
type AggregateFuncs struct {
	// Add folds r into acc and returns the accumulator. acc is empty for
	// a new window: Add creates it. Add may change acc in place or append
	// to it; the host keeps what it returns.
	Add func(acc []byte, r *Record) []byte
	// Merge folds other into acc and returns the result. Session windows
	// merge when a record bridges them, so every aggregate must merge.
	Merge func(acc, other []byte) []byte
	// Finish appends the window's result to dst as the text of a JSON
	// object, whose fields join the window's result record.
	Finish func(dst, acc []byte) []byte
}

// Aggregate registers the module's aggregate. Call it from init(); Add,
// Merge and Finish are all required.
func Aggregate(f AggregateFuncs) {
	checkLoad("Aggregate", f.Add == nil || f.Merge == nil || f.Finish == nil)
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
	full := data[:cap(data)]
	r := &one
	if len(r.buf) == 0 || &r.buf[0] != &full[0] {
		r.buf = full
	}
	p := batchHeaderSize
	need := func(k int) {
		if len(data)-p < k {
			panic(errMalformedBatch)
		}
	}
	for g := 0; g < int(n); g++ {
		need(4)
		al := int(le.Uint32(data[p:]))
		p += 4
		need(al + 4)
		accBuf = append(accBuf[:0], data[p:p+al]...)
		p += al
		items := int(le.Uint32(data[p:]))
		p += 4
		acc := accBuf
		for i := 0; i < items; i++ {
			switch op {
			case aggAdd:
				end := recordEnd(data, p)
				if end < 0 {
					panic(errMalformedBatch)
				}
				r.hdr, r.index = p, i
				if len(r.foff) > 0 {
					walkFields(r.foff, data, p)
				}
				acc = f.Add(acc, r)
				p = end
			case aggMerge:
				need(4)
				ol := int(le.Uint32(data[p:]))
				p += 4
				need(ol)
				acc = f.Merge(acc, data[p:p+ol:p+ol])
				p += ol
			}
		}
		l := len(out.buf)
		out.buf = append(out.buf, 0, 0, 0, 0)
		if op == aggFinish {
			out.buf = f.Finish(out.buf, acc)
		} else {
			out.buf = append(out.buf, acc...)
		}
		le.PutUint32(out.buf[l:], uint32(len(out.buf)-l-4))
		accBuf = acc[:0]
		if len(out.buf) >= flushAt {
			out.flush()
		}
	}
	if p != len(data) {
		panic(errMalformedBatch)
	}
	out.flush()
	return 0
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
