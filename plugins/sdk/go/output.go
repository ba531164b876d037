package wsp

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
// Records are emitted in input order: everything for record i before
// anything for a later record (Process guarantees this by construction).
// Emitting nothing for a record drops it; emitting several records for one
// input is a flat map. Emitted bytes are copied at once, so they may come
// from the input record or from a reused buffer.
type Output struct {
	buf  []byte
	n    int // records in the input batch
	last int // highest input index emitted so far
}

// Keep emits r unchanged to the main output: an 8-byte keep record, nothing
// copied (the pass and filter path).
func (o *Output) Keep(r *Record) {
	o.start(r)
	putKeep(o.reserve(keepRecordSize), uint32(r.index), 0)
}

// Emit emits a record to the main output with r's key, time and metadata and
// value as its value (the map of a map step).
func (o *Output) Emit(r *Record, value []byte) {
	o.start(r)
	b := o.reserve(recordHeaderSize + len(value))
	putHeader(b, uint32(r.index), 0, kindEmit,
		uint8(SameKey|SameTime|SameMeta)|r.flags&(flagHasTime|flagHasKey), 0, 0, uint32(len(value)), 0)
	copy(b[recordHeaderSize:], value)
}

// EmitString is Emit with a string value.
func (o *Output) EmitString(r *Record, value string) {
	o.start(r)
	b := o.reserve(recordHeaderSize + len(value))
	putHeader(b, uint32(r.index), 0, kindEmit,
		uint8(SameKey|SameTime|SameMeta)|r.flags&(flagHasTime|flagHasKey), 0, 0, uint32(len(value)), 0)
	copy(b[recordHeaderSize:], value)
}

// To emits r to port with r's key, time and metadata, and value as its
// value; a nil value keeps r's value (an empty non-nil slice is an empty
// value). To(Main, r, nil) is Keep(r).
func (o *Output) To(port PortID, r *Record, value []byte) {
	o.start(r)
	num := o.portNum(port)
	flags := uint8(SameKey|SameTime|SameMeta) | r.flags&(flagHasTime|flagHasKey)
	if value == nil {
		putKeep(o.reserve(keepRecordSize), uint32(r.index), num)
		return
	}
	b := o.reserve(recordHeaderSize + len(value))
	putHeader(b, uint32(r.index), num, kindEmit, flags, 0, 0, uint32(len(value)), 0)
	copy(b[recordHeaderSize:], value)
}

// Fail sends input record r, unchanged, to the step's error output with
// reason. Other records of the batch are unaffected. Records emitted for r
// before Fail are still emitted.
func (o *Output) Fail(r *Record, reason string) {
	o.start(r)
	b := o.reserve(recordHeaderSize + len(reason))
	putHeader(b, uint32(r.index), 0, kindFail, 0, 0, 0, uint32(len(reason)), 0)
	copy(b[recordHeaderSize:], reason)
}

// EmitRecord emits rec, derived from input record r, with full control over
// every part.
func (o *Output) EmitRecord(r *Record, rec *OutRecord) {
	o.start(r)
	num := o.portNum(rec.Port)
	same := rec.Same & SameAll
	if same == SameAll {
		putKeep(o.reserve(keepRecordSize), uint32(r.index), num)
		return
	}
	flags := uint8(same)
	var klen, vlen, mlen int
	if same&SameKey != 0 {
		flags |= r.flags & flagHasKey
	} else if rec.HasKey {
		flags |= flagHasKey
		klen = len(rec.Key)
	}
	if same&SameValue == 0 {
		vlen = len(rec.Value)
	}
	if same&SameTime != 0 {
		flags |= r.flags & flagHasTime
	} else if rec.HasTime {
		flags |= flagHasTime
	}
	if same&SameMeta == 0 {
		for i := range rec.Meta {
			mlen += 8 + len(rec.Meta[i].Name) + len(rec.Meta[i].Value)
		}
	}
	var t int64
	if flags&flagHasTime != 0 && same&SameTime == 0 {
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
		flagHasKey|uint8(SameValue|SameTime|SameMeta)|r.flags&flagHasTime, 0, uint32(len(key)), 0, 0)
	copy(b[recordHeaderSize:], key)
}

// emitTime answers a timestamp function for r.
func (o *Output) emitTime(r *Record, ms int64) {
	putHeader(o.reserve(recordHeaderSize), uint32(r.index), 0, kindEmit,
		flagHasTime|uint8(SameKey|SameValue|SameMeta)|r.flags&flagHasKey, ms, 0, 0, 0)
}

// start checks the ordering rule and flushes a full buffer.
func (o *Output) start(r *Record) {
	if r.index < o.last || r.index >= o.n {
		o.orderPanic(r)
	}
	o.last = r.index
	if len(o.buf) >= flushAt {
		o.flush()
	}
}

func (o *Output) orderPanic(r *Record) {
	if r.index >= o.n {
		panic("wsp: output for record " + itoa(int64(r.index)) + ", which is not in this batch of " + itoa(int64(o.n)))
	}
	panic("wsp: output for record " + itoa(int64(r.index)) + " after output for record " +
		itoa(int64(o.last)) + ": emit in ascending record order")
}

func (o *Output) portNum(p PortID) uint16 {
	if int(p) >= len(reg.portNums) {
		if p == Main {
			return 0
		}
		panic("wsp: unknown port id " + itoa(int64(p)) + " (use the value Port returned)")
	}
	return reg.portNums[p]
}

// reserve appends n bytes to the buffer and returns them.
func (o *Output) reserve(n int) []byte {
	l := len(o.buf)
	if cap(o.buf)-l < n {
		o.grow(n)
	}
	o.buf = o.buf[:l+n]
	return o.buf[l:]
}

func (o *Output) grow(n int) {
	c := 2*cap(o.buf) + n
	if c < 64<<10 {
		c = 64 << 10
	}
	nb := make([]byte, len(o.buf), c)
	copy(nb, o.buf)
	o.buf = nb
}

// reset prepares the output for a batch of n records.
func (o *Output) reset(n int) {
	o.buf = o.buf[:0]
	o.n = n
	o.last = 0
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
