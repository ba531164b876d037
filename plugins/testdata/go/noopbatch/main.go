// Command noopbatch is a test guest built with the Go SDK's batch form: its
// own loop keeps every record unchanged (out.Keep on each record of the
// batch), so the host benchmarks measure the batch form's per-record
// overhead beside the per-record form of ../noop.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugins/testdata/wasm/go_noopbatch.wasm ./plugins/testdata/go/noopbatch
package main

import wsp "github.com/wsp-project/wsp/plugins/sdk/go"

func init() {
	wsp.ProcessBatch(func(b *wsp.Batch, out *wsp.Output) {
		for i := 0; i < b.Len(); i++ {
			out.Keep(b.Record(i))
		}
	})
}

func main() {}
