package wsp

import (
	"runtime"
	"unsafe"
)

// The bodies of the module's exports. host_wasip1.go exports them to the
// host; host_stub.go hands them to the native test stub. Both run this same
// code over the same bytes.

// Reused across calls, so that a batch allocates nothing once the buffers
// have grown to the working size.
var (
	inBuf   []byte   // the input batch, as batch_read copied it
	out     Output   // the output being built
	one     Record   // the record of the per-record forms
	batch   Batch    // the records of ProcessBatch
	nfields int      // fields declared with the host
	arena   []uint32 // field offset caches of batch.recs
)

type export int

const (
	exportProcess export = iota
	exportKey
	exportTimestamp
	exportTimer
)

var exportNames = [...]string{"wsp_process", "wsp_key", "wsp_timestamp", "wsp_on_timer"}

// abi is wsp_abi: the version and the features the registrations use.
func abi() int64 {
	var f int64
	if reg.anyFields {
		f |= featureFields
	}
	if reg.anyPorts {
		f |= featurePorts
	}
	if reg.aggregate != nil {
		f |= featureAggregate
	}
	if reg.state {
		f |= featureState
	}
	if reg.onTimer != nil {
		f |= featureTimers
	}
	return abiVersion | f<<32
}

// runInit is wsp_init: declares fields and ports, then runs OnInit with the
// step's configuration.
func runInit() (rc int32) {
	defer func() {
		if v := recover(); v != nil {
			phase = phaseRunning
			failWith(v, "wsp_init")
			rc = 1
		}
	}()
	if phase == phaseLoad {
		reg.staticFields, reg.staticPorts = len(reg.fields), len(reg.ports)
	} else {
		// wsp_init again in the same memory (only the native stub does
		// this): forget what the previous OnInit declared.
		reg.fields, reg.ports = reg.fields[:reg.staticFields], reg.ports[:reg.staticPorts]
	}
	phase = phaseInit
	nfields = 0
	reg.portNums = append(reg.portNums[:0], 0)

	if len(reg.fields) > 0 {
		var list []byte
		for i, p := range reg.fields {
			if msg := checkFieldPath(p); msg != "" {
				hostFail(msg)
				return 1
			}
			if i > 0 {
				list = append(list, '\n')
			}
			list = append(list, p...)
		}
		if msg := declareFields(list, len(reg.fields)); msg != "" {
			hostFail(msg)
			return 1
		}
	}
	for _, name := range reg.ports {
		num, msg := resolvePort(name)
		if msg != "" {
			hostFail(msg)
			return 1
		}
		reg.portNums = append(reg.portNums, num)
	}
	if a := reg.aggregate; a != nil && a.Size > 0 {
		if rc := hostAggSize(a.Size); rc != 0 {
			hostFail("wsp: agg_size " + itoa(int64(a.Size)) + ": " + errName(rc))
			return 1
		}
	}
	if a := reg.aggregate; a != nil && len(a.Results) > 0 {
		if rc := hostAggResult(resultDecl(a.Results)); rc < 0 {
			hostFail("wsp: agg_result: " + errName(rc))
			return 1
		}
	}
	if reg.onTimer != nil && !reg.state {
		hostFail("wsp: OnTimer needs UseState")
		return 1
	}
	if reg.state {
		if rc := hostStateVersion(reg.stateVersion); rc != 0 {
			hostFail("wsp: state_version: " + errName(rc))
			return 1
		}
	}
	if reg.onInit != nil {
		if err := reg.onInit(readConfig()); err != nil {
			hostFail(err.Error())
			phase = phaseRunning
			return 1
		}
	}
	phase = phaseRunning
	one.foff = make([]uint32, nfields)
	batch.recs, arena = nil, nil
	return 0
}

// declareField declares one field from inside OnInit.
func declareField(p string) string {
	if msg := checkFieldPath(p); msg != "" {
		return msg
	}
	if msg := declareFields([]byte(p), 1); msg != "" {
		return msg
	}
	reg.fields = append(reg.fields, p)
	return ""
}

