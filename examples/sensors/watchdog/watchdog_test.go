package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/plugins/sdk/go/wsptest"
)

// The plugin's logic runs natively through the SDK's host stub, which
// keeps keyed state and fires timers as the wsp host does.

func newHarness(t *testing.T) *wsptest.Harness {
	h := wsptest.New(t, wsptest.Config(`{"silence":"10s","sigma":3,"min_readings":5}`))
	h.Init()
	if v, ok := h.StateVersion(); !ok || v != stateVersion {
		t.Fatalf("state version %d %v", v, ok)
	}
	return h
}

func rd(sensor string, ts int64, v float64) wsptest.Record {
	return wsptest.Record{Key: []byte(sensor), Time: wsptest.Time(ts), Value: []byte(fmt.Sprintf(`{"value":%v}`, v))}
}

// TestAnomaly: once the baseline has min_readings readings, a reading
// more than sigma standard deviations away raises an alert; per sensor.
func TestAnomaly(t *testing.T) {
	h := newHarness(t)
	var recs []wsptest.Record
	for i, v := range []float64{20, 21, 19, 20, 21} {
		recs = append(recs, rd("a", int64(1000+i), v), rd("b", int64(1000+i), v+100))
	}
	if res := h.Process(recs...); len(res.Out) != 0 || len(res.Dropped) != 10 {
		t.Fatalf("readings raised %v (dropped %v)", res.Values(), res.Dropped)
	}
	res := h.Process(rd("a", 2000, 20.5), rd("a", 2001, 30), rd("b", 2001, 30))
	got := res.Values()
	if len(got) != 2 || !strings.Contains(got[0], `"sensor_id":"a","alert":"anomaly","ts":2001,"value":30`) ||
		!strings.Contains(got[1], `"sensor_id":"b","alert":"anomaly","ts":2001,"value":30`) {
		t.Fatalf("alerts %q", got)
	}
	if s := h.State("a"); !s.HasValue || len(s.Value) != baselineSize || len(s.EventTimers) != 1 || s.EventTimers[0] != 12001 {
		t.Fatalf("state of a: %+v", s)
	}
}

// TestSilence: the silence timer fires at the deadline with the sensor's
// count; a reading moves it; a reading past the deadline raises the alert
// itself when the timer has not fired yet; a duplicate is dropped.
func TestSilence(t *testing.T) {
	h := newHarness(t)
	h.Process(rd("a", 1000, 20), rd("a", 3000, 21), rd("a", 3000, 21))
	if s := h.State("a"); len(s.EventTimers) != 1 || s.EventTimers[0] != 13000 {
		t.Fatalf("timers %v, want [13000]", s.EventTimers)
	}
	if res := h.FireTimers(12999); len(res.Out) != 0 {
		t.Fatalf("early: %q", res.Values())
	}
	res := h.FireTimers(13000)
	want := `{"sensor_id":"a","alert":"silent","latest":3000,"deadline":13000,"count":2,"mean":20.5}`
	if got := res.Values(); len(got) != 1 || got[0] != want {
		t.Fatalf("fired %q, want %s", got, want)
	}
	if s := h.State("a"); len(s.EventTimers) != 0 {
		t.Fatalf("timers left: %v", s.EventTimers)
	}
	// Past the next deadline before its timer fired: the reading raises it.
	h.Process(rd("b", 1000, 5))
	res = h.Process(rd("b", 11000, 6))
	want = `{"sensor_id":"b","alert":"silent","latest":1000,"deadline":11000,"count":1,"mean":5}`
	if got := res.Values(); len(got) != 1 || got[0] != want {
		t.Fatalf("alert from the reading %q, want %s", got, want)
	}
	if s := h.State("b"); len(s.EventTimers) != 1 || s.EventTimers[0] != 21000 {
		t.Fatalf("timers of b %v, want [21000]", s.EventTimers)
	}
	if res := h.FireTimers(20999); len(res.Out) != 0 {
		t.Fatalf("the old deadline fired again: %q", res.Values())
	}
}

// TestBadReading: a reading without a number fails alone and changes no
// state.
func TestBadReading(t *testing.T) {
	h := newHarness(t)
	res := h.Process(rd("a", 1000, 20), wsptest.Record{Key: []byte("a"), Time: wsptest.Time(1001), Value: []byte(`{"value":"x"}`)})
	if len(res.Failed) != 1 || res.Failed[0].Index != 1 {
		t.Fatalf("failed %+v", res.Failed)
	}
	if _, err := h.TryProcess(wsptest.JSON(`{"value":1}`)); err == nil || !strings.Contains(err.Error(), "has no key") {
		t.Fatalf("a record without a key: %v", err)
	}
}
