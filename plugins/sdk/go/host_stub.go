//go:build !wasip1

package wsp

import "github.com/wsp-project/wsp/plugins/sdk/go/internal/stubhost"

// Natively the host calls go to the in-process stub that package wsptest
// drives, and the exports are handed to it: the SDK code between them is the
// same as in Wasm.

func hostBatchRead(p []byte) int32     { return stubhost.BatchRead(p) }
func hostBatchWrite(p []byte) int32    { return stubhost.BatchWrite(p) }
func hostConfigRead(p []byte) int32    { return stubhost.ConfigRead(p) }
func hostDeclareFields(p []byte) int32 { return stubhost.DeclareFields(p) }
func hostPort(name string) int32       { return stubhost.Port(name) }
func hostAggSize(size int) int32       { return stubhost.AggSize(size) }
func hostAggResult(p []byte) int32     { return stubhost.AggResult(p) }
func hostStateVersion(v uint32) int32  { return stubhost.StateVersion(v) }
func hostLog(level int32, msg string)  { stubhost.Log(level, msg) }
func hostFail(msg string)              { stubhost.Fail(msg) }

func init() {
	stubhost.Guest = stubhost.Exports{
		ABI:       abi,
		Init:      runInit,
		Process:   func(n int32) int32 { return runBatch(exportProcess, n) },
		Key:       func(n int32) int32 { return runBatch(exportKey, n) },
		Timestamp: func(n int32) int32 { return runBatch(exportTimestamp, n) },
		OnTimer:   func(n int32) int32 { return runBatch(exportTimer, n) },
		AggAdd:    func(n int32) int32 { return runAgg(aggAdd, n) },
		AggMerge:  func(n int32) int32 { return runAgg(aggMerge, n) },
		AggFinish: func(n int32) int32 { return runAgg(aggFinish, n) },
		Reset:     resetRegistrations,
	}
}
