package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// # Keyed state and timers for Wasm functions
//
// StateStep runs a Wasm process function that declared the state feature
// as a keyed step: the engine routes each record to the keyed worker that
// owns its key, so a key's state has one owner and its records arrive in
// input order. Per batch the worker:
//
//  1. finds the batch's distinct keys and encodes their state (value, map,
//     list; expired entries left out) into the state section, with each
//     record's slot (hostabi.StateSection);
//  2. makes one CallState: the guest reads records and state together,
//     and writes its output records and its state changes (KindState);
//  3. applies the changes in output order once the call succeeded. A
//     failed call changes nothing, and its records go to the error output
//     (the engine's keyed-step failure path).
//
// Timers live per key, in event time (fire when the watermark reaches
// them, in Advance) or processing time (fire when the clock does, in
// AdvanceProc). A key has at most one timer per (clock, time). Due timers
// fire in (time, key) order, at most maxTimerBatch per wsp_on_timer call
// and at most one per key in a call (so a timer's changes, such as
// deleting the key's later timer, hold for the key's next one);
// a timer call's output flows on like a batch's. A failed timer call sends
// each of its timers to the error output (as a record naming the timer),
// so no firing disappears silently.
//
// Time-to-live counts processing time from the set (Now at the start of
// the batch that set it). Expired entries are never handed to the guest;
// they are removed when their key is next used, by a sweep every
// sweepEvery, and are not written to checkpoints.

const (
	maxTimerBatch = 2048
	sweepEvery    = 10 * time.Second
	stateMagic    = "WSPF"
)

// StateStep is a keyed Wasm step with state and timers.
type StateStep struct {
	StepName string
	Module   *plugin.Module
	// Now is the processing clock (TTL, processing-time timers); tests
	// inject one. Default time.Now.
	Now func() time.Time
}

func (s *StateStep) Name() string    { return s.StepName }
func (s *StateStep) Ports() []string { return s.Module.Ports() }

func (s *StateStep) now() int64 {
	if s.Now == nil {
		return time.Now().UnixMilli()
	}
	return s.Now().UnixMilli()
}

// NewWorker makes one keyed worker's share of the step.
func (s *StateStep) NewWorker(ctx context.Context) (engine.KeyedWorker, error) {
	in, err := s.Module.Instance(ctx)
	if err != nil {
		return nil, err
	}
	return &stateWorker{s: s, in: in, keys: map[string]*keyState{}}, nil
}

// stateWorker owns the state of its key groups.
type stateWorker struct {
	s         *StateStep
	in        *plugin.Instance
	keys      map[string]*keyState
	order     []*keyState // the keys in the order they came, nil where one left (snapshots walk it)
	holes     int         // nil entries of order
	ev, proc  timerQueue
	lastSweep int64

	// per call
	sec   hostabi.StateSection
	slots []uint32
	batch []*keyState // the call's keys, by slot
}

// keyState is one key's state. Expiry times are unix ms; 0 is never.
type keyState struct {
	key    string
	val    []byte
	hasVal bool
	valExp int64
	m      map[string]stateEntry
	list   []stateEntry
	timers int   // live timers of the key
	slot   int32 // its slot in the running call, -1 otherwise
	pos    int   // its index in stateWorker.order
	ttl    bool  // an entry with an expiry time was set (expire has work)
}

type stateEntry struct {
	v   []byte
	exp int64
}

func live(exp, now int64) bool { return exp == 0 || exp > now }

// expire drops what expired by now.
func (k *keyState) expire(now int64) {
	if !k.ttl {
		return
	}
	if k.hasVal && !live(k.valExp, now) {
		k.val, k.hasVal, k.valExp = nil, false, 0
	}
	for mk, e := range k.m {
		if !live(e.exp, now) {
			delete(k.m, mk)
		}
	}
	if len(k.list) > 0 {
		k.list = slices.DeleteFunc(k.list, func(e stateEntry) bool { return !live(e.exp, now) })
	}
}

// hasData reports whether k holds a value, map entries or list items.
func (k *keyState) hasData() bool { return k.hasVal || len(k.m) > 0 || len(k.list) > 0 }

// empty reports whether k holds nothing at all (no data, no timers).
func (k *keyState) empty() bool { return !k.hasData() && k.timers == 0 }

