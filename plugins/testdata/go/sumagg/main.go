// Command sumagg is a test guest for the aggregate contract with fixed-size
// accumulators (Size 16, agg_size) and typed results (agg_result): per
// window it keeps the count and the sum of the field "v" and finishes them
// as {"wasm_count":N,"wasm_sum":S}, which the host formats from the two
// typed values Finish stores. The host tests and the window benchmark
// compare it with the built-in count() and sum(v). sumaggvar is the same
// with variable-size accumulators and a JSON-text Finish.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o plugins/testdata/wasm/go_sumagg.wasm ./plugins/testdata/go/sumagg
package main

import (
	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

// The accumulator: count u64 | sum f64, little-endian. All zero (a new
// window) is count 0, sum 0. It is also the layout of the result, so
// Finish copies it.
func init() {
	wsp.Fields("v")
	wsp.Aggregate(wsp.AggregateFuncs{
		Size: 16,
		Results: []wsp.ResultField{
			{Name: "wasm_count", Type: wsp.ResultInt},
			{Name: "wasm_sum", Type: wsp.ResultFloat},
		},
		Add: func(acc []byte, r *wsp.Record) []byte {
			wsp.PutUint64At(acc, 0, wsp.Uint64At(acc, 0)+1)
			if x, ok := r.Field(0).Float(); ok {
				wsp.PutFloat64At(acc, 8, wsp.Float64At(acc, 8)+x)
			}
			return acc
		},
		Merge: func(acc, other []byte) []byte {
			wsp.PutUint64At(acc, 0, wsp.Uint64At(acc, 0)+wsp.Uint64At(other, 0))
			wsp.PutFloat64At(acc, 8, wsp.Float64At(acc, 8)+wsp.Float64At(other, 8))
			return acc
		},
		Finish: func(dst, acc []byte) []byte {
			wsp.PutInt64At(dst, 0, wsp.Int64At(acc, 0))
			wsp.PutFloat64At(dst, 8, wsp.Float64At(acc, 8))
			return dst
		},
	})
}

func main() {}
