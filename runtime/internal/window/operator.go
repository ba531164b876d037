package window

import (
	"container/heap"
	"hash/maphash"
	"slices"
	"unsafe"
)

// Operator is a keyed event-time window operator for aligned windows
// (tumbling and sliding: every key has the same window bounds), following
// semantics.md:
//
//   - a window [s, e) fires once the watermark reaches e - 1, with its full
//     result (Update false);
//   - with allowed lateness L its state is kept until the watermark reaches
//     e - 1 + L; a record arriving in that time is added and the window
//     fires again at once with its full, updated result (Update true);
//   - a record is late data only when every window it belongs to is past
//     cleanup (then also its time + L <= W, since time <= e - 1); it is
//     reported, not added;
//   - windows exist only once a record falls into them.
//
// State is kept per key: the key's open windows, each with a record count
// and, per numeric field, a Moments (and a FirstLast when asked). Firing is
// indexed by window end, which all keys share: a heap of distinct ends and,
// per end, the keys with a window ending there, in the order those windows
// opened. So firing costs no per-window timer, and the order of results is
// fixed by the order of the input.
//
// One worker owns an Operator (it is not safe for concurrent use); the
// engine routes each key to one worker by key group.
type Operator struct {
	// Assign appends the windows of event time ts to dst.
	Assign func(dst []Window, ts int64) []Window
	// Lateness is the allowed lateness L in milliseconds (>= 0).
	Lateness int64
	// Fields is the number of numeric fields each record carries.
	Fields int
	// Need says which parts of the accumulators to keep.
	Need Need
	// Sketch[f] says which sketches field f keeps (SketchDistinct,
	// SketchQuantiles); nil for none.
	Sketch []uint8
	// Hashes and Hashed are the value hashes of the record being added,
	// for distinct counts: bit f of Hashed says Hashes[f] is set. The caller
	// sets them before each Add.
	Hashes []uint64
	Hashed uint64
	// EveryRecords, when > 0, emits an early result of a window each time
	// it has gathered that many more records (emission mode "updates").
	EveryRecords int64
	// EveryMs, when > 0, emits early results each time the watermark
	// passes a multiple of it, for the windows that gained records since
	// their last result and do not fire at that watermark (as Flink's
	// continuous event-time trigger: deterministic, from the data).
	EveryMs int64
	// Touch, when set, gives every window an AccBox (bytes an aggregate
	// outside the operator keeps, such as a Wasm module's accumulator) and
	// is called with it for each record added to the window.
	Touch func(b *AccBox)
	// Retain is how long (in event time) a key without open windows keeps
	// its (empty) state for reuse before it is dropped. Default: 60 s.
	Retain int64

	keys    map[uint64]*keyState // by maphash of the key; collisions chain through hnext
	seed    maphash.Seed
	ends    int64Heap // distinct ends with unfired windows
	byEnd   map[int64]*endList
	last    *endList  // the list of the end a window last opened with
	cleans  int64Heap // distinct ends of fired windows awaiting cleanup
	byClean map[int64][]*keyState
	wm      int64
	started bool
	buf     []Window
	idle    []*keyState // keys whose last window closed (kept for reuse, swept later)
	active  int         // keys with at least one open window
	swept   int64       // the watermark at the last sweep
	open    int
	res     Result
	// An Advance cut short by its limit resumes here.
	resumeEnd  int64
	resumeList []*keyState
	sink       uint64 // keeps AdvanceN's early loads from being optimized away
}

// Need selects the accumulator parts an operator keeps per field.
type Need uint8

// Parts of the accumulators. Count and the compensated sum are always kept.
const (
	NeedMinMax    Need = 1 << iota // Min and Max
	NeedMoments                    // Welford mean and M2 (mean, variance, std)
	NeedFirstLast                  // FirstLast per field
)

type keyState struct {
	key    string // in keyIn when it fits, so comparing it touches no other memory
	hash   uint64
	hnext  *keyState // the next key with the same hash
	keyIn  [16]byte
	idle   bool  // no open window; in Operator.idle
	idleAt int64 // the watermark when it became idle
	wins   []winMeta
	m      []Moments // len(wins) × Fields
	ext    *keyExt   // the rarer accumulators, nil when the operator keeps none

	// Room for the usual case (one open window, one field) inside the
	// struct, so wins and m start on the key's own cache lines.
	winsIn [1]winMeta
	mIn    [1]Moments
}

// keyExt holds the accumulators only some windows keep.
type keyExt struct {
	fl []FirstLast // len(wins) × Fields, with NeedFirstLast
	sk []*Sketches // len(wins) × Fields, with Sketch (nil for fields without)
}

