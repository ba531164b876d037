package window

import (
	"container/heap"
)

// Operator is a keyed event-time window operator for tumbling and sliding
// windows over one numeric field, following semantics.md:
//
//   - a window [s, e) fires once the watermark reaches e - 1, with its full
//     result (Update false);
//   - with allowed lateness L its state is kept until the watermark reaches
//     e - 1 + L; a record arriving in that time is added and the window
//     fires again at once with its full, updated result (Update true);
//   - a record is late data only when every window it belongs to is past
//     cleanup and its own time + L <= W; it is then reported, not added;
//   - windows exist only once a record falls into them.
//
// State is a Moments per (key, window). One worker owns an Operator (it is
// not safe for concurrent use); the engine routes each key to one worker by
// key group. Issue "windowing" wires it into pipelines.
type Operator struct {
	// Assign appends the windows of event time ts to dst.
	Assign func(dst []Window, ts int64) []Window
	// Lateness is the allowed lateness L in milliseconds (>= 0).
	Lateness int64

	state   map[wkey]*winState
	fires   timerHeap // by e - 1
	cleans  timerHeap // by e - 1 + L
	wm      int64
	started bool
	buf     []Window
}

type wkey struct {
	key string
	w   Window
}

type winState struct {
	m     Moments
	fired bool
}

// Result is one firing of one window.
type Result struct {
	Key    string
	Window Window
	M      Moments
	Update bool // a late firing of a window that had fired before
}

// Outcome says what Add did with a record.
type Outcome int

// Outcomes of Add.
const (
	Added    Outcome = iota // added to at least one window
	Late                    // late data: every window past cleanup (then also ts + L <= W, since ts <= e - 1)
	NoWindow                // belongs to no window (sliding, slide > size): counted by the caller
)

func (o *Operator) init() {
	if !o.started {
		o.started = true
		o.state = map[wkey]*winState{}
		o.wm = NoWatermark
	}
}

// Watermark is the watermark the operator last advanced to.
func (o *Operator) Watermark() int64 { o.init(); return o.wm }

// Add folds the value v of key at event time ts into its windows. Windows
// that had already fired fire again: their updated results go to emit.
func (o *Operator) Add(key string, ts int64, v float64, emit func(Result)) Outcome {
	o.init()
	o.buf = o.Assign(o.buf[:0], ts)
	if len(o.buf) == 0 {
		return NoWindow
	}
	added := false
	for _, w := range o.buf {
		if o.wm != NoWatermark && w.End-1+o.Lateness <= o.wm {
			continue // past cleanup
		}
		k := wkey{key, w}
		st, ok := o.state[k]
		if !ok {
			st = &winState{}
			o.state[k] = st
			heap.Push(&o.fires, timer{at: w.End - 1, k: k})
			heap.Push(&o.cleans, timer{at: w.End - 1 + o.Lateness, k: k})
		}
		st.m.Add(v)
		added = true
		if st.fired {
			emit(Result{Key: key, Window: w, M: st.m, Update: true})
		}
	}
	if added {
		return Added
	}
	return Late
}

// Advance moves the watermark to wm (never back) and emits the windows
// that fire, in order of their end; then drops state past cleanup.
func (o *Operator) Advance(wm int64, emit func(Result)) {
	o.init()
	if wm <= o.wm {
		return
	}
	o.wm = wm
	for o.fires.Len() > 0 && o.fires[0].at <= wm {
		t := heap.Pop(&o.fires).(timer)
		st, ok := o.state[t.k]
		if !ok || st.fired {
			continue
		}
		st.fired = true
		emit(Result{Key: t.k.key, Window: t.k.w, M: st.m})
	}
	for o.cleans.Len() > 0 && o.cleans[0].at <= wm {
		t := heap.Pop(&o.cleans).(timer)
		delete(o.state, t.k)
	}
}

// Open is the number of (key, window) states held.
func (o *Operator) Open() int { return len(o.state) }

type timer struct {
	at int64
	k  wkey
}

// timerHeap orders timers by time, then window start, then key, so firing
// order is deterministic.
type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	if h[i].k.w.Start != h[j].k.w.Start {
		return h[i].k.w.Start < h[j].k.w.Start
	}
	return h[i].k.key < h[j].k.key
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
