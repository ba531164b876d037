// Command noop is a test guest built with the Go SDK: it keeps every record
// unchanged (out.Keep), so the host benchmarks measure the SDK's own
// per-record overhead against the hand-written noop_keep.wat.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugins/testdata/wasm/go_noop.wasm ./plugins/testdata/go/noop
package main

import wsp "github.com/wsp-project/wsp/plugins/sdk/go"

func init() {
	wsp.Process(func(r *wsp.Record, out *wsp.Output) { out.Keep(r) })
}

func main() {}