type winMeta struct {
	w     Window
	n     int64
	fired bool
	dirty bool    // records since the window's last result (early results)
	box   *AccBox // with Operator.Touch
}

// AccBox holds one window's accumulator for an aggregate the operator does
// not run itself (a Wasm aggregate): its caller fills Acc.
type AccBox struct {
	Acc []byte
}

// Result is one firing of one window. M and FL (per field) are valid only
// until the emit function returns.
type Result struct {
	Key    string
	Window Window
	N      int64 // records in the window
	M      []Moments
	FL     []FirstLast
	SK     []*Sketches // per field; nil entries for fields without sketches
	Update bool        // a late firing of a window that had fired before
	Early  bool        // an early result of a window still open (emission "updates")
	Box    *AccBox     // the window's AccBox, with Operator.Touch
}

// Outcome says what Add did with a record.
type Outcome int

// Outcomes of Add.
const (
	Added    Outcome = iota // added to at least one window
	Late                    // late data: every window past cleanup
	NoWindow                // belongs to no window (sliding, slide > size): counted by the caller
)

func (o *Operator) init() {
	if !o.started {
		o.started = true
		o.keys = map[uint64]*keyState{}
		o.seed = maphash.MakeSeed()
		o.byEnd = map[int64]*endList{}
		if o.Retain <= 0 {
			o.Retain = 60_000
		}
		o.byClean = map[int64][]*keyState{}
		o.wm = NoWatermark
	}
}

// Watermark is the watermark the operator last advanced to.
func (o *Operator) Watermark() int64 { o.init(); return o.wm }

// Add folds a record of key at event time ts into its windows: vals holds
// its numeric fields, and bit i of present says whether field i has a
// value (a missing or null field is left out of that field's aggregates,
// as SQL does). Windows that had already fired fire again: their updated
// results go to emit.
func (o *Operator) Add(key []byte, ts int64, vals []float64, present uint64, emit func(*Result)) Outcome {
	return o.AddLooked(o.Lookup(key), key, ts, vals, present, emit)
}

// Looked is a key's state found by Lookup (nil for a key not held yet).
type Looked struct {
	ks *keyState
	h  uint64
}

// Lookup finds key's state. A caller adding a batch can look up all its
// keys first and then add: independent lookups overlap their cache misses.
// A Looked is valid until the next Advance.
func (o *Operator) Lookup(key []byte) Looked {
	o.init()
	h := maphash.Bytes(o.seed, key)
	ks := o.keys[h]
	for ks != nil && ks.key != string(key) {
		ks = ks.hnext
	}
	return Looked{ks, h}
}

// AddLooked is Add with the key's state already looked up. A key that
// Lookup did not find may have been added since (earlier in the batch).
func (o *Operator) AddLooked(l Looked, key []byte, ts int64, vals []float64, present uint64, emit func(*Result)) Outcome {
	o.init()
	o.buf = o.Assign(o.buf[:0], ts)
	if len(o.buf) == 0 {
		return NoWindow
	}
	h, ks := l.h, l.ks
	if ks == nil {
		for ks = o.keys[h]; ks != nil && ks.key != string(key); ks = ks.hnext {
		}
	}
	added := false
	for _, w := range o.buf {
		if o.wm != NoWatermark && w.End-1+o.Lateness <= o.wm {
			continue // past cleanup
		}
		if ks == nil {
			ks = newKeyState(key, h)
			ks.hnext = o.keys[h]
			ks.wins = ks.winsIn[:0]
			if o.Need&NeedFirstLast != 0 || o.Sketch != nil {
				ks.ext = &keyExt{}
			}
			if o.Fields == 1 {
				ks.m = ks.mIn[:0]
			}
			o.keys[h] = ks
			o.active++
		} else if ks.idle {
			ks.idle = false
			o.active++
		}
		i := ks.find(w.End)
		if i < 0 {
			i = o.openWindow(ks, w)
		}
		o.fold(ks, i, ts, vals, present)
		if o.Touch != nil {
			o.Touch(ks.wins[i].box)
		}
		added = true
		switch wm := &ks.wins[i]; {
		case wm.fired:
			emit(o.result(ks, i, true))
		case o.EveryRecords > 0 && wm.n%o.EveryRecords == 0:
			wm.dirty = false
			r := o.result(ks, i, false)
			r.Early = true
			emit(r)
		default:
			wm.dirty = true
		}
	}
	if added {
		return Added
	}
	return Late
}

func newKeyState(key []byte, h uint64) *keyState {
	ks := &keyState{hash: h}
	if len(key) <= len(ks.keyIn) {
		n := copy(ks.keyIn[:], key)
		ks.key = unsafe.String(&ks.keyIn[0], n)
	} else {
		ks.key = string(key)
	}
	return ks
}

