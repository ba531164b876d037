package ops

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/wsp-project/wsp/runtime/internal/window"
)

// The state step's snapshot, format version 1, in the window snapshots'
// codec (window.Encoder):
//
//	magic "WSPF" | version 1 | layout version (the module's state_version) |
//	keys | per key (in the order the keys came): key | has value | value | value expiry |
//	       map entries | (key | value | expiry)* | list items | (value | expiry)* |
//	event timers | (time | key)* | processing timers | (time | key)*
//
// Expiry times are unix ms (0: never); expired entries are not written.

// Snapshot appends the worker's state to dst.
func (w *stateWorker) Snapshot(dst []byte) ([]byte, error) {
	now := w.s.now()
	e := window.NewEncoder(dst)
	e.Raw([]byte(stateMagic))
	e.Uvarint(1)
	e.Uvarint(uint64(w.s.Module.StateVersion()))
	// Keys in the order they came (not sorted: a sort of a million keys
	// was most of the pause), which stays the same from one checkpoint to
	// the next, so the unchanged runs of keys make the same bytes (and the
	// same chunks for the Pebble backend).
	n, size := 0, 0
	for _, k := range w.order {
		if k != nil {
			k.expire(now)
			if k.hasData() {
				n++
				size += len(k.key) + len(k.val) + 16 + 24*(len(k.m)+len(k.list))
			}
		}
	}
	e.Uvarint(uint64(n))
	e.Grow(size)
	for _, k := range w.order {
		if k == nil || !k.hasData() {
			continue
		}
		e.Bytes([]byte(k.key))
		e.Bool(k.hasVal)
		e.Bytes(k.val)
		e.Varint(k.valExp)
		e.Uvarint(uint64(len(k.m)))
		if len(k.m) > 0 { // (an iterator over an empty map still costs per key)
			for _, mk := range slices.Sorted(maps.Keys(k.m)) {
				me := k.m[mk]
				e.Bytes([]byte(mk))
				e.Bytes(me.v)
				e.Varint(me.exp)
			}
		}
		e.Uvarint(uint64(len(k.list)))
		for _, it := range k.list {
			e.Bytes(it.v)
			e.Varint(it.exp)
		}
	}
	for _, q := range []*timerQueue{&w.ev, &w.proc} {
		// In the heap's order: a timer set again after a delete may be
		// written twice, which the restore's set absorbs.
		n := 0
		for _, t := range q.h {
			if _, ok := q.ids[timerID{t.k.key, t.t}]; ok {
				n++
			}
		}
		e.Uvarint(uint64(n))
		for _, t := range q.h {
			if _, ok := q.ids[timerID{t.k.key, t.t}]; ok {
				e.Varint(t.t)
				e.Bytes([]byte(t.k.key))
			}
		}
	}
	return e.Result(), nil
}

// Restore adds the keys of snap that keep accepts.
func (w *stateWorker) Restore(snap []byte, keep func(key []byte) bool) error {
	d := window.NewDecoder(snap)
	// "WSPS" was this snapshot's magic before it was told apart from the
	// session windows'; the layout version check below still guards it.
	if !d.Prefix([]byte(stateMagic)) && !d.Prefix([]byte("WSPS")) {
		return errors.New("not a state step snapshot")
	}
	if v := d.Uvarint(); v != 1 {
		if d.Err() != nil {
			return d.Err()
		}
		return fmt.Errorf("state step snapshot format %d; this wsp reads format 1", v)
	}
	if lv := uint32(d.Uvarint()); !d.Failed() && lv != w.s.Module.StateVersion() {
		return w.s.errVersion(lv)
	}
	n := d.Count(1)
	for range n {
		key := d.Bytes()
		k := &keyState{key: string(key), slot: -1}
		k.hasVal = d.Bool()
		k.val = slices.Clone(d.Bytes())
		if k.hasVal && k.val == nil {
			k.val = []byte{}
		}
		k.valExp = d.Varint()
		if m := d.Count(2); m > 0 {
			k.m = make(map[string]stateEntry, m)
			for range m {
				mk := string(d.Bytes())
				k.m[mk] = stateEntry{v: slices.Clone(d.Bytes()), exp: d.Varint()}
			}
		}
		for range d.Count(2) {
			k.list = append(k.list, stateEntry{v: slices.Clone(d.Bytes()), exp: d.Varint()})
		}
		if d.Failed() {
			break
		}
		if keep(key) {
			if old := w.keys[k.key]; old != nil {
				k.timers = old.timers // its timers, restored from an earlier part
			}
			k.ttl = k.valExp != 0 || slices.ContainsFunc(k.list, func(e stateEntry) bool { return e.exp != 0 })
			for _, me := range k.m {
				k.ttl = k.ttl || me.exp != 0
			}
			w.add(k)
		}
	}
	for _, q := range []*timerQueue{&w.ev, &w.proc} {
		for range d.Count(2) {
			t := d.Varint()
			key := d.Bytes()
			if d.Failed() {
				break
			}
			if keep(key) {
				q.set(w.state(key), t)
			}
		}
	}
	if err := d.Err(); err != nil {
		return fmt.Errorf("state step snapshot: %w", err)
	}
	return nil
}
