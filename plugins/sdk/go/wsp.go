// Package wsp is the Go SDK for wsp plugins: user functions of a wsp pipeline
// compiled to WebAssembly (GOOS=wasip1 GOARCH=wasm) and run by the wsp host.
//
// A plugin is a package main with an empty main function that registers its
// functions from init():
//
//	package main
//
//	import wsp "github.com/wsp-project/wsp/plugins/sdk/go"
//
//	func init() {
//		wsp.Fields("level")                  // field 0
//		wsp.Process(func(r *wsp.Record, out *wsp.Output) {
//			if lvl, _ := r.Field(0).Str(); string(lvl) == "debug" {
//				return // drop
//			}
//			out.Keep(r)
//		})
//	}
//
//	func main() {}
//
// and is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// The SDK implements the guest side of the wsp host ABI v1 (hostabi/ABI.md in
// the wsp repository): it exports wsp_abi, wsp_init, wsp_process, wsp_key and
// wsp_timestamp, copies each batch into a reused buffer with one host call,
// runs the registered function over its records without crossing into the
// host per record, and hands the output back in one chunk (more for outputs
// over 1 MiB). Records are views into that buffer: nothing is allocated per
// record.
//
// The same package also compiles natively (any GOOS other than wasip1), where
// its host calls go to an in-process stub instead; the subpackage wsptest
// drives that stub so that a plugin's logic can be unit-tested with plain
// go test, through the same encoder and decoder as in Wasm.
//
// # Performance
//
// The SDK costs a few tens of nanoseconds per record on top of the plugin's
// own work: the batch crosses the Wasm boundary twice per call, not per
// record; a record is a header offset into the batch buffer; Record.Field,
// the Field accessors, Output.Keep, Output.Emit and Output.Fail are inlined
// into the plugin's function. Go's Wasm code pays for each call of a
// function that makes calls, so the per-record Process form costs one such
// call per record; ProcessBatch runs the plugin's own loop instead and is
// the fastest form for very cheap functions. Avoid fmt, reflection and
// encoding/json per record: they are slow in Wasm.
//
// # Concurrency
//
// A Wasm instance is single-threaded and the host never calls it
// concurrently, so registered functions need no locking. They must not keep
// a *Record, a *Batch or a slice returned by a Record or Field method after
// they return: the memory is reused for the next batch.
package wsp

// PortID names an output port. The zero value, Main, is the step's main
// output; Port returns the others.
type PortID uint16

// Main is the step's main output port (the next step, or the pipeline
// output).
const Main PortID = 0

// Level is the severity of a Log line.
type Level int32

// Log levels, as the host's log import numbers them.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// registrations, made from init() (and, for Fields and Port, from the OnInit
// function).
var reg struct {
	fields       []string // declared field paths, in order
	staticFields int      // how many of fields were declared before wsp_init
	anyFields    bool     // Fields was called before wsp_abi
	ports        []string // ports[k-1] is PortID k
	portNums     []uint16 // portNums[k] is the host's number of PortID k; portNums[0] = 0
	staticPorts  int
	anyPorts     bool

	onInit       func(config []byte) error
	process      func(r *Record, out *Output)
	processBatch func(b *Batch, out *Output)
	key          func(r *Record) ([]byte, error)
	timestamp    func(r *Record) (int64, error)
	aggregate    *AggregateFuncs
	state        bool   // UseState
	stateVersion uint32 // UseState's layout version
	onTimer      func(t *Timer, out *Output)
}

// phase of the instance: registrations are allowed from init() and, for
// Fields and Port, from inside the OnInit function.
var phase int

const (
	phaseLoad    = iota // package init: registrations allowed
	phaseInit           // inside wsp_init: Fields and Port declare at once
	phaseRunning        // after wsp_init: registrations panic
)

// Fields declares JSON fields the host extracts from every input record's
// value, as dotted paths into nested objects ("sensor_id", "reading.value").
// Field numbers count declarations over all calls, in order, from 0: the
// first path of the first call is Record.Field(0). Fields returns the number
// of the first path it declared.
//
// Call it from init(). It may also be called from the OnInit function (for
// fields named by the configuration); a plugin that declares fields only
// there calls Fields() with no arguments from init(), so that the module
// announces the "fields" feature. A v1 host allows up to 64 fields. Paths
// must be non-empty, without whitespace at either end, line breaks or empty
// segments; a bad path fails wsp_init.
func Fields(paths ...string) int {
	first := len(reg.fields)
	switch phase {
	case phaseLoad:
		reg.anyFields = true
		reg.fields = append(reg.fields, paths...)
	case phaseInit:
		for _, p := range paths {
			if err := declareField(p); err != "" {
				panic(initError(err))
			}
		}
	default:
		panic("wsp: Fields called after wsp_init; call it from init() or OnInit")
	}
	return first
}

