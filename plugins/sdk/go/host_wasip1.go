//go:build wasip1

package wsp

import "unsafe"

// The host imports of ABI v1 (module "wsp"). Pointers are addresses in this
// module's linear memory; the Go heap does not move, and every buffer passed
// here is referenced by the caller for the duration of the call.

//go:wasmimport wsp batch_read
func wspBatchRead(ptr unsafe.Pointer, cap uint32) int32

//go:wasmimport wsp batch_write
func wspBatchWrite(ptr unsafe.Pointer, len uint32) int32

//go:wasmimport wsp config_read
func wspConfigRead(ptr unsafe.Pointer, cap uint32) int32

//go:wasmimport wsp declare_fields
func wspDeclareFields(ptr unsafe.Pointer, len uint32) int32

//go:wasmimport wsp port
func wspPort(ptr unsafe.Pointer, len uint32) int32

//go:wasmimport wsp agg_size
func wspAggSize(size uint32) int32

//go:wasmimport wsp agg_result
func wspAggResult(ptr unsafe.Pointer, len uint32) int32

//go:wasmimport wsp state_version
func wspStateVersion(version uint32) int32

//go:wasmimport wsp log
func wspLog(level int32, ptr unsafe.Pointer, len uint32)

//go:wasmimport wsp fail
func wspFail(ptr unsafe.Pointer, len uint32)

func hostBatchRead(p []byte) int32 {
	return wspBatchRead(unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)))
}

func hostBatchWrite(p []byte) int32 {
	return wspBatchWrite(unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)))
}

func hostConfigRead(p []byte) int32 {
	return wspConfigRead(unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)))
}

func hostDeclareFields(p []byte) int32 {
	return wspDeclareFields(unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)))
}

func hostPort(name string) int32 {
	return wspPort(unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)))
}

func hostAggSize(size int) int32 { return wspAggSize(uint32(size)) }

func hostStateVersion(v uint32) int32 { return wspStateVersion(v) }

func hostAggResult(p []byte) int32 {
	return wspAggResult(unsafe.Pointer(unsafe.SliceData(p)), uint32(len(p)))
}

func hostLog(level int32, msg string) {
	wspLog(level, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func hostFail(msg string) {
	wspFail(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

// The module's exports. The host calls _initialize (which runs the plugin's
// init functions, and so its registrations) before any of them.

//go:wasmexport wsp_abi
func wspABI() int64 { return abi() }

//go:wasmexport wsp_init
func wspInit() int32 { return runInit() }

//go:wasmexport wsp_process
func wspProcess(n int32) int32 { return runBatch(exportProcess, n) }

//go:wasmexport wsp_key
func wspKey(n int32) int32 { return runBatch(exportKey, n) }

//go:wasmexport wsp_timestamp
func wspTimestamp(n int32) int32 { return runBatch(exportTimestamp, n) }

//go:wasmexport wsp_on_timer
func wspOnTimer(n int32) int32 { return runBatch(exportTimer, n) }

//go:wasmexport wsp_agg_add
func wspAggAdd(n int32) int32 { return runAgg(aggAdd, n) }

//go:wasmexport wsp_agg_merge
func wspAggMerge(n int32) int32 { return runAgg(aggMerge, n) }

//go:wasmexport wsp_agg_finish
func wspAggFinish(n int32) int32 { return runAgg(aggFinish, n) }