// declareFields declares the newline-separated paths in list, k of them.
func declareFields(list []byte, k int) string {
	if nfields+k > maxFields {
		return "wsp: " + itoa(int64(nfields+k)) + " fields declared; the host allows " + itoa(maxFields)
	}
	rc := hostDeclareFields(list)
	if rc < 0 {
		return "wsp: declare_fields: " + errName(rc)
	}
	if int(rc) != nfields+k {
		return "wsp: declare_fields: the host counts " + itoa(int64(rc)) + " fields, the SDK declared " +
			itoa(int64(nfields+k))
	}
	nfields += k
	return ""
}

func checkFieldPath(p string) string {
	bad := ""
	switch {
	case p == "":
		bad = "is empty"
	case len(p) > maxFieldPath:
		bad = "is longer than " + itoa(maxFieldPath) + " bytes"
	case p[0] == '.' || p[len(p)-1] == '.':
		bad = "has an empty segment"
	}
	for i := 0; bad == "" && i < len(p); i++ {
		switch c := p[i]; {
		case c == '\n' || c == '\r':
			bad = "contains a line break"
		case (c == ' ' || c == '\t') && (i == 0 || i == len(p)-1):
			bad = "starts or ends with white space"
		case c == '.' && i > 0 && p[i-1] == '.':
			bad = "has an empty segment"
		}
	}
	if bad == "" {
		return ""
	}
	return "wsp: field path \"" + p + "\" " + bad
}

// declarePort declares a port from inside OnInit.
func declarePort(name string) (PortID, string) {
	num, msg := resolvePort(name)
	if msg != "" {
		return 0, msg
	}
	reg.ports = append(reg.ports, name)
	reg.portNums = append(reg.portNums, num)
	return PortID(len(reg.ports)), ""
}

func resolvePort(name string) (uint16, string) {
	if name == "" || len(name) > maxPortName {
		return 0, "wsp: port name \"" + name + "\" must be 1 to " + itoa(maxPortName) + " bytes"
	}
	rc := hostPort(name)
	if rc < 0 {
		msg := errName(rc)
		if rc == errTooMany {
			msg = "more than " + itoa(maxPorts) + " ports"
		}
		return 0, "wsp: port \"" + name + "\": " + msg
	}
	if rc < 1 || rc > maxPorts {
		return 0, "wsp: port \"" + name + "\": the host returned " + itoa(int64(rc))
	}
	return uint16(rc), ""
}

// readConfig returns the step's configuration (nil when empty).
func readConfig() []byte {
	var buf []byte
	for {
		rc := hostConfigRead(buf)
		if rc < 0 {
			panic(newHostError("config_read", rc))
		}
		if int(rc) <= len(buf) {
			return buf[:rc]
		}
		buf = make([]byte, rc)
	}
}

// runBatch is wsp_process, wsp_key and wsp_timestamp over a batch of n
// records: one batch_read, the loop over the records (scan), and one
// batch_write (more when the output passes flushAt).
//
// Performance note: in Go's Wasm code as wazero runs it, calling a function
// that itself makes calls costs tens of nanoseconds, as do a pointer store
// (write barrier) and a branch that does not fall through (a jump through
// the function's dispatch table, and a time-limit check when the host
// closes calls on context cancellation). So per record the loops read the
// header's lengths, store two integers, walk the fields in a leaf function,
// and make one call, to the user's function, into which the Record, Field
// and Output fast paths are inlined.
func runBatch(e export, n int32) (rc int32) {
	switch {
	case e == exportProcess && reg.process == nil && reg.processBatch == nil:
		hostFail("no Process function registered")
		return 1
	case e == exportKey && reg.key == nil:
		hostFail("no Key function registered")
		return 1
	case e == exportTimestamp && reg.timestamp == nil:
		hostFail("no Timestamp function registered")
		return 1
	case e == exportTimer && reg.onTimer == nil:
		hostFail("no OnTimer function registered")
		return 1
	}
	defer func() {
		if v := recover(); v != nil {
			out.buf = out.buf[:0]
			failWith(v, exportNames[e])
			rc = 1
		}
	}()
	data := readBatch()
	count := int(le.Uint32(data))
	if count != int(n) {
		panic(hostError("wsp: the batch holds " + itoa(int64(count)) + " records, the call says " + itoa(int64(n))))
	}
	out.reset()
	if reg.state {
		data = cutState(data, count)
	}
	scan(e, data, count)
	out.flush()
	return 0
}

