package wsptest

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/wsp-project/wsp/plugins/sdk/go/internal/stubhost"
)

// Keyed state and timers (plugins that call wsp.UseState). The harness
// keeps each key's state between calls as the wsp host does: it hands the
// state of a batch's keys over with the batch, applies the plugin's changes
// only when the whole call succeeds, expires entries by its own processing
// clock (SetNow), and fires timers when told to (FireTimers,
// FireProcTimers), in (time, key) order.

// KeyState is a copy of one key's state.
type KeyState struct {
	Value    []byte // nil when HasValue is false
	HasValue bool
	Map      map[string]string // nil when empty
	List     []string          // oldest first
	// EventTimers and ProcTimers are the key's live timers, ascending.
	EventTimers, ProcTimers []int64
}

const (
	kindState      = 3
	batchFlagState = 1
)

type entry struct {
	v   []byte
	exp int64 // unix ms; 0 never
}

type keyData struct {
	val    *entry
	m      map[string]entry
	list   []entry
	ev, pr map[int64]bool
}

func (k *keyData) expire(now int64) {
	dead := func(e entry) bool { return e.exp != 0 && e.exp <= now }
	if k.val != nil && dead(*k.val) {
		k.val = nil
	}
	for mk, e := range k.m {
		if dead(e) {
			delete(k.m, mk)
		}
	}
	k.list = slices.DeleteFunc(k.list, dead)
}

type stateOp struct {
	index int
	op    uint16
	t     int64
	k, v  []byte
}

// keyed reports whether the plugin keeps keyed state (after Init).
func (h *Harness) keyed() bool { return h.host.StateVersion != nil }

// SetNow sets the processing clock (Unix ms) that time-to-live counts by.
// It starts at 0.
func (h *Harness) SetNow(ms int64) { h.now = ms }

// StateVersion is the layout version the plugin declared (UseState), and
// whether it declared one.
func (h *Harness) StateVersion() (uint32, bool) {
	if !h.inited {
		h.Init()
	}
	if h.host.StateVersion == nil {
		return 0, false
	}
	return *h.host.StateVersion, true
}

// State returns a copy of key's state, as the plugin would see it now.
func (h *Harness) State(key string) KeyState {
	var s KeyState
	k := h.keys[key]
	if k == nil {
		return s
	}
	k.expire(h.now)
	if k.val != nil {
		s.Value, s.HasValue = append([]byte{}, k.val.v...), true
	}
	for mk, e := range k.m {
		if s.Map == nil {
			s.Map = map[string]string{}
		}
		s.Map[mk] = string(e.v)
	}
	for _, e := range k.list {
		s.List = append(s.List, string(e.v))
	}
	s.EventTimers, s.ProcTimers = sortedTimes(k.ev), sortedTimes(k.pr)
	return s
}