// drop removes ks from the key index.
func (o *Operator) drop(ks *keyState) {
	head := o.keys[ks.hash]
	if head == ks {
		if ks.hnext == nil {
			delete(o.keys, ks.hash)
		} else {
			o.keys[ks.hash] = ks.hnext
		}
		return
	}
	for p := head; p != nil; p = p.hnext {
		if p.hnext == ks {
			p.hnext = ks.hnext
			return
		}
	}
}

// find returns the index of the key's window ending at end, or -1.
func (ks *keyState) find(end int64) int {
	for i := range ks.wins {
		if ks.wins[i].w.End == end {
			return i
		}
	}
	return -1
}

func (o *Operator) openWindow(ks *keyState, w Window) int {
	ks.wins = append(ks.wins, winMeta{w: w})
	if o.Touch != nil {
		ks.wins[len(ks.wins)-1].box = &AccBox{}
	}
	for f := range o.Fields {
		ks.m = append(ks.m, Moments{})
		if o.Need&NeedFirstLast != 0 {
			ks.ext.fl = append(ks.ext.fl, FirstLast{})
		}
		if o.Sketch != nil {
			ks.ext.sk = append(ks.ext.sk, newSketches(o.Sketch[f]))
		}
	}
	l := o.last
	if l == nil || l.end != w.End {
		if l = o.byEnd[w.End]; l == nil {
			l = &endList{end: w.End}
			o.byEnd[w.End] = l
			heap.Push(&o.ends, w.End)
		}
		o.last = l
	}
	l.keys = append(l.keys, ks)
	o.open++
	return len(ks.wins) - 1
}

func (o *Operator) fold(ks *keyState, i int, ts int64, vals []float64, present uint64) {
	ks.wins[i].n++
	if o.Fields == 0 {
		return
	}
	ms := ks.m[i*o.Fields : (i+1)*o.Fields]
	for f := range ms {
		if present&(1<<f) == 0 {
			continue
		}
		x := vals[f]
		m := &ms[f]
		switch {
		case o.Need&NeedMoments != 0:
			m.Add(x)
		case o.Need&NeedMinMax != 0:
			m.addMinMax(x)
		default:
			m.N++
			m.addSum(x)
		}
		if o.Need&NeedFirstLast != 0 {
			ks.ext.fl[i*o.Fields+f].Add(ts, x)
		}
	}
	if o.Sketch != nil {
		foldSketches(ks.ext.sk[i*o.Fields:(i+1)*o.Fields], vals, present, o.Hashes, o.Hashed)
	}
}

func (o *Operator) result(ks *keyState, i int, update bool) *Result {
	r := &o.res
	r.Key, r.Window, r.N, r.Update, r.Early, r.Box = ks.key, ks.wins[i].w, ks.wins[i].n, update, false, ks.wins[i].box
	r.M = ks.m[i*o.Fields : (i+1)*o.Fields]
	r.FL, r.SK = nil, nil
	if o.Need&NeedFirstLast != 0 {
		r.FL = ks.ext.fl[i*o.Fields : (i+1)*o.Fields]
	}
	if o.Sketch != nil {
		r.SK = ks.ext.sk[i*o.Fields : (i+1)*o.Fields]
	}
	return r
}

// remove drops window i of ks, and ks itself when it has no window left.
func (o *Operator) remove(ks *keyState, i int) {
	last := len(ks.wins) - 1
	ks.wins[i] = ks.wins[last]
	ks.wins = ks.wins[:last]
	if f := o.Fields; f > 0 {
		copy(ks.m[i*f:(i+1)*f], ks.m[last*f:])
		ks.m = ks.m[:last*f]
		if o.Need&NeedFirstLast != 0 {
			copy(ks.ext.fl[i*f:(i+1)*f], ks.ext.fl[last*f:])
			ks.ext.fl = ks.ext.fl[:last*f]
		}
		if o.Sketch != nil {
			copy(ks.ext.sk[i*f:(i+1)*f], ks.ext.sk[last*f:])
			clear(ks.ext.sk[last*f:])
			ks.ext.sk = ks.ext.sk[:last*f]
		}
	}
	o.open--
	if last == 0 {
		// Kept in the map: a key usually comes back, and re-inserting it
		// would cost a map write and a string. sweep drops idle keys.
		ks.idle, ks.idleAt = true, o.wm
		o.active--
		o.idle = append(o.idle, ks)
	}
}

