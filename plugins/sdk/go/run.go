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
)

var exportNames = [...]string{"wsp_process", "wsp_key", "wsp_timestamp"}

// abi is wsp_abi: the version and the features the registrations use.
func abi() int64 {
	var f int64
	if reg.anyFields {
		f |= featureFields
	}
	if reg.anyPorts {
		f |= featurePorts
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
// records.
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
	out.reset(count)
	p := batchHeaderSize
	r := &one
	r.buf = data[:cap(data)]
	switch e {
	case exportProcess:
		if fn := reg.process; fn != nil {
			for i := 0; i < count; i++ {
				p = r.parse(data, p, i)
				fn(r, &out)
			}
			break
		}
		p = parseBatch(data, count)
		reg.processBatch(&batch, &out)
	case exportKey:
		fn := reg.key
		for i := 0; i < count; i++ {
			p = r.parse(data, p, i)
			key, err := fn(r)
			if err != nil {
				out.Fail(r, err.Error())
				continue
			}
			out.start(r)
			out.emitKey(r, key)
		}
	case exportTimestamp:
		fn := reg.timestamp
		for i := 0; i < count; i++ {
			p = r.parse(data, p, i)
			ms, err := fn(r)
			if err != nil {
				out.Fail(r, err.Error())
				continue
			}
			out.start(r)
			out.emitTime(r, ms)
		}
	}
	if p != len(data) {
		panic(errMalformedBatch)
	}
	out.flush()
	return 0
}

const errMalformedBatch = hostError("wsp: malformed input batch")

// readBatch copies the staged batch into inBuf, growing it as needed.
func readBatch() []byte {
	if cap(inBuf) == 0 {
		inBuf = make([]byte, 0, 64<<10)
	}
	for {
		rc := hostBatchRead(inBuf[:cap(inBuf)])
		if rc < 0 {
			panic(newHostError("batch_read", rc))
		}
		if int(rc) <= cap(inBuf) {
			if rc < batchHeaderSize {
				panic(errMalformedBatch)
			}
			return inBuf[:rc]
		}
		inBuf = make([]byte, 0, int(rc)+int(rc)/8)
	}
}

// parse points r at the record whose header starts at data[p] and returns
// the offset of the next record. It stores no pointers (r.buf is set by the
// caller when the buffer changes).
func (r *Record) parse(data []byte, p, i int) int {
	if len(data)-p < recordHeaderSize {
		panic(errMalformedBatch)
	}
	h := data[p : p+recordHeaderSize]
	w0 := le.Uint64(h[0:])
	t := le.Uint64(h[8:])
	w2 := le.Uint64(h[16:])
	w3 := le.Uint64(h[24:])
	kl, vl, ml, fl := w2&0xFFFFFFFF, w2>>32, w3&0xFFFFFFFF, w3>>32
	start := uint64(p + recordHeaderSize)
	end := start + kl + vl + ml + fl
	if end > uint64(len(data)) {
		panic(errMalformedBatch)
	}
	r.index = i
	r.time = int64(t)
	r.flags = uint8(w0 >> 56)
	r.key = uint32(start)
	r.value = uint32(start + kl)
	r.meta = uint32(start + kl + vl)
	r.fields = uint32(start + kl + vl + ml)
	r.end = uint32(end)
	r.fknown, r.fnext = 0, 0
	return int(end)
}

// parseBatch fills batch with the count records of data and returns the
// offset after the last.
func parseBatch(data []byte, count int) int {
	if cap(batch.recs) < count {
		batch.recs = make([]Record, count)
		arena = make([]uint32, count*nfields)
		for i := range batch.recs {
			batch.recs[i].foff = arena[i*nfields : (i+1)*nfields : (i+1)*nfields]
		}
	}
	batch.recs = batch.recs[:count]
	full := data[:cap(data)]
	p := batchHeaderSize
	for i := range batch.recs {
		r := &batch.recs[i]
		if unsafe.SliceData(r.buf) != unsafe.SliceData(full) {
			r.buf = full
		}
		p = r.parse(data, p, i)
	}
	return p
}

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