func sortedTimes(m map[int64]bool) []int64 {
	var out []int64
	for t := range m {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (h *Harness) key(k []byte) *keyData {
	if h.keys == nil {
		h.keys = map[string]*keyData{}
	}
	d := h.keys[string(k)]
	if d == nil {
		d = &keyData{}
		h.keys[string(k)] = d
	}
	return d
}

// appendState appends the state section for recs' keys to batch b and
// sets the batch's state flag.
func (h *Harness) appendState(b []byte, recs []Record) ([]byte, error) {
	le.PutUint32(b[4:], batchFlagState)
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	slot := map[string]uint32{}
	var slots []uint32
	for i, r := range recs {
		if r.Key == nil {
			return nil, errors.New("record " + strconv.Itoa(i) + " has no key: a keyed-state plugin gets keyed records only")
		}
		s, ok := slot[string(r.Key)]
		if !ok {
			s = uint32(len(slot))
			slot[string(r.Key)] = s
			k := h.key(r.Key)
			k.expire(h.now)
			b = appendBytes32(b, r.Key)
			if k.val != nil {
				b = appendBytes32(b, k.val.v)
			} else {
				b = le.AppendUint32(b, 0xFFFFFFFF)
			}
			mks := make([]string, 0, len(k.m))
			for mk := range k.m {
				mks = append(mks, mk)
			}
			sort.Strings(mks)
			b = le.AppendUint32(b, uint32(len(mks)))
			for _, mk := range mks {
				b = appendBytes32(b, []byte(mk))
				b = appendBytes32(b, k.m[mk].v)
			}
			b = le.AppendUint32(b, uint32(len(k.list)))
			for _, e := range k.list {
				b = appendBytes32(b, e.v)
			}
		}
		slots = append(slots, s)
	}
	le.PutUint32(b[start:], uint32(len(slot)))
	for _, s := range slots {
		b = le.AppendUint32(b, s)
	}
	return le.AppendUint32(b, uint32(len(b)-start)), nil
}

func appendBytes32(b, p []byte) []byte {
	b = le.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// checkStateOp checks a state entry's header as the host does.
func checkStateOp(op uint16, flags uint8, t int64, kl, vl, ml uint64) string {
	switch {
	case op < 1 || op > 12:
		return "unknown state operation " + strconv.Itoa(int(op))
	case flags != 0:
		return "a state entry has no flags"
	case ml != 0:
		return "a state entry has no meta"
	case kl != 0 && op != 3 && op != 4:
		return "this state operation takes no key part"
	case vl != 0 && op != 1 && op != 3 && op != 6:
		return "this state operation takes no value"
	case t < 0 && (op < 8 || op > 11):
		return "negative time-to-live"
	case t != 0 && (op == 2 || op == 4 || op == 5 || op == 7 || op == 12):
		return "this state operation takes no time"
	}
	return ""
}

// apply makes the changes of a successful call; keyOf is the key of input i.
func (h *Harness) apply(ops []stateOp, keyOf func(i int) []byte) {
	for _, o := range ops {
		k := h.key(keyOf(o.index))
		var exp int64
		if o.t > 0 && (o.op < 8 || o.op > 11) {
			exp = h.now + o.t
			if exp < h.now {
				exp = math.MaxInt64 // past the int64 range: never, in effect
			}
		}
		e := entry{v: append([]byte{}, o.v...), exp: exp}
		switch o.op {
		case 1:
			k.val = &e
		case 2:
			k.val = nil
		case 3:
			if k.m == nil {
				k.m = map[string]entry{}
			}
			k.m[string(o.k)] = e
		case 4:
			delete(k.m, string(o.k))
		case 5:
			k.m = nil
		case 6:
			k.list = append(k.list, e)
		case 7:
			k.list = nil
		case 8, 10:
			m := &k.ev
			if o.op == 10 {
				m = &k.pr
			}
			if *m == nil {
				*m = map[int64]bool{}
			}
			(*m)[o.t] = true
		case 9:
			delete(k.ev, o.t)
		case 11:
			delete(k.pr, o.t)
		case 12:
			k.val, k.m, k.list = nil, nil, nil
		}
	}
}

// FireTimers moves the watermark to wm: every event-time timer at or
// before it fires, in (time, key) order, through the plugin's OnTimer, in
// calls of up to 2048 timers as the host makes them (timers set by a call
// that are due fire in a later call). It returns what all the calls
// emitted; Index in an Output or a Failure counts timers over all calls.
func (h *Harness) FireTimers(wm int64) *Result { return h.fire(false, wm) }

// FireProcTimers moves the processing clock to now (SetNow) and fires the
// processing-time timers due by then, as FireTimers does.
func (h *Harness) FireProcTimers(now int64) *Result {
	h.now = now
	return h.fire(true, now)
}

type dueTimer struct {
	t   int64
	key string
}

func (h *Harness) fire(proc bool, until int64) *Result {
	h.t.Helper()
	if !h.inited {
		h.Init()
	}
	all := &Result{}
	base := 0
	for {
		var due []dueTimer
		for key, k := range h.keys {
			m := k.ev
			if proc {
				m = k.pr
			}
			for t := range m {
				if t <= until {
					due = append(due, dueTimer{t, key})
				}
			}
		}
		if len(due) == 0 {
			return all
		}
		slices.SortFunc(due, func(a, b dueTimer) int {
			if c := cmp.Compare(a.t, b.t); c != 0 {
				return c
			}
			return cmp.Compare(a.key, b.key)
		})
		// At most one timer per key in a call, as the host does: the call
		// ends before a key's second timer, so what the first one's call
		// changes holds for it.
		seen := map[string]bool{}
		for i, d := range due {
			if seen[d.key] {
				due = due[:i]
				break
			}
			seen[d.key] = true
		}
		if len(due) > 2048 {
			due = due[:2048]
		}
		recs := make([]Record, len(due))
		for i, d := range due {
			k := h.keys[d.key]
			if proc {
				delete(k.pr, d.t)
			} else {
				delete(k.ev, d.t)
			}
			recs[i] = Record{Key: []byte(d.key), Time: Time(d.t)}
		}
		dom := 0
		if proc {
			dom = 1
		}
		res, err := h.run(stubhost.Guest.OnTimer, 0, recs, dom)
		if err != nil {
			h.t.Fatalf("wsp_on_timer: %v", err)
		}
		for _, o := range res.Out {
			o.Index += base
			all.Out = append(all.Out, o)
		}
		for _, f := range res.Failed {
			f.Index += base
			all.Failed = append(all.Failed, f)
		}
		for _, d := range res.Dropped {
			all.Dropped = append(all.Dropped, d+base)
		}
		all.Chunks = append(all.Chunks, res.Chunks...)
		base += len(recs)
	}
}
