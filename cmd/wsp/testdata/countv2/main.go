// Command countv2 counts records per key in keyed state (state layout
// version 2) and emits the running count: a test plugin for the layout
// version check (TestStateLayoutVersion).
package main

import (
	"strconv"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

func init() {
	wsp.UseState(2)
	wsp.Process(func(r *wsp.Record, out *wsp.Output) {
		s := r.State()
		n := 0
		if v, ok := s.Value(); ok {
			n, _ = strconv.Atoi(string(v))
		}
		n++
		s.SetValue(strconv.AppendInt(nil, int64(n), 10))
		out.Emit(r, strconv.AppendInt(nil, int64(n), 10))
	})
}

func main() {}
