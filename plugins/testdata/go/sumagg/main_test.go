package main

import (
	"testing"

	"github.com/wsp-project/wsp/plugins/sdk/go/wsptest"
)

// TestSumAgg runs the aggregate natively (plain go test, no Wasm) through
// the SDK's test harness, in the fixed formats and with the typed results
// the host would see.
func TestSumAgg(t *testing.T) {
	h := wsptest.New(t)
	// Two windows' accumulators; nil is a new one (16 zero bytes).
	a := h.AggAdd(nil, wsptest.JSON(`{"v":1.5}`), wsptest.JSON(`{"v":2}`))
	a = h.AggAdd(a, wsptest.JSON(`{"w":1}`), wsptest.JSON(`not json`)) // counted, nothing summed
	b := h.AggAdd(nil, wsptest.JSON(`{"v":-0.25}`))
	if got, want := h.AggFinish(h.AggMerge(a, b)), `{"wasm_count":5,"wasm_sum":3.25}`; got != want {
		t.Errorf("merged: got %s, want %s", got, want)
	}
	if got, want := h.AggFinish(nil), `{"wasm_count":0,"wasm_sum":0}`; got != want {
		t.Errorf("empty window: got %s, want %s", got, want)
	}

	// Several windows in one call, as the host sends them.
	accs := h.AggAddGroups([]wsptest.AggGroup{
		{Records: []wsptest.Record{wsptest.JSON(`{"v":1}`)}},
		{Acc: a, Records: []wsptest.Record{wsptest.JSON(`{"v":1e300}`), wsptest.JSON(`{"v":1e300}`)}},
		{}, // nothing added: stays a new accumulator
	})
	got := h.AggFinishGroups(accs...)
	want := []string{
		`{"wasm_count":1,"wasm_sum":1}`,
		`{"wasm_count":6,"wasm_sum":2e+300}`,
		`{"wasm_count":0,"wasm_sum":0}`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("group %d: got %s, want %s", i, got[i], want[i])
		}
	}
}