// Port declares a named output port and returns its id for Output.To. The
// same name gives the same id. Call it from init() (the host resolves the
// name during wsp_init) or from the OnInit function; a plugin that declares
// ports only there must also call Port from init() for at least one of them,
// so that the module announces the "ports" feature. Names are 1 to 128
// bytes; a v1 host allows up to 255 ports.
func Port(name string) PortID {
	for i, p := range reg.ports {
		if p == name {
			return PortID(i + 1)
		}
	}
	switch phase {
	case phaseLoad:
		reg.anyPorts = true
		reg.ports = append(reg.ports, name)
		return PortID(len(reg.ports))
	case phaseInit:
		id, err := declarePort(name)
		if err != "" {
			panic(initError(err))
		}
		return id
	}
	panic("wsp: Port called after wsp_init; call it from init() or OnInit")
}

// OnInit registers fn, called once per instance during wsp_init, after the
// fields and ports registered from init() are declared. config is the step's
// `config` from the pipeline, as JSON (empty when the step has none). A
// non-nil error refuses the module; its text is the message the host
// reports.
func OnInit(fn func(config []byte) error) {
	checkLoad("OnInit", fn == nil)
	if reg.onInit != nil {
		panic("wsp: OnInit registered twice")
	}
	reg.onInit = fn
}

// Process registers the per-record process function (the wsp_process
// export, `function: process`, the default). The SDK calls fn for every
// record of a batch, in order, inside one host call. fn decides the record's
// fate through out: Keep, Emit, To or EmitRecord one or more times (several
// records for one input make a flat map), Fail, or nothing at all (drop).
//
// Process and ProcessBatch are exclusive; registering a second process
// function panics.
func Process(fn func(r *Record, out *Output)) {
	checkLoad("Process", fn == nil)
	if reg.process != nil || reg.processBatch != nil {
		panic("wsp: a Process or ProcessBatch function is already registered")
	}
	reg.process = fn
}

// ProcessBatch registers the batch form of the process function: fn sees
// the whole batch at once (to look across records) and must emit in
// ascending record order (several records per input allowed); emitting out
// of order panics, which fails the batch.
func ProcessBatch(fn func(b *Batch, out *Output)) {
	checkLoad("ProcessBatch", fn == nil)
	if reg.process != nil || reg.processBatch != nil {
		panic("wsp: a Process or ProcessBatch function is already registered")
	}
	reg.processBatch = fn
}

// Key registers the key function (the wsp_key export, `function: key`): fn
// returns the key of each record. The key is copied at once, so fn may
// return a slice of the record or of a reused buffer. A non-nil error sends
// that record to the error output with the error's text as the reason.
func Key(fn func(r *Record) (key []byte, err error)) {
	checkLoad("Key", fn == nil)
	if reg.key != nil {
		panic("wsp: Key registered twice")
	}
	reg.key = fn
}

// Timestamp registers the event-time function (the wsp_timestamp export,
// `function: timestamp`): fn returns the event time of each record in
// milliseconds since the Unix epoch (may be negative). A non-nil error sends
// that record to the error output with the error's text as the reason.
func Timestamp(fn func(r *Record) (ms int64, err error)) {
	checkLoad("Timestamp", fn == nil)
	if reg.timestamp != nil {
		panic("wsp: Timestamp registered twice")
	}
	reg.timestamp = fn
}

// Log writes a line to the host's log at level. It may be called at any
// time, including from init(); the host cuts lines at 64 KiB.
func Log(level Level, msg string) {
	hostLog(int32(level), msg)
}

func checkLoad(what string, isNil bool) {
	if isNil {
		panic("wsp: " + what + " with a nil function")
	}
	if phase != phaseLoad {
		panic("wsp: " + what + " called after initialization; register from init()")
	}
}

// initError is a panic value raised by Fields/Port inside OnInit; runInit
// turns it into the wsp_init failure message.
type initError string

// resetRegistrations forgets every registration (for the SDK's own tests
// through the native stub).
func resetRegistrations() {
	reg.fields, reg.ports, reg.portNums = nil, nil, nil
	reg.staticFields, reg.staticPorts = 0, 0
	reg.anyFields, reg.anyPorts = false, false
	reg.onInit, reg.process, reg.processBatch, reg.key, reg.timestamp = nil, nil, nil, nil, nil
	reg.aggregate = nil
	reg.state, reg.stateVersion, reg.onTimer = false, 0, nil
	phase = phaseLoad
	nfields = 0
}