func (w *stateWorker) Close(ctx context.Context) error { return w.in.Close(ctx) }

// state returns key's state, making an empty one.
func (w *stateWorker) state(key []byte) *keyState {
	if k, ok := w.keys[string(key)]; ok {
		return k
	}
	k := &keyState{key: string(key), slot: -1}
	w.add(k)
	return k
}

// add puts k in the worker's keys (replacing one of its key in place).
func (w *stateWorker) add(k *keyState) {
	if old := w.keys[k.key]; old != nil {
		k.pos = old.pos
		w.order[k.pos] = k
	} else {
		k.pos = len(w.order)
		w.order = append(w.order, k)
	}
	w.keys[k.key] = k
}

// drop removes k from the worker's keys; the order is compacted when it is
// mostly holes.
func (w *stateWorker) drop(k *keyState) {
	delete(w.keys, k.key)
	w.order[k.pos] = nil
	if w.holes++; w.holes > 1024 && w.holes > len(w.order)/2 {
		n := 0
		for _, x := range w.order {
			if x != nil {
				x.pos = n
				w.order[n] = x
				n++
			}
		}
		clear(w.order[n:])
		w.order, w.holes = w.order[:n], 0
	}
}

// stage encodes the state section for the keys of recs (one slot per
// distinct key, in order of first appearance).
func (w *stateWorker) stage(recs []record.Record, now int64) []byte {
	w.sec.Reset()
	w.slots = w.slots[:0]
	w.batch = w.batch[:0]
	for i := range recs {
		k := w.state(recs[i].Key)
		if k.slot < 0 {
			k.slot = int32(len(w.batch))
			w.batch = append(w.batch, k)
			k.expire(now)
			w.encodeKey(k)
		}
		w.slots = append(w.slots, uint32(k.slot))
	}
	w.sec.Slots(w.slots)
	return w.sec.B
}

func (w *stateWorker) encodeKey(k *keyState) {
	w.sec.Key([]byte(k.key), k.val, k.hasVal)
	w.sec.Count(len(k.m))
	if len(k.m) > 0 {
		for _, mk := range slices.Sorted(maps.Keys(k.m)) {
			w.sec.Bytes([]byte(mk))
			w.sec.Bytes(k.m[mk].v)
		}
	}
	w.sec.Count(len(k.list))
	for _, e := range k.list {
		w.sec.Bytes(e.v)
	}
}

// unstage ends a call: the keys leave their slots, and keys left with
// nothing are dropped.
func (w *stateWorker) unstage() {
	for _, k := range w.batch {
		k.slot = -1
		if k.empty() {
			w.drop(k)
		}
	}
	w.batch = w.batch[:0]
}

// apply makes the call's state changes; keyOf gives the key of input i.
func (w *stateWorker) apply(ups []plugin.StateUpdate, keyOf func(i int) *keyState, now int64) {
	for i := range ups {
		u := &ups[i]
		k := keyOf(u.Index)
		exp := int64(0)
		if u.Time > 0 && !u.Op.Timer() {
			exp = now + u.Time
			if exp < now { // past the int64 range: never, in effect
				exp = math.MaxInt64
			}
			k.ttl = true
		}
		switch u.Op {
		case hostabi.OpValueSet:
			// In place: nothing else refers to k.val (staging and
			// snapshots copy it).
			k.val, k.hasVal, k.valExp = append(k.val[:0:cap(k.val)], u.Value...), true, exp
			if k.val == nil {
				k.val = []byte{}
			}
		case hostabi.OpValueClear:
			k.val, k.hasVal, k.valExp = nil, false, 0
		case hostabi.OpMapPut:
			if k.m == nil {
				k.m = map[string]stateEntry{}
			}
			k.m[string(u.Key)] = stateEntry{v: slices.Clone(u.Value), exp: exp}
		case hostabi.OpMapDelete:
			delete(k.m, string(u.Key))
		case hostabi.OpMapClear:
			k.m = nil
		case hostabi.OpListAppend:
			k.list = append(k.list, stateEntry{v: slices.Clone(u.Value), exp: exp})
		case hostabi.OpListClear:
			k.list = nil
		case hostabi.OpClear:
			k.val, k.hasVal, k.valExp, k.m, k.list = nil, false, 0, nil, nil
		case hostabi.OpTimerSet:
			w.ev.set(k, u.Time)
		case hostabi.OpTimerDelete:
			w.ev.del(k, u.Time)
		case hostabi.OpProcTimerSet:
			w.proc.set(k, u.Time)
		case hostabi.OpProcTimerDelete:
			w.proc.del(k, u.Time)
		}
	}
}

