package window

import "sort"

// SessionOperator is a keyed event-time session window operator
// (semantics.md, "Session(gap)"):
//
//   - each record opens [t, t + gap); sessions of a key that overlap or
//     touch merge into their cover, accumulators merged (so two records
//     exactly gap apart are one session);
//   - a session fires once the watermark reaches end - 1; with allowed
//     lateness L it is kept until end - 1 + L;
//   - a record is late when the session it would make (after merging with
//     the key's sessions still held) is past cleanup: end - 1 + L <= W;
//   - a late record can bridge two sessions: they merge, and a merged
//     session that had fired fires again, marked as an update (at once when
//     its end is already behind the watermark, else when it closes).
//
// Timers are a heap of (time, key, session) entries, checked when they pop:
// an entry whose session was merged away is skipped. One worker owns an
// operator; it is not safe for concurrent use.
type SessionOperator struct {
	Gap      int64 // > 0, milliseconds
	Lateness int64 // >= 0, milliseconds
	Fields   int
	Need     Need
	// Sketch, Hashes and Hashed are as in Operator.
	Sketch []uint8
	Hashes []uint64
	Hashed uint64
	// Touch is as in Operator. MergeBoxes is called when a session is
	// merged into another: src's accumulator must be folded into dst's.
	Touch      func(b *AccBox)
	MergeBoxes func(dst, src *AccBox)
	// EveryRecords and EveryMs ask for early results of open sessions
	// (emission "updates"), as in Operator: after every EveryRecords more
	// records of a session (counted since its last result, merges
	// included), and each time the watermark passes a multiple of EveryMs
	// for the sessions with records since their last result that do not
	// close at that watermark, in order of end, key, then opening.
	EveryRecords int64
	EveryMs      int64

	keys     map[string]*sessKey
	fires    sessHeap
	cleans   sessHeap
	wm       int64
	started  bool
	resuming bool // an AdvanceN stopped at its limit
	open     int
	res      Result
	nextID   uint64
	free     []*session
	dirty    []sessTimer // sessions that gained records since their last result (with EveryMs)
}

type sessKey struct {
	key  string
	sess []*session // disjoint, not touching; in no particular order
}

type session struct {
	id      uint64
	w       Window
	n       int64
	fired   bool
	updated bool  // merged from, or extended after, a firing: its next result is an update
	timer   bool  // a fire timer for it is in the heap
	since   int64 // records since its last result (early results)
	dirty   bool  // in SessionOperator.dirty
	m       []Moments
	fl      []FirstLast
	sk      []*Sketches
	box     *AccBox    // with Touch
	mIn     [1]Moments // m for one field, without another allocation
}

func (o *SessionOperator) init() {
	if !o.started {
		o.started = true
		o.keys = map[string]*sessKey{}
		o.wm = NoWatermark
	}
}

// Watermark is the watermark the operator last advanced to.
func (o *SessionOperator) Watermark() int64 { o.init(); return o.wm }

// Open is the number of sessions held.
func (o *SessionOperator) Open() int { return o.open }

func (o *SessionOperator) newSession(w Window) *session {
	var s *session
	if n := len(o.free); n > 0 {
		s, o.free = o.free[n-1], o.free[:n-1]
		*s = session{}
	} else {
		s = &session{}
	}
	o.nextID++
	s.id, s.w = o.nextID, w
	if o.Touch != nil {
		s.box = &AccBox{}
	}
	if o.Fields <= 1 {
		s.m = s.mIn[:o.Fields]
	} else {
		s.m = make([]Moments, o.Fields)
	}
	if o.Need&NeedFirstLast != 0 {
		s.fl = make([]FirstLast, o.Fields)
	}
	if o.Sketch != nil {
		s.sk = make([]*Sketches, o.Fields)
		for f, k := range o.Sketch {
			s.sk[f] = newSketches(k)
		}
	}
	o.open++
	return s
}

func (o *SessionOperator) release(s *session) {
	o.open--
	s.m, s.fl, s.sk = nil, nil, nil
	o.free = append(o.free, s)
}

