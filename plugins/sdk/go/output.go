package wsp

import "unsafe"

// Same selects parts of an output record taken unchanged from its input
// record, without copying them (OutRecord.Same). The values are the ABI's
// same_* flag bits.
type Same uint8

// Parts of a record.
const (
	SameKey   Same = 1 << 4
	SameValue Same = 1 << 5
	SameTime  Same = 1 << 6
	SameMeta  Same = 1 << 7
	// SameAll keeps the whole record (what Output.Keep emits).
	SameAll = SameKey | SameValue | SameTime | SameMeta
)

// Meta is one metadata entry of an OutRecord.
type Meta struct {
	Name  string
	Value []byte
}

// OutRecord is a fully specified output record, for Output.EmitRecord.
type OutRecord struct {
	// Port is the output port (Main by default).
	Port PortID
	// Same lists the parts taken from the input record; the fields below
	// for those parts are ignored.
	Same Same
	// Key is the record key when HasKey is set (an empty key is a key).
	Key    []byte
	HasKey bool
	// Value is the record value.
	Value []byte
	// Time is the event time in ms since the Unix epoch when HasTime is set.
	Time    int64
	HasTime bool
	// Meta is the complete metadata of the record, in order.
	Meta []Meta
}

// Output collects the records a function produces from its input records.
// Records must be emitted in ascending input order: everything for record i
// before anything for a later record (Process guarantees this by
// construction; with ProcessBatch the host fails a batch that breaks the
// rule). Emitting nothing for a record drops it; emitting several records
// for one input is a flat map. Emitted bytes are copied at once, so they may
// come from the input record or from a reused buffer.
//
// Keep and Emit are small enough to be inlined into the calling function
// (a call is expensive in Go's Wasm code); the output is handed to the host
// in one chunk at the end of the batch, or earlier, between records, once it
// passes 1 MiB.
type Output struct {
	buf []byte
}

// Keep emits r unchanged to the main output: an 8-byte keep record, nothing
// copied (the pass and filter path).
func (o *Output) Keep(r *Record) {
	// Small enough to be inlined into the caller: calls are expensive in
	// Go's Wasm code.
	i := r.index
	l := len(o.buf)
	o.buf = append(o.buf, 0, 0, 0, 0, 0, 0, 0, 0)
	store64(o.buf, l, uint64(i)|kindKeep<<48)
}

// Emit emits a record to the main output with r's key, time and metadata and
// value as its value (the map of a map step). The value is copied.
func (o *Output) Emit(r *Record, value []byte) {
	o.emitValue(uint64(r.index)|uint64(SameKey|SameTime|SameMeta)<<56, value)
}

// EmitString is Emit with a string value.
func (o *Output) EmitString(r *Record, value string) {
	o.emitValue(uint64(r.index)|uint64(SameKey|SameTime|SameMeta)<<56,
		unsafe.Slice(unsafe.StringData(value), len(value))) // only read
}

// To emits r to port with r's key, time and metadata, and value as its
// value; a nil value keeps r's value (an empty non-nil slice is an empty
// value). To(Main, r, nil) is Keep(r).
func (o *Output) To(port PortID, r *Record, value []byte) {
	num := uint64(portNum(port)) << 32
	if value == nil {
		l := len(o.buf)
		o.buf = append(o.buf, 0, 0, 0, 0, 0, 0, 0, 0)
		store64(o.buf, l, uint64(r.index)|num|kindKeep<<48)
		return
	}
	o.emitValue(uint64(r.index)|num|uint64(SameKey|SameTime|SameMeta)<<56, value)
}

// Fail sends input record r, unchanged, to the step's error output with
// reason. Other records of the batch are unaffected. Records emitted for r
// before Fail are still emitted.
func (o *Output) Fail(r *Record, reason string) {
	o.emitValue(uint64(r.index)|kindFail<<48, unsafe.Slice(unsafe.StringData(reason), len(reason)))
}

// emitValue appends a record whose first header word is w0 (index, port,
// kind, flags) and whose only part is value.
func (o *Output) emitValue(w0 uint64, value []byte) {
	n := recordHeaderSize + len(value)
	if cap(o.buf)-len(o.buf) < n {
		o.makeRoom(n)
	}
	l := len(o.buf)
	b := o.buf[l : l+n]
	o.buf = o.buf[:l+n]
	store64(b, 0, w0)
	store64(b, 8, 0)
	store64(b, 16, uint64(len(value))<<32)
	store64(b, 24, 0)
	copy(b[recordHeaderSize:], value)
}