// Add runs the batch through the module with its keys' state.
func (w *stateWorker) Add(ctx context.Context, b *record.Batch, res *plugin.Result) error {
	now := w.s.now()
	w.maybeSweep(now)
	sec := w.stage(b.Records, now)
	defer w.unstage()
	if err := w.in.CallState(ctx, b, sec, res); err != nil {
		for i := range res.Ports {
			res.Ports[i].Records = res.Ports[i].Records[:0]
		}
		return err // the engine sends the batch to the error output
	}
	w.apply(res.State, func(i int) *keyState { return w.batch[w.slots[i]] }, now)
	return nil
}

// Advance fires the event-time timers the watermark reached.
func (w *stateWorker) Advance(ctx context.Context, wm int64, res *plugin.Result) (bool, error) {
	return w.fire(ctx, &w.ev, hostabi.EventTime, wm, res)
}

// AdvanceProc fires the processing-time timers the clock reached.
func (w *stateWorker) AdvanceProc(ctx context.Context, now int64, res *plugin.Result) (bool, error) {
	w.maybeSweep(now)
	return w.fire(ctx, &w.proc, hostabi.ProcessingTime, now, res)
}

// fire calls wsp_on_timer for up to maxTimerBatch timers of q due by
// `until`; done is false when more are due.
func (w *stateWorker) fire(ctx context.Context, q *timerQueue, dom hostabi.TimerDomain, until int64, res *plugin.Result) (bool, error) {
	due := q.popDue(until, maxTimerBatch)
	if len(due) == 0 {
		return true, nil
	}
	now := w.s.now()
	tb := &record.Batch{Source: record.Source{Input: w.s.StepName, Partition: "timers"}}
	for _, t := range due {
		tb.Records = append(tb.Records, record.Record{Key: []byte(t.k.key), Time: t.t, Flags: record.HasKey | record.HasTime})
	}
	sec := w.stage(tb.Records, now)
	defer w.unstage()
	// The key's current state (a popped entry may point at an earlier
	// state object of the same key, dropped while the timer was deleted).
	keyOf := func(i int) *keyState { return w.batch[w.slots[i]] }
	for i := range due {
		keyOf(i).timers--
	}
	// failing names the call's timers for the error output: the engine
	// takes the records of res.Failed's indexes from res.Failing.
	failing := func() {
		res.Failing = &record.Batch{Source: tb.Source}
		for i := range tb.Records {
			r := tb.Records[i]
			r.Value = timerJSON(r.Time, dom)
			res.Failing.Records = append(res.Failing.Records, r)
		}
	}
	if err := w.in.CallTimers(ctx, tb, dom, sec, res); err != nil {
		var pe *plugin.Error
		if !errors.As(err, &pe) {
			return false, err
		}
		// Nothing of the call is kept; each timer goes to the error output.
		for i := range res.Ports {
			res.Ports[i].Records = res.Ports[i].Records[:0]
		}
		res.Failed = res.Failed[:0]
		for i := range tb.Records {
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: err.Error()})
		}
		failing()
		return !q.nextDue(until), nil
	}
	if len(res.Failed) > 0 { // a timer the guest failed: name it in the error output
		failing()
	}
	w.apply(res.State, keyOf, now)
	return !q.nextDue(until), nil
}

func timerJSON(t int64, dom hostabi.TimerDomain) []byte {
	d := "event_time"
	if dom == hostabi.ProcessingTime {
		d = "processing_time"
	}
	return []byte(`{"timer":` + strconv.FormatInt(t, 10) + `,"domain":"` + d + `"}`)
}