// Add folds a record into the session of its key (see Operator.Add for
// vals and present). The record's window [ts, ts+gap) and every session it
// touches become one session: the first of them, grown in place, with the
// others' state merged in.
func (o *SessionOperator) Add(key []byte, ts int64, vals []float64, present uint64, emit func(*Result)) Outcome {
	o.init()
	w := Window{Start: ts, End: ts + o.Gap}
	k := o.keys[string(key)]
	if k != nil {
		for grew := true; grew; {
			grew = false
			for _, x := range k.sess {
				if x.w.Intersects(w) && (x.w.Start < w.Start || x.w.End > w.End) {
					w = w.Cover(x.w)
					grew = true
				}
			}
		}
	}
	if o.wm != NoWatermark && w.End-1+o.Lateness <= o.wm {
		return Late
	}
	if k == nil {
		k = &sessKey{key: string(key)}
		o.keys[k.key] = k
	}
	var s *session
	keep := k.sess[:0]
	for _, x := range k.sess {
		if !x.w.Intersects(w) {
			keep = append(keep, x)
			continue
		}
		if s == nil {
			s = x
			keep = append(keep, x)
			continue
		}
		// A second session in the cover: merge it into s.
		if o.MergeBoxes != nil {
			o.MergeBoxes(s.box, x.box)
		}
		s.n += x.n
		s.since += x.since
		if x.dirty && !s.dirty {
			o.markDirty(k, s)
		}
		s.updated = s.updated || s.fired || x.fired || x.updated
		s.fired = false
		for f := range s.m {
			s.m[f].Merge(x.m[f])
			if s.fl != nil {
				s.fl[f].Merge(x.fl[f])
			}
			if s.sk != nil {
				s.sk[f].merge(x.sk[f])
			}
		}
		o.release(x)
	}
	clear(k.sess[len(keep):])
	k.sess = keep
	if s == nil {
		s = o.newSession(w)
		k.sess = append(k.sess, s)
	} else if s.w != w {
		if s.fired && w.End > s.w.End || s.updated && !s.fired {
			// A fired session grown past its end fires again, as an update.
			s.fired, s.updated = false, true
		}
		s.w = w
	}
	if !s.fired && !s.timer {
		o.fires.push(sessTimer{at: w.End - 1, k: k, id: s.id})
		s.timer = true
	}
	s.n++
	for f := range s.m {
		if present&(1<<f) != 0 {
			s.m[f].Add(vals[f])
			if s.fl != nil {
				s.fl[f].Add(ts, vals[f])
			}
		}
	}
	if s.sk != nil {
		foldSketches(s.sk, vals, present, o.Hashes, o.Hashed)
	}
	if o.Touch != nil {
		o.Touch(s.box)
	}
	s.since++
	switch {
	case o.wm != NoWatermark && w.End-1 <= o.wm:
		// Its end is already behind the watermark: fire now. A session
		// that had fired before (itself or one merged into it) is an update.
		update := s.fired || s.updated
		if !s.fired {
			o.fired(k, s)
		}
		emit(o.result(k, s, update))
	case o.EveryRecords > 0 && s.since >= o.EveryRecords:
		r := o.result(k, s, s.updated)
		r.Early = true
		emit(r)
	case o.EveryMs > 0 && !s.dirty:
		o.markDirty(k, s)
	}
	return Added
}

func (o *SessionOperator) markDirty(k *sessKey, s *session) {
	s.dirty = true
	o.dirty = append(o.dirty, sessTimer{k: k, id: s.id})
}

// early emits the early results due as the watermark moves to wm (see
// EveryMs): the sessions in o.dirty still held, open and not closing at wm.
func (o *SessionOperator) early(wm int64, emit func(*Result)) {
	var due []sessTimer
	for _, t := range o.dirty {
		i := t.k.find(t.id)
		if i < 0 {
			continue // merged away or dropped
		}
		s := t.k.sess[i]
		if s.dirty && s.since > 0 && !s.fired && s.w.End-1 > wm {
			t.at = s.w.End
			due = append(due, t)
		}
		// Every session in the list leaves it: it gets its early result
		// now, or closes at wm (or had closed), which is a result too.
		s.dirty = false
	}
	clear(o.dirty)
	o.dirty = o.dirty[:0]
	sort.Slice(due, sessHeap(due).less) // by end, key, opening
	for _, t := range due {
		s := t.k.sess[t.k.find(t.id)]
		r := o.result(t.k, s, s.updated)
		r.Early = true
		emit(r)
	}
}

