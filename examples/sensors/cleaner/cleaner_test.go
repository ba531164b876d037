package main

import (
	"testing"

	"github.com/wsp-project/wsp/plugins/sdk/go/wsptest"
)

// TestCleaner runs the plugin's logic natively through the SDK's host stub:
// the same batch encoding, field extraction and output decoding as in Wasm.
func TestCleaner(t *testing.T) {
	h := wsptest.New(t)
	h.Init()
	res := h.Process(
		wsptest.JSON(`{"sensor_id":"s-1","value":21.5,"ts":1700000000000}`),
		wsptest.JSON(`{"sensor_id":"s-2","value":50,"ts":1700000000001,"unit":"F"}`),
		wsptest.JSON(`{"sensor_id":"s-3","value":"n/a","ts":1700000000002}`),
		wsptest.JSON(`{"sensor_id":"s-4","value":999.9,"ts":1700000000003}`),
		wsptest.JSON(`not json`),
		wsptest.JSON(`{"sensor_id":7,"value":1,"ts":1}`),
		wsptest.JSON(`{"sensor_id":"s-5","value":1,"ts":1.5}`),
		wsptest.JSON(`{"sensor_id":"s-6","value":1,"ts":1,"unit":"K"}`),
	)
	want := []string{
		`{"sensor_id":"s-1","ts":1700000000000,"value":21.5}`,
		`{"sensor_id":"s-2","ts":1700000000001,"value":10}`,
	}
	if got := res.Values(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("clean = %q, want %q", got, want)
	}
	wantFail := map[int]string{
		2: "value: want number, got string",
		4: "not a JSON object",
		5: "sensor_id: want string, got number",
		6: "ts: want integer epoch ms, got fraction",
		7: "unit: unknown unit",
	}
	if len(res.Failed) != len(wantFail) {
		t.Fatalf("failed = %+v", res.Failed)
	}
	for _, f := range res.Failed {
		if wantFail[f.Index] != f.Reason {
			t.Errorf("record %d failed with %q, want %q", f.Index, f.Reason, wantFail[f.Index])
		}
	}
	if len(res.Dropped) != 1 || res.Dropped[0] != 3 {
		t.Errorf("dropped = %v, want [3] (implausible 999.9 °C)", res.Dropped)
	}
}

func TestCleanerConfig(t *testing.T) {
	h := wsptest.New(t, wsptest.Config(`{"implausible":"sometimes"}`))
	if err := h.TryInit(); err == nil {
		t.Fatal("a bad implausible setting was accepted")
	}
	h = wsptest.New(t, wsptest.Config(`{"implausible":"fail"}`))
	h.Init()
	res := h.Process(wsptest.JSON(`{"sensor_id":"s-4","value":999.9,"ts":1}`))
	if len(res.Failed) != 1 || res.Failed[0].Reason != reasonImplausible {
		t.Fatalf("implausible: fail gave %+v", res)
	}
	failImplausible = false
}