// maybeSweep drops expired state of every key once per sweepEvery.
func (w *stateWorker) maybeSweep(now int64) {
	if now-w.lastSweep < sweepEvery.Milliseconds() {
		return
	}
	w.lastSweep = now
	for _, k := range w.keys {
		k.expire(now)
		if k.empty() && k.slot < 0 {
			w.drop(k)
		}
	}
}

// timerQueue is one clock's timers: a heap by (time, key) and the set of
// live ones. A deleted timer stays in the heap until it is popped, and is
// then skipped.
type timerQueue struct {
	h     []qTimer
	stale int // entries of h that are no longer live (deleted, or set again)
	ids   map[timerID]struct{}
}

type qTimer struct {
	t int64
	k *keyState
}

type timerID struct {
	key string
	t   int64
}

func (a qTimer) less(b qTimer) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.k.key < b.k.key
}

func (q *timerQueue) set(k *keyState, t int64) {
	id := timerID{k.key, t}
	if _, ok := q.ids[id]; ok {
		return
	}
	if q.ids == nil {
		q.ids = map[timerID]struct{}{}
	}
	q.ids[id] = struct{}{}
	k.timers++
	q.push(qTimer{t, k})
}

func (q *timerQueue) del(k *keyState, t int64) {
	id := timerID{k.key, t}
	if _, ok := q.ids[id]; ok {
		delete(q.ids, id)
		k.timers--
		q.stale++
		if q.stale > 1024 && q.stale > len(q.h)/2 {
			q.compact()
		}
	}
}

// compact rebuilds the heap from the live timers: a timer moved once per
// record (deleted and set again) would otherwise leave one stale entry per
// record until its time came.
func (q *timerQueue) compact() {
	live := q.live()
	q.h = q.h[:0]
	for _, t := range live {
		q.h = append(q.h, t) // sorted, so already a heap
	}
	q.stale = 0
}

func (q *timerQueue) push(x qTimer) {
	q.h = append(q.h, x)
	for i := len(q.h) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.h[i].less(q.h[p]) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *timerQueue) pop() qTimer {
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h = q.h[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && q.h[l].less(q.h[m]) {
			m = l
		}
		if r := l + 1; r < n && q.h[r].less(q.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}

// skipDead pops deleted timers off the top.
func (q *timerQueue) skipDead() {
	for len(q.h) > 0 {
		top := q.h[0]
		if _, ok := q.ids[timerID{top.k.key, top.t}]; ok {
			return
		}
		q.pop()
		if q.stale > 0 {
			q.stale--
		}
	}
}

// nextDue reports whether a live timer is due by until.
func (q *timerQueue) nextDue(until int64) bool {
	q.skipDead()
	return len(q.h) > 0 && q.h[0].t <= until
}

// popDue removes and returns up to max live timers due by until, in
// (time, key) order. A call holds at most one timer per key: the batch ends
// before a key's second timer, so what the first one's call changes
// (deleting the later timer, say) holds for it, however the timers fall
// into calls.
func (q *timerQueue) popDue(until int64, max int) []qTimer {
	var out []qTimer
	seen := map[string]bool{}
	for len(out) < max && q.nextDue(until) {
		if seen[q.h[0].k.key] {
			break // the key's next timer starts the next call
		}
		t := q.pop()
		seen[t.k.key] = true
		delete(q.ids, timerID{t.k.key, t.t})
		out = append(out, t)
	}
	return out
}

// live lists the live timers in (time, key) order.
func (q *timerQueue) live() []qTimer {
	out := make([]qTimer, 0, len(q.ids))
	for _, t := range q.h {
		if _, ok := q.ids[timerID{t.k.key, t.t}]; ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b qTimer) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.k.key, b.k.key)
	})
	// A timer deleted and set again is in the heap twice.
	return slices.CompactFunc(out, func(a, b qTimer) bool { return a.t == b.t && a.k.key == b.k.key })
}

var _ engine.ProcTimer = (*stateWorker)(nil)
var _ engine.Snapshotter = (*stateWorker)(nil)

// errVersion says why restored state is refused.
func (s *StateStep) errVersion(stored uint32) error {
	return fmt.Errorf("step %s: the stored state has layout version %d and the module declares version %d: "+
		"start with --reset-state %s to drop this step's state, or run a module of version %d",
		s.StepName, stored, s.Module.StateVersion(), s.StepName, stored)
}
