// Package hostabi is the contract between the wsp host and its WebAssembly
// guests: the names, signatures, numbers and byte layouts of ABI v1, and the
// host-side encoder and decoder of the batch format. ABI.md beside this file
// is the specification; this package is its Go rendering and depends on
// nothing but the standard library.
//
// In one sentence: the host stages a batch, calls one guest export per batch,
// the guest copies the batch into its own memory through an import, and hands
// its output records back through another import. The host never calls a
// guest allocator and never keeps a guest pointer past the call.
package hostabi

import "strconv"

// Version is the ABI version this package describes. A module declares the
// version it was built for in the low 32 bits of its wsp_abi export.
const Version uint32 = 1

// ImportModule is the Wasm import module name of every host function.
const ImportModule = "wsp"

// Host functions a guest may import from ImportModule.
const (
	// batch_read(ptr, cap i32) -> i32: copies the staged input batch to
	// guest memory [ptr, ptr+cap) when it fits and returns its length in
	// bytes either way; when the result is larger than cap nothing was
	// copied and the guest calls again with a larger buffer.
	FuncBatchRead = "batch_read"
	// batch_write(ptr, len i32) -> i32: hands the host a chunk of output
	// records. May be called several times per call; records accumulate.
	// Returns 0, or a negative Err code (the call then fails).
	FuncBatchWrite = "batch_write"
	// config_read(ptr, cap i32) -> i32: like batch_read, for the step's
	// configuration (JSON bytes; empty when the step has none).
	FuncConfigRead = "config_read"
	// declare_fields(ptr, len i32) -> i32: during wsp_init only: the JSON
	// field paths the module wants decoded, one per line ("a.b.c" dotted
	// paths). Returns the number of fields declared or a negative Err code.
	FuncDeclareFields = "declare_fields"
	// port(ptr, len i32) -> i32: during wsp_init only: resolves a named
	// output port and returns its index (>= 1) or a negative Err code.
	FuncPort = "port"
	// log(level, ptr, len i32): writes a log line at a LogLevel.
	FuncLog = "log"
	// fail(ptr, len i32): sets the message that explains a non-zero return
	// of the export being called.
	FuncFail = "fail"
	// agg_size(size i32) -> i32: during wsp_init only: the module's
	// aggregate accumulators are fixed-size, size bytes each (1 to
	// MaxAccSize), and the wsp_agg_* exports use the fixed formats
	// (agg.go). Returns 0 or a negative Err code.
	FuncAggSize = "agg_size"
	// agg_result(ptr, len i32) -> i32: during wsp_init only: declares the
	// typed fields of the aggregate's result (result.go); wsp_agg_finish
	// then writes 8 bytes per field and group instead of JSON text.
	// Returns the number of fields or a negative Err code; a refused
	// declaration also fails the load, with the reason.
	FuncAggResult = "agg_result"
)

// Exports a guest may provide.
const (
	// wsp_abi() -> i64: required. Low 32 bits: ABI version; high 32 bits:
	// the Feature bits the module uses.
	ExportABI = "wsp_abi"
	// wsp_init() -> i32: optional. Called once per instance, after
	// _initialize, before any other export. Non-zero fails the load.
	ExportInit = "wsp_init"
	// wsp_process(n i32) -> i32: the main process function over a staged
	// batch of n records. Non-zero fails the whole batch.
	ExportProcess = "wsp_process"
	// wsp_key(n i32) -> i32: key function: one output record per input, in
	// order, carrying the key (FlagHasKey) or a failure.
	ExportKey = "wsp_key"
	// wsp_timestamp(n i32) -> i32: event-time function: one output record
	// per input, in order, carrying the time (FlagHasTime) or a failure.
	ExportTimestamp = "wsp_timestamp"

	// The aggregate contract (FeatureAggregate); wsp_agg_create and
	// wsp_close are reserved.
	ExportAggCreate = "wsp_agg_create"
	ExportAggAdd    = "wsp_agg_add"
	ExportAggMerge  = "wsp_agg_merge"
	ExportAggFinish = "wsp_agg_finish"
	// wsp_on_timer(n i32) -> i32: FeatureTimers: a batch of n fired
	// timers, answered as wsp_process answers records (state.go).
	ExportOnTimer = "wsp_on_timer"
	ExportClose   = "wsp_close"

	// ExportMemory is the memory every module must export.
	ExportMemory = "memory"
	// ExportInitialize is the reactor initializer (Go -buildmode=c-shared,
	// clang -mexec-model=reactor); called first when present.
	ExportInitialize = "_initialize"
	// ExportStart marks a command module; ABI v1 refuses command modules.
	ExportStart = "_start"
)

// Feature is a bit in the high half of wsp_abi's result.
type Feature uint32

const (
	// FeatureFields: the module declares JSON fields and reads them from
	// the fields section of input records.
	FeatureFields Feature = 1 << iota
	// FeaturePorts: the module routes records to named output ports.
	FeaturePorts
	// FeatureAggregate: the module exports the wsp_agg_* contract (issue "windowing").
	FeatureAggregate
	// FeatureState: the module uses keyed state imports (issue "state").
	FeatureState
	// FeatureTimers: the module registers timers and exports wsp_on_timer (issue "state").
	FeatureTimers
)

// FeaturesV1 is what a v1 host implements.
const FeaturesV1 = FeatureFields | FeaturePorts | FeatureAggregate | FeatureState | FeatureTimers

// FeatureNames maps each bit to its name, for `wsp plugin inspect` and errors.
var FeatureNames = map[Feature]string{
	FeatureFields:    "fields",
	FeaturePorts:     "ports",
	FeatureAggregate: "aggregate",
	FeatureState:     "state",
	FeatureTimers:    "timers",
}

// Names lists the names of the bits set in f, lowest first.
func (f Feature) Names() []string {
	var out []string
	for b := Feature(1); b != 0; b <<= 1 {
		if f&b == 0 {
			continue
		}
		if n, ok := FeatureNames[b]; ok {
			out = append(out, n)
		} else {
			out = append(out, "unknown-bit-"+strconv.Itoa(bitIndex(b)))
		}
	}
	return out
}

func bitIndex(b Feature) int {
	i := 0
	for b > 1 {
		b >>= 1
		i++
	}
	return i
}

// Err codes returned by host functions (negative i32).
const (
	ErrOK         int32 = 0
	ErrBounds     int32 = -1 // pointer or length outside guest memory
	ErrMalformed  int32 = -2 // output chunk does not parse
	ErrNotNow     int32 = -3 // function not allowed in this phase (e.g. port outside wsp_init)
	ErrTooMany    int32 = -4 // a limit was reached (fields, ports, output size)
	ErrBadRequest int32 = -5 // argument invalid (empty field path, bad port name)
)

// LogLevel values for the log import.
const (
	LogDebug int32 = 0
	LogInfo  int32 = 1
	LogWarn  int32 = 2
	LogError int32 = 3
)

// Limits a v1 host enforces.
const (
	MaxFields     = 64
	MaxPorts      = 255
	MaxPortName   = 128
	MaxFieldPath  = 1024
	MaxFailLength = 4096
	MaxLogLength  = 64 << 10
	MaxAccSize    = 64 << 10 // agg_size
)