// makeRoom makes room for n more bytes, handing the buffer to the host
// first if it is past flushAt.
func (o *Output) makeRoom(n int) {
	if len(o.buf) >= flushAt {
		o.flush()
	}
	if cap(o.buf)-len(o.buf) < n {
		nb := make([]byte, len(o.buf), 2*cap(o.buf)+n)
		copy(nb, o.buf)
		o.buf = nb
	}
}

// EmitRecord emits rec, derived from input record r, with full control over
// every part.
func (o *Output) EmitRecord(r *Record, rec *OutRecord) {
	num := portNum(rec.Port)
	same := rec.Same & SameAll
	if same == SameAll {
		putKeep(o.reserve(keepRecordSize), uint32(r.index), num)
		return
	}
	flags := uint8(same)
	var klen, vlen, mlen int
	if same&SameKey == 0 && rec.HasKey {
		flags |= flagHasKey
		klen = len(rec.Key)
	}
	if same&SameValue == 0 {
		vlen = len(rec.Value)
	}
	if same&SameTime == 0 && rec.HasTime {
		flags |= flagHasTime
	}
	if same&SameMeta == 0 {
		for i := range rec.Meta {
			mlen += 8 + len(rec.Meta[i].Name) + len(rec.Meta[i].Value)
		}
	}
	var t int64
	if flags&flagHasTime != 0 {
		t = rec.Time
	}
	b := o.reserve(recordHeaderSize + klen + vlen + mlen)
	putHeader(b, uint32(r.index), num, kindEmit, flags, t, uint32(klen), uint32(vlen), uint32(mlen))
	p := recordHeaderSize
	p += copy(b[p:], rec.Key[:klen])
	p += copy(b[p:], rec.Value[:vlen])
	if mlen > 0 {
		for i := range rec.Meta {
			m := &rec.Meta[i]
			le.PutUint32(b[p:], uint32(len(m.Name)))
			p += 4
			p += copy(b[p:], m.Name)
			le.PutUint32(b[p:], uint32(len(m.Value)))
			p += 4
			p += copy(b[p:], m.Value)
		}
	}
}

// emitKey answers a key function for r.
func (o *Output) emitKey(r *Record, key []byte) {
	b := o.reserve(recordHeaderSize + len(key))
	putHeader(b, uint32(r.index), 0, kindEmit,
		flagHasKey|uint8(SameValue|SameTime|SameMeta), 0, uint32(len(key)), 0, 0)
	copy(b[recordHeaderSize:], key)
}

// emitTime answers a timestamp function for r.
func (o *Output) emitTime(r *Record, ms int64) {
	putHeader(o.reserve(recordHeaderSize), uint32(r.index), 0, kindEmit,
		flagHasTime|uint8(SameKey|SameValue|SameMeta), ms, 0, 0, 0)
}

// reserve appends n bytes to the output and returns them.
func (o *Output) reserve(n int) []byte {
	if cap(o.buf)-len(o.buf) < n {
		o.makeRoom(n)
	}
	l := len(o.buf)
	o.buf = o.buf[:l+n]
	return o.buf[l : l+n : l+n]
}

// reset prepares the output for a batch of n records.
func (o *Output) reset() {
	o.buf = o.buf[:0]
	if cap(o.buf) == 0 {
		o.buf = make([]byte, 0, 64<<10)
	}
}

// flush hands the buffered records to the host.
func (o *Output) flush() {
	if len(o.buf) == 0 {
		return
	}
	if rc := hostBatchWrite(o.buf); rc != 0 {
		o.buf = o.buf[:0]
		panic(newHostError("batch_write", rc))
	}
	o.buf = o.buf[:0]
}

// putKeep writes a keep record into b[:8].
func putKeep(b []byte, index uint32, port uint16) {
	le.PutUint64(b, uint64(index)|uint64(port)<<32|kindKeep<<48)
}

// putHeader writes a record header into b[:32].
func putHeader(b []byte, index uint32, port uint16, kind, flags uint8, time int64, klen, vlen, mlen uint32) {
	_ = b[31]
	le.PutUint64(b[0:], uint64(index)|uint64(port)<<32|uint64(kind)<<48|uint64(flags)<<56)
	le.PutUint64(b[8:], uint64(time))
	le.PutUint64(b[16:], uint64(klen)|uint64(vlen)<<32)
	le.PutUint64(b[24:], uint64(mlen))
}

// hostError is a panic value for a failed host call; runBatch reports it.
type hostError string

func newHostError(fn string, rc int32) hostError {
	return hostError(fn + ": " + errName(rc))
}

// portNum is the host's number of port p.
func portNum(p PortID) uint16 {
	if int(p) >= len(reg.portNums) {
		if p == Main {
			return 0
		}
		panic("wsp: unknown port id " + itoa(int64(p)) + " (use the value Port returned)")
	}
	return reg.portNums[p]
}
