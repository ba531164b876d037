package window

import "container/heap"

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

	keys     map[string]*sessKey
	fires    sessHeap
	cleans   sessHeap
	wm       int64
	started  bool
	resuming bool // an AdvanceN stopped at its limit
	open     int
	res      Result
}

type sessKey struct {
	key  string
	sess []session // disjoint, not touching; in no particular order
}

type session struct {
	w       Window
	n       int64
	fired   bool
	updated bool // merged from a session that had fired
	m       []Moments
	fl      []FirstLast
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

// Add folds a record into the session of its key (see Operator.Add for
// vals and present).
func (o *SessionOperator) Add(key []byte, ts int64, vals []float64, present uint64, emit func(*Result)) Outcome {
	o.init()
	w := Window{Start: ts, End: ts + o.Gap}
	k := o.keys[string(key)]
	// The cover of the record's window and every session it touches.
	if k != nil {
		for {
			grew := false
			for i := range k.sess {
				if x := k.sess[i].w; x.Intersects(w) && (x.Start < w.Start || x.End > w.End) {
					w = w.Cover(x)
					grew = true
				}
			}
			if !grew {
				break
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
	if i := k.find(w); i >= 0 {
		s = &k.sess[i] // the record falls inside an existing session
	} else {
		s = o.mergeInto(k, w)
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
	if o.wm != NoWatermark && w.End-1 <= o.wm {
		// Its end is already behind the watermark: fire now. A session
		// that had fired before (itself or one merged into it) is an update.
		update := s.fired || s.updated
		s.fired = true
		emit(o.result(k, s, update))
	}
	return Added
}

// mergeInto replaces the key's sessions that w covers by one session w
// holding their merged state, and returns it. Its timers are new; those of
// the sessions merged away are skipped when they pop.
func (o *SessionOperator) mergeInto(k *sessKey, w Window) *session {
	s := session{w: w, m: make([]Moments, o.Fields)}
	if o.Need&NeedFirstLast != 0 {
		s.fl = make([]FirstLast, o.Fields)
	}
	keep := k.sess[:0]
	for _, x := range k.sess {
		if !x.w.Intersects(w) {
			keep = append(keep, x)
			continue
		}
		s.n += x.n
		s.updated = s.updated || x.fired || x.updated
		for f := range s.m {
			s.m[f].Merge(x.m[f])
			if s.fl != nil {
				s.fl[f].Merge(x.fl[f])
			}
		}
		o.open--
	}
	k.sess = append(keep, s)
	o.open++
	heap.Push(&o.fires, sessTimer{at: w.End - 1, k: k, w: w})
	heap.Push(&o.cleans, sessTimer{at: w.End - 1 + o.Lateness, k: k, w: w})
	return &k.sess[len(k.sess)-1]
}

func (o *SessionOperator) result(k *sessKey, s *session, update bool) *Result {
	r := &o.res
	r.Key, r.Window, r.N, r.Update, r.M, r.FL = k.key, s.w, s.n, update, s.m, s.fl
	return r
}

func (k *sessKey) find(w Window) int {
	for i := range k.sess {
		if k.sess[i].w == w {
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
func (o *SessionOperator) AdvanceN(wm int64, max int, emit func(*Result)) bool {
	o.init()
	if wm < o.wm || wm == o.wm && !o.resuming {
		return true
	}
	o.wm, o.resuming = wm, false
	n := 0
	for o.fires.Len() > 0 && o.fires[0].at <= wm {
		if max > 0 && n == max {
			o.resuming = true
			return false
		}
		t := heap.Pop(&o.fires).(sessTimer)
		i := t.k.find(t.w)
		if i < 0 || t.k.sess[i].fired {
			continue // merged away, or fired already
		}
		s := &t.k.sess[i]
		s.fired = true
		emit(o.result(t.k, s, s.updated))
		n++
	}
	for o.cleans.Len() > 0 && o.cleans[0].at <= wm {
		t := heap.Pop(&o.cleans).(sessTimer)
		i := t.k.find(t.w)
		if i < 0 {
			continue
		}
		t.k.sess = append(t.k.sess[:i], t.k.sess[i+1:]...)
		o.open--
		if len(t.k.sess) == 0 && o.keys[t.k.key] == t.k {
			delete(o.keys, t.k.key)
		}
	}
	return true
}

type sessTimer struct {
	at int64
	k  *sessKey
	w  Window
}

// sessHeap orders timers by time, then session start, then key, so the
// order of results is deterministic.
type sessHeap []sessTimer

func (h sessHeap) Len() int { return len(h) }
func (h sessHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	if h[i].w.Start != h[j].w.Start {
		return h[i].w.Start < h[j].w.Start
	}
	return h[i].k.key < h[j].k.key
}
func (h sessHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sessHeap) Push(x any)   { *h = append(*h, x.(sessTimer)) }
func (h *sessHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
