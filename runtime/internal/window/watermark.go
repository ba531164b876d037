package window

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Watermarks (semantics.md, "Watermarks"):
//
//   - A watermark W says no more records with time <= W are expected.
//   - Bounded out-of-orderness B: W = (max event time seen) - B - 1, never
//     moving backwards; advanced from the data after every batch, so a run
//     over the same data with the same batches is deterministic.
//   - Each partition keeps its own watermark; the operator's is the minimum
//     over the active ones. A partition without records for the idle timeout
//     stops holding the watermark back; when it comes back it is ignored
//     until its own watermark catches up with the operator's.
//   - A partition that has ended (its last batch seen) stops holding the
//     watermark back. When every partition has ended the watermark stays
//     where it is: more partitions may come (the next file of an input);
//     the end of the whole input is the caller's to signal (EndOfTime).
//   - Expect registers a partition before its first batch (a broker child,
//     read at the same time as the others): it holds the watermark back from
//     the start, instead of joining late like a partition that appears.

// NoWatermark is the watermark before any record: nothing is known.
const NoWatermark = math.MinInt64

// EndOfTime is the watermark of an ended partition.
const EndOfTime = math.MaxInt64

type partition struct {
	wm       int64
	lastSeen time.Time
	active   bool // holds the operator watermark back
	ended    bool
	expected bool // registered by Expect; replaced by its first real partition
}

// Tracker computes an operator's watermark from its input partitions. It
// is not safe for concurrent use: one operator owns it.
type Tracker struct {
	// OutOfOrder is the bound B in milliseconds (>= 0).
	OutOfOrder int64
	// IdleTimeout, when > 0, lets a partition without records for that long
	// (processing time) stop holding the watermark back.
	IdleTimeout time.Duration
	// Now is the processing-time clock; tests inject a fake. Default time.Now.
	Now func() time.Time

	parts   map[string]*partition
	current int64
	started bool
}

func (t *Tracker) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Tracker) part(name string) *partition {
	if t.parts == nil {
		t.parts = map[string]*partition{}
	}
	p, ok := t.parts[name]
	if !ok {
		// The first partition of an expected prefix takes its place.
		for pre, e := range t.parts {
			if e.expected && len(name) > len(pre) && name[:len(pre)] == pre && name[len(pre)] == '/' {
				delete(t.parts, pre)
			}
		}
		p = &partition{wm: NoWatermark, active: true}
		t.parts[name] = p
		if t.started && t.current != NoWatermark {
			// A partition that appears after the start joins like one
			// coming back from idleness: it does not pull the watermark
			// back; its late records are late.
			p.active = false
		}
	}
	return p
}

// Observe records that a batch from partition carried records whose
// largest event time is maxTime.
func (t *Tracker) Observe(partition string, maxTime int64) {
	p := t.part(partition)
	p.lastSeen = t.now()
	if p.ended {
		// Records again under an ended name (the same file listed twice, a
		// batch replayed after a nack): it joins like a partition that
		// appears late, counting once it has caught up.
		p.ended, p.active, p.wm = false, false, NoWatermark
	}
	w := maxTime - t.OutOfOrder - 1
	if maxTime < math.MinInt64+t.OutOfOrder+1 {
		w = NoWatermark
	}
	if w > p.wm {
		p.wm = w
	}
	if !p.active && p.wm >= t.current {
		p.active = true // caught up with the operator
	}
}

// End marks a partition as finished: it no longer holds the watermark
// back.
func (t *Tracker) End(partition string) {
	p := t.part(partition)
	p.ended, p.active, p.expected = true, false, false
}

// Expect registers partition before any of its records: from the start it
// holds the watermark back (at NoWatermark until its records come), as the
// inputs read at the same time as the others should. Its first records may
// also come under partition + "/" + a sub-partition (a broker child's own
// files): the first of those replaces it. Call it before the first
// Watermark.
func (t *Tracker) Expect(partition string) {
	p := t.part(partition)
	p.expected, p.lastSeen = true, t.now()
}

// Watermark is the operator watermark: the minimum over the active
// partitions (idle ones checked against the clock), never moving back.
func (t *Tracker) Watermark() int64 {
	if !t.started {
		t.started = true
		t.current = NoWatermark
	}
	now := t.now()
	w := int64(EndOfTime)
	any := false
	for _, p := range t.parts {
		if !p.ended && t.IdleTimeout > 0 && now.Sub(p.lastSeen) >= t.IdleTimeout {
			p.active = false
		}
		if !p.active {
			continue
		}
		any = true
		if p.wm < w {
			w = p.wm
		}
	}
	if !any {
		return t.current
	}
	if w > t.current {
		t.current = w
	}
	return t.current
}

// Snapshot appends the tracker's state (per partition: watermark, active,
// ended; and the operator watermark) to dst, for checkpoints.
func (t *Tracker) Snapshot(dst []byte) []byte {
	e := enc{b: dst}
	e.uvarint(1) // format version
	e.varint(t.current)
	e.bool(t.started)
	names := make([]string, 0, len(t.parts))
	for n := range t.parts {
		names = append(names, n)
	}
	slices.Sort(names)
	e.uvarint(uint64(len(names)))
	for _, n := range names {
		p := t.parts[n]
		e.bytes([]byte(n))
		e.varint(p.wm)
		e.bool(p.active)
		e.bool(p.ended)
		e.bool(p.expected)
	}
	return e.b
}

// Restore sets the tracker's state from a Snapshot. Partitions count as
// seen now (for the idle timeout).
func (t *Tracker) Restore(snap []byte) error {
	d := dec{b: snap}
	if v := d.uvarint(); v != 1 {
		return fmt.Errorf("window: watermark state format version %d; this wsp reads version 1", v)
	}
	t.current, t.started = d.varint(), d.bool()
	t.parts = map[string]*partition{}
	now := t.now()
	for range d.count(5) {
		name := string(d.bytes())
		p := &partition{wm: d.varint(), active: d.bool(), ended: d.bool(), expected: d.bool(), lastSeen: now}
		t.parts[name] = p
	}
	if d.err != nil || len(d.b) != 0 {
		return errors.New("window: watermark state is cut short or corrupt")
	}
	return nil
}