// sweep drops the keys that have had no open window for Retain (in event
// time), at most once per Retain and only with 4096 idle keys or more, so
// memory follows the keys in use, not history, while a key that comes back
// regularly keeps its state (no map write, no new string).
func (o *Operator) sweep() {
	if len(o.idle) < 4096 || o.wm-o.swept < o.Retain {
		return
	}
	keep := o.idle[:0]
	for _, ks := range o.idle {
		switch {
		case !ks.idle:
			// active again; it re-enters the list when it next goes idle
		case o.wm-ks.idleAt >= o.Retain:
			o.drop(ks)
		default:
			keep = append(keep, ks)
		}
	}
	clear(o.idle[len(keep):])
	o.idle = keep
	o.swept = o.wm
}

// Advance moves the watermark to wm (never back) and emits the windows
// that fire, in order of their end (and, for one end, in the order the
// windows opened); then drops state past cleanup.
func (o *Operator) Advance(wm int64, emit func(*Result)) {
	for !o.AdvanceN(wm, 0, emit) {
	}
}

// AdvanceN is Advance emitting at most max results (max <= 0: no limit).
// It returns false when it stopped at the limit: call it again with the
// same watermark to go on.
func (o *Operator) AdvanceN(wm int64, max int, emit func(*Result)) (done bool) {
	o.init()
	if wm < o.wm || wm == o.wm && o.resumeList == nil {
		return true
	}
	if o.EveryMs > 0 && o.resumeList == nil && o.wm != NoWatermark && FloorDiv(wm, o.EveryMs) > FloorDiv(o.wm, o.EveryMs) {
		o.early(wm, emit)
	}
	o.wm = wm
	n := 0
	for {
		var end int64
		var list []*keyState
		if o.resumeList != nil {
			end, list = o.resumeEnd, o.resumeList
			o.resumeList = nil
		} else if o.ends.Len() > 0 && o.ends[0]-1 <= wm {
			end = heap.Pop(&o.ends).(int64)
			list = o.byEnd[end].keys
			delete(o.byEnd, end)
			if o.last != nil && o.last.end == end {
				o.last = nil
			}
		} else {
			break
		}
		for li, ks := range list {
			if max > 0 && n == max {
				o.resumeEnd, o.resumeList = end, list[li:]
				return false
			}
			// Touch the state of keys further down the list now: the
			// loads miss the cache, and issued early they overlap with the
			// work on this key instead of stalling it one after another.
			if li+8 < len(list) {
				o.sink += uint64(len(list[li+8].wins))
			}
			if li+4 < len(list) {
				if k := list[li+4]; len(k.wins) > 0 && len(k.m) > 0 {
					o.sink += uint64(k.wins[0].n) + uint64(k.m[0].N)
				}
			}
			i := ks.find(end)
			if i < 0 || ks.wins[i].fired {
				continue
			}
			ks.wins[i].fired = true
			emit(o.result(ks, i, false))
			n++
			if end-1+o.Lateness <= wm {
				o.remove(ks, i)
				continue
			}
			l, ok := o.byClean[end]
			if !ok {
				heap.Push(&o.cleans, end)
			}
			o.byClean[end] = append(l, ks)
		}
	}
	for o.cleans.Len() > 0 && o.cleans[0]-1+o.Lateness <= wm {
		end := heap.Pop(&o.cleans).(int64)
		list := o.byClean[end]
		delete(o.byClean, end)
		for _, ks := range list {
			if i := ks.find(end); i >= 0 {
				o.remove(ks, i)
			}
		}
	}
	o.sweep()
	return true
}

// early emits an early result for every open window that gained records
// since its last result and does not fire at wm, in order of window end,
// then in the order the windows opened.
func (o *Operator) early(wm int64, emit func(*Result)) {
	ends := make([]int64, 0, len(o.byEnd))
	for e := range o.byEnd {
		if e-1 > wm {
			ends = append(ends, e)
		}
	}
	slices.Sort(ends)
	for _, e := range ends {
		for _, ks := range o.byEnd[e].keys {
			i := ks.find(e)
			if i < 0 || ks.wins[i].fired || !ks.wins[i].dirty {
				continue
			}
			ks.wins[i].dirty = false
			r := o.result(ks, i, false)
			r.Early = true
			emit(r)
		}
	}
}

// Open is the number of (key, window) states held.
func (o *Operator) Open() int { return o.open }

// Keys is the number of keys with at least one open window.
func (o *Operator) Keys() int { return o.active }

// endList holds the keys with a window ending at end, in opening order.
type endList struct {
	end  int64
	keys []*keyState
}

// int64Heap is a min-heap of window ends.
type int64Heap []int64

func (h int64Heap) Len() int           { return len(h) }
func (h int64Heap) Less(i, j int) bool { return h[i] < h[j] }
func (h int64Heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *int64Heap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *int64Heap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
