// Command spin is a test guest: for a record whose value is "forever" it
// loops without end (the host must stop it at its time limit); for any other
// value it counts to 50 million and emits the count (long, but finite work
// that a time limit must not disturb).
package main

import (
	"strconv"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

var sink uint64

func init() {
	wsp.Process(func(r *wsp.Record, out *wsp.Output) {
		if string(r.Value()) == "forever" {
			for {
				sink++
			}
		}
		var n uint64
		for i := 0; i < 50_000_000; i++ {
			n += uint64(i & 1)
		}
		out.Emit(r, []byte(strconv.FormatUint(n, 10)))
	})
}

func main() {}
