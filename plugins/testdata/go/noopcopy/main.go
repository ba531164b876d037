// Command noopcopy is a test guest built with the Go SDK: it emits every
// record with its value copied into the output (out.Emit(r, r.Value())), the
// Go counterpart of noop_copy.wat.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugins/testdata/wasm/go_noopcopy.wasm ./plugins/testdata/go/noopcopy
package main

import wsp "github.com/wsp-project/wsp/plugins/sdk/go"

func init() {
	wsp.Process(func(r *wsp.Record, out *wsp.Output) { out.Emit(r, r.Value()) })
}

func main() {}
