// Command trapagg is sumagg (fixed-size count and sum of "v") that fails on
// purpose: Add panics on the value 666, Merge when the other accumulator's
// sum is 777. The host tests check that a failing aggregate loses no
// record and spoils only the windows concerned.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o plugins/testdata/wasm/go_trapagg.wasm ./plugins/testdata/go/trapagg
package main

import (
	"strconv"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

func init() {
	wsp.Fields("v")
	wsp.Aggregate(wsp.AggregateFuncs{
		Size: 16,
		Add: func(acc []byte, r *wsp.Record) []byte {
			x, _ := r.Field(0).Float()
			if x == 666 {
				panic("trapagg: 666 is refused")
			}
			wsp.PutUint64At(acc, 0, wsp.Uint64At(acc, 0)+1)
			wsp.PutFloat64At(acc, 8, wsp.Float64At(acc, 8)+x)
			return acc
		},
		Merge: func(acc, other []byte) []byte {
			if wsp.Float64At(other, 8) == 777 {
				panic("trapagg: merging 777 is refused")
			}
			wsp.PutUint64At(acc, 0, wsp.Uint64At(acc, 0)+wsp.Uint64At(other, 0))
			wsp.PutFloat64At(acc, 8, wsp.Float64At(acc, 8)+wsp.Float64At(other, 8))
			return acc
		},
		Finish: func(dst, acc []byte) []byte {
			dst = append(dst, `{"wasm_count":`...)
			dst = strconv.AppendUint(dst, wsp.Uint64At(acc, 0), 10)
			dst = append(dst, `,"wasm_sum":`...)
			dst = strconv.AppendFloat(dst, wsp.Float64At(acc, 8), 'g', -1, 64)
			return append(dst, '}')
		},
	})
}

func main() {}