// fired marks s fired and schedules its cleanup.
func (o *SessionOperator) fired(k *sessKey, s *session) {
	s.fired = true
	o.cleans.push(sessTimer{at: s.w.End - 1 + o.Lateness, k: k, id: s.id})
}

// result is s's result; every result resets the count toward an early one.
func (o *SessionOperator) result(k *sessKey, s *session, update bool) *Result {
	s.since = 0
	r := &o.res
	r.Key, r.Window, r.N, r.Update, r.Early, r.M, r.FL, r.SK, r.Box = k.key, s.w, s.n, update, false, s.m, s.fl, s.sk, s.box
	return r
}

func (k *sessKey) find(id uint64) int {
	for i, s := range k.sess {
		if s.id == id {
			return i
		}
	}
	return -1
}

// Advance moves the watermark to wm and emits the sessions that close, in
// order of their end (then start, then key); then drops state past cleanup.
func (o *SessionOperator) Advance(wm int64, emit func(*Result)) {
	for !o.AdvanceN(wm, 0, emit) {
	}
}

// AdvanceN is Advance emitting at most max results (max <= 0: no limit);
// false means it stopped at the limit: call again with the same watermark.
//
// Timers are checked when they pop: a session merged away is skipped, and
// one that grew since its timer was set gets a new timer at its new end.
func (o *SessionOperator) AdvanceN(wm int64, max int, emit func(*Result)) bool {
	o.init()
	if wm < o.wm || wm == o.wm && !o.resuming {
		return true
	}
	if o.EveryMs > 0 && !o.resuming && o.wm != NoWatermark && FloorDiv(wm, o.EveryMs) > FloorDiv(o.wm, o.EveryMs) {
		o.early(wm, emit)
	}
	o.wm, o.resuming = wm, false
	n := 0
	for o.fires.Len() > 0 && o.fires[0].at <= wm {
		if max > 0 && n == max {
			o.resuming = true
			return false
		}
		t := o.fires.pop()
		i := t.k.find(t.id)
		if i < 0 {
			continue // merged away
		}
		s := t.k.sess[i]
		s.timer = false
		if s.fired {
			continue
		}
		if s.w.End-1 > t.at {
			o.fires.push(sessTimer{at: s.w.End - 1, k: t.k, id: s.id})
			s.timer = true
			continue
		}
		o.fired(t.k, s)
		emit(o.result(t.k, s, s.updated))
		n++
	}
	for o.cleans.Len() > 0 && o.cleans[0].at <= wm {
		t := o.cleans.pop()
		i := t.k.find(t.id)
		if i < 0 {
			continue
		}
		s := t.k.sess[i]
		if at := s.w.End - 1 + o.Lateness; at > t.at {
			o.cleans.push(sessTimer{at: at, k: t.k, id: s.id}) // grew since
			continue
		}
		last := len(t.k.sess) - 1
		t.k.sess[i] = t.k.sess[last]
		t.k.sess[last] = nil
		t.k.sess = t.k.sess[:last]
		o.release(s)
		if last == 0 && o.keys[t.k.key] == t.k {
			delete(o.keys, t.k.key)
		}
	}
	return true
}

type sessTimer struct {
	at int64
	k  *sessKey
	id uint64
}

// sessHeap is a min-heap of timers by time, then key, then session id
// (sessions of one key are numbered in opening order), so the order of
// results is fixed by the input. It is typed, not container/heap: the
// interface calls cost a third of a session-heavy run.
type sessHeap []sessTimer

func (h sessHeap) Len() int { return len(h) }

func (h sessHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	if h[i].k != h[j].k {
		return h[i].k.key < h[j].k.key
	}
	return h[i].id < h[j].id
}

func (h *sessHeap) push(t sessTimer) {
	*h = append(*h, t)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *sessHeap) pop() sessTimer {
	q := *h
	t := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = sessTimer{}
	q = q[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(q) {
			break
		}
		m := l
		if r := l + 1; r < len(q) && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return t
}
