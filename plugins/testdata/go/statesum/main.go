// Command statesum keeps, per key, the count and sum of field v in keyed
// state (16 bytes) and emits nothing: the benchmark guest for the
// keyed-state step's cost (bench/windows).
package main

import (
	"encoding/binary"
	"math"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

func init() {
	wsp.Fields("v")
	wsp.UseState(1)
	wsp.Process(func(r *wsp.Record, out *wsp.Output) {
		v, _ := r.Field(0).Float()
		s := r.State()
		var acc [16]byte
		if old, ok := s.Value(); ok && len(old) == 16 {
			copy(acc[:], old)
		}
		le := binary.LittleEndian
		le.PutUint64(acc[0:], le.Uint64(acc[0:])+1)
		le.PutUint64(acc[8:], math.Float64bits(math.Float64frombits(le.Uint64(acc[8:]))+v))
		s.SetValue(acc[:])
	})
}

func main() {}