// scan runs the batch loop (see runBatch) for export e.
//
// The loops are written for Go's Wasm code generator: each form has its own
// small loop (values live across a call are reloaded from memory), checks
// that fail leave the loop directly (the generator lays out the other
// branch of an if after a jump through the function's dispatch table, so
// the common path must be the one that falls through), and the field walk
// is a leaf function with table lookups instead of branches.
func scan(e export, data []byte, count int) {
	full := data[:cap(data)]
	var p int
	if e == exportProcess && reg.process == nil {
		p = scanBatch(batchRecords(count, full), data)
		if p == len(data) {
			reg.processBatch(&batch, &out)
		}
	} else {
		r := &one
		if unsafe.SliceData(r.buf) != unsafe.SliceData(full) {
			r.buf = full
		}
		switch e {
		case exportProcess:
			p = scanProcess(r, data, count, reg.process)
		case exportKey:
			fn := reg.key
			p = scanEach(r, data, count, func(r *Record) {
				if k, err := fn(r); err != nil {
					out.Fail(r, err.Error())
				} else {
					out.emitKey(r, k)
				}
			})
		case exportTimer:
			fn := reg.onTimer
			var t Timer
			t.buf, t.foff = r.buf, r.foff
			p = scanEach(r, data, count, func(r *Record) {
				t.hdr, t.index = r.hdr, r.index
				fn(&t, &out)
			})
		case exportTimestamp:
			fn := reg.timestamp
			p = scanEach(r, data, count, func(r *Record) {
				if ms, err := fn(r); err != nil {
					out.Fail(r, err.Error())
				} else {
					out.emitTime(r, ms)
				}
			})
		}
	}
	if p != len(data) {
		panic(errMalformedBatch)
	}
}

// The loops return the offset after the last record, or -1 for a batch
// whose records run past its end.

func scanProcess(r *Record, data []byte, count int, fn func(*Record, *Output)) int {
	nf := len(r.foff)
	p := batchHeaderSize
	i := 0
	for ; i < count; i++ {
		if len(data)-p < recordHeaderSize {
			break
		}
		w2, w3 := load64(data, p+16), load64(data, p+24)
		end := p + recordHeaderSize + int(uint32(w2)) + int(w2>>32) + int(uint32(w3)) + int(w3>>32)
		if end > len(data) {
			break
		}
		r.hdr, r.index = p, i
		if nf > 0 {
			walkFields(r.foff, data, p)
		}
		p = end
		fn(r, &out)
		if len(out.buf) >= flushAt {
			out.flush()
		}
	}
	if i < count {
		return -1
	}
	return p
}

func scanBatch(recs []Record, data []byte) int {
	p := batchHeaderSize
	i := 0
	for ; i < len(recs); i++ {
		if len(data)-p < recordHeaderSize {
			break
		}
		w2, w3 := load64(data, p+16), load64(data, p+24)
		end := p + recordHeaderSize + int(uint32(w2)) + int(w2>>32) + int(uint32(w3)) + int(w3>>32)
		if end > len(data) {
			break
		}
		r := &recs[i]
		r.hdr, r.index = p, i
		if len(r.foff) > 0 {
			walkFields(r.foff, data, p)
		}
		p = end
	}
	if i < len(recs) {
		return -1
	}
	return p
}

// scanEach walks the count records of data, pointing r at each in turn
// and calling each; it returns the offset after the last record, or -1 when
// the batch is malformed. Key and timestamp functions share it (Process has
// its own inlined loop: it is the hot path).
func scanEach(r *Record, data []byte, count int, each func(*Record)) int {
	p := batchHeaderSize
	i := 0
	for ; i < count; i++ {
		if len(data)-p < recordHeaderSize {
			break
		}
		w2, w3 := load64(data, p+16), load64(data, p+24)
		end := p + recordHeaderSize + int(uint32(w2)) + int(w2>>32) + int(uint32(w3)) + int(w3>>32)
		if end > len(data) {
			break
		}
		r.hdr, r.index = p, i
		walkFields(r.foff, data, p)
		p = end
		each(r)
	}
	if i < count {
		return -1
	}
	return p
}

