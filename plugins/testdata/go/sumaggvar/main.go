// Command sumaggvar is sumagg with variable-size accumulators (the
// aggregate contract's general formats, CallAggregate): per window it keeps
// the count and the sum of the field "v" (a 16-byte accumulator, empty when
// new) and finishes them as {"wasm_count":N,"wasm_sum":S}.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugins/testdata/wasm/go_sumaggvar.wasm ./plugins/testdata/go/sumaggvar
package main

import (
	"strconv"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

func init() {
	wsp.Fields("v")
	wsp.Aggregate(wsp.AggregateFuncs{
		Add: func(acc []byte, r *wsp.Record) []byte {
			n, s := load(acc)
			if x, ok := r.Field(0).Float(); ok {
				s += x
			}
			return store(acc, n+1, s)
		},
		Merge: func(acc, other []byte) []byte {
			n, s := load(acc)
			m, t := load(other)
			return store(acc, n+m, s+t)
		},
		Finish: func(dst, acc []byte) []byte {
			n, s := load(acc)
			dst = append(dst, `{"wasm_count":`...)
			dst = strconv.AppendUint(dst, n, 10)
			dst = append(dst, `,"wasm_sum":`...)
			dst = strconv.AppendFloat(dst, s, 'g', -1, 64)
			return append(dst, '}')
		},
	})
}

// The accumulator: count u64 | sum f64, little-endian; empty when new.
func load(acc []byte) (uint64, float64) {
	if len(acc) < 16 {
		return 0, 0
	}
	return wsp.Uint64At(acc, 0), wsp.Float64At(acc, 8)
}

func store(acc []byte, n uint64, s float64) []byte {
	if cap(acc) < 16 {
		acc = make([]byte, 16)
	}
	acc = acc[:16]
	wsp.PutUint64At(acc, 0, n)
	wsp.PutFloat64At(acc, 8, s)
	return acc
}

func main() {}