// entrySizes is the size of a field entry by tag, without a string's or
// raw text's bytes; 0 for an unknown tag. entryLenMask selects the u32
// length that follows the tag of a string or raw entry.
var (
	entrySizes   = [256]uint8{tagMissing: 1, tagNull: 1, tagFalse: 1, tagTrue: 1, tagInt: 9, tagFloat: 9, tagString: 5, tagRaw: 5}
	entryLenMask = [256]uint32{tagString: 0xFFFFFFFF, tagRaw: 0xFFFFFFFF}
)

// walkFields stores in foff the offset in data of each declared field's
// entry for the record whose (checked) header starts at data[p], or 0
// (Missing) for an entry that is absent, truncated or unknown and every
// entry after it. It reads without bounds checks after its own checks (and
// up to 8 bytes past a record's end, which readBatch keeps inside the
// buffer), so that it is a leaf function.
func walkFields(foff []uint32, data []byte, p int) {
	w2, w3 := load64(data, p+16), load64(data, p+24)
	fs := p + recordHeaderSize + int(uint32(w2)) + int(w2>>32) + int(uint32(w3))
	end := fs + int(w3>>32)
	base := unsafe.Pointer(unsafe.SliceData(data))
	k := 0
	for ; k < len(foff); k++ {
		tag := *(*byte)(unsafe.Add(base, fs))
		sz := int(entrySizes[tag]) + int(load32(data, fs+1)&entryLenMask[tag])
		if uint(sz-1) >= uint(end-fs) {
			break // no room left, unknown tag, or truncated
		}
		foff[k] = uint32(fs)
		fs += sz
	}
	for fp := unsafe.Pointer(unsafe.SliceData(foff)); k < len(foff); k++ {
		*(*uint32)(unsafe.Add(fp, 4*k)) = 0 // k < len(foff): no bounds check
	}
}

// batchRecords makes batch hold count records viewing buf.
func batchRecords(count int, buf []byte) []Record {
	if cap(batch.recs) < count {
		c := max(count, 2*cap(batch.recs))
		batch.recs = make([]Record, c)
		arena = make([]uint32, c*nfields)
		for i := range batch.recs {
			batch.recs[i].foff = arena[i*nfields : (i+1)*nfields : (i+1)*nfields]
		}
	}
	recs := batch.recs[:cap(batch.recs)]
	if len(recs) > 0 && unsafe.SliceData(recs[0].buf) != unsafe.SliceData(buf) {
		for i := range recs {
			recs[i].buf = buf
		}
	}
	batch.recs = recs[:count]
	return batch.recs
}

const errMalformedBatch = hostError("wsp: malformed input batch")

// readBatch copies the staged batch into inBuf, growing it as needed.
func readBatch() []byte {
	if cap(inBuf) == 0 {
		inBuf = make([]byte, 0, 64<<10)
	}
	for {
		// Offer all but readSlack bytes: the field walk may read a few
		// bytes past the end of the batch.
		room := cap(inBuf) - readSlack
		rc := hostBatchRead(inBuf[:room])
		if rc < 0 {
			panic(newHostError("batch_read", rc))
		}
		if int(rc) <= room {
			if rc < batchHeaderSize {
				panic(errMalformedBatch)
			}
			return inBuf[:rc]
		}
		inBuf = make([]byte, 0, int(rc)+int(rc)/8+readSlack)
	}
}

// readSlack is the space kept after the batch in inBuf.
const readSlack = 16

// failWith reports a recovered panic v through fail, and logs the stack of
// a panic in user code.
func failWith(v any, export string) {
	var msg string
	switch x := v.(type) {
	case initError:
		hostFail(string(x))
		return
	case hostError:
		hostFail(string(x))
		return
	case error:
		msg = x.Error()
	case string:
		msg = x
	case interface{ String() string }:
		msg = x.String()
	case int:
		msg = itoa(int64(x))
	default:
		msg = "a value that is not a string or an error"
	}
	msg = "panic: " + msg
	hostFail(msg)
	stack := make([]byte, 16<<10)
	stack = stack[:runtime.Stack(stack, false)]
	hostLog(int32(LevelError), "wsp: "+export+": "+msg+"\n"+string(stack))
}
