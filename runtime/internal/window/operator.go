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
// State is window-major: all keys share the window bounds, so the state of
// one window end is one table whose entries are the keys with a record in
// that window, in the order their windows opened, with the accumulators in
// parallel arrays (a record count, and per numeric field a Moments, or only
// a compensated sum when nothing more is asked for). A key's own state is
// small: its bytes, and where its open windows sit in the tables (an end and
// an entry index each). So adding a record costs the key lookup and one
// entry; firing an end walks one table from start to end, touching no
// per-key memory and needing no per-window timer; and dropping a fired
// window is dropping its table, whose arrays are reused. The order of
// results is fixed by the order of the input: by end, then by opening.
//
// A key's references to tables it no longer has a window in are dropped
// lazily: a reference to an end past cleanup (end - 1 + L <= watermark) is
// stale, since that table is gone and the end can never open again.
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

	keys    keyIndex // by maphash of the key
	seed    maphash.Seed
	byEnd   map[int64]*table // live tables (unfired, or fired and within lateness)
	ends    int64Heap        // ends of tables with entries to fire
	cleans  int64Heap        // ends of fired tables awaiting cleanup
	cache   [8]*table        // cache[j]: the table of the j-th window of the last record
	free    []*table         // dropped tables, kept for reuse with their arrays
	snap    *snapScratch     // SnapshotLater's copies, reused from checkpoint to checkpoint
	wm      int64
	started bool
	buf     []Window
	open    int   // entries over all live tables: (key, window) states
	swept   int64 // the watermark at the last sweep
	res     Result
	mbuf    []Moments // a result's Moments, for tables that keep sums only
	// An Advance cut short by its limit resumes at resume's first unfired entry.
	resume *table
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
	key   string // in keyIn when it fits, so comparing it touches no other memory
	hash  uint64
	keyIn [16]byte
	last  int64    // the latest end of a window the key opened
	refs  []winRef // its windows' places in the tables (some may be stale)
	refIn [2]winRef
}

// winRef is where one window of a key is: entry idx of the table of end.
type winRef struct {
	end int64
	idx int32
}

// table is the state of every key's window [w.Start, w.End).
type table struct {
	w       Window
	emitted int  // entries [0, emitted) have fired
	fired   bool // end is on Operator.cleans (fired at least once)
	keyOff  []uint32
	arena   []byte  // entry i's key is arena[keyOff[i]:keyOff[i+1]] (or to the end)
	n       []int64 // records per entry
	m       []Moments
	s       []sumAcc // instead of m when only sums are kept (Need == 0)
	fl      []FirstLast
	sk      []*Sketches
	box     []*AccBox
	dirty   []bool // records since the entry's last result (with EveryMs)
}

// sumAcc is a Moments for count and sum only: a third of its size.
type sumAcc struct {
	n      int64
	sum, c float64
}

func (t *table) len() int { return len(t.n) }

func (t *table) key(i int) string {
	end := len(t.arena)
	if i+1 < len(t.keyOff) {
		end = int(t.keyOff[i+1])
	}
	start := int(t.keyOff[i])
	if start == end {
		return ""
	}
	return unsafe.String(&t.arena[start], end-start)
}

// AccBox holds one window's accumulator for an aggregate the operator does
// not run itself (a Wasm aggregate). The operator only creates boxes and
// hands them over (Touch, Result.Box); everything in one belongs to the
// aggregate that fills it. A box stays valid until the results emitted with
// it have been dealt with: the operator reuses a box only when it opens a
// window (in Add), never during an Advance.
type AccBox struct {
	Acc []byte // the accumulator
	Err string // why the aggregate gave up on this window ("" when fine)
	Tag int64  // for the aggregate's own bookkeeping; 0 in a new box
}

// Result is one firing of one window. Key, M, FL and SK are valid only
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
		o.seed = maphash.MakeSeed()
		o.byEnd = map[int64]*table{}
		if o.Retain <= 0 {
			o.Retain = 60_000
		}
		o.wm = NoWatermark
		o.mbuf = make([]Moments, o.Fields)
	}
}

// Watermark is the watermark the operator last advanced to.
func (o *Operator) Watermark() int64 { o.init(); return o.wm }

// Add adds a record of key at event time ts to its windows. vals holds
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
	return Looked{o.keys.find(h, key), h}
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
		ks = o.keys.find(h, key)
	}
	added := false
	for j, w := range o.buf {
		if o.wm != NoWatermark && w.End-1+o.Lateness <= o.wm {
			continue // past cleanup
		}
		if ks == nil {
			ks = o.addKey(key, h)
		}
		t, i := o.entry(ks, j, w)
		o.fold(t, i, ts, vals, present)
		if o.Touch != nil {
			o.Touch(t.box[i])
		}
		added = true
		switch {
		case i < t.emitted:
			emit(o.result(t, i, true))
		case i == t.emitted && o.wm != NoWatermark && w.End-1 <= o.wm && o.resume != t:
			// A window first opened within the lateness (the watermark is
			// already past its end): it fires at once, a first firing.
			t.emitted++
			emit(o.result(t, i, false))
		case o.EveryRecords > 0 && t.n[i]%o.EveryRecords == 0:
			if t.dirty != nil {
				t.dirty[i] = false
			}
			r := o.result(t, i, false)
			r.Early = true
			emit(r)
		case t.dirty != nil:
			t.dirty[i] = true
		}
	}
	if added {
		return Added
	}
	return Late
}

// addKey indexes a new key (hash h) without windows yet.
func (o *Operator) addKey(key []byte, h uint64) *keyState {
	ks := newKeyState(key, h)
	ks.refs = ks.refIn[:0]
	o.keys.insert(ks)
	return ks
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

// entry returns the table and entry of ks's window w (the j-th window of
// the record), opening it if the key has none there yet.
func (o *Operator) entry(ks *keyState, j int, w Window) (*table, int) {
	t := o.table(j, w)
	for _, r := range ks.refs {
		if r.end == w.End {
			return t, int(r.idx)
		}
	}
	// A new window of the key: drop its stale references first.
	refs := ks.refs[:0]
	for _, r := range ks.refs {
		if r.end-1+o.Lateness > o.wm || o.wm == NoWatermark {
			refs = append(refs, r)
		}
	}
	i := t.push(ks.key, o)
	ks.refs = append(refs, winRef{end: w.End, idx: int32(i)})
	ks.last = max(ks.last, w.End)
	o.open++
	// An entry opened in a table that has fired (a late record within the
	// lateness) fires at once in AddLooked; during a cut-short Advance of
	// this table, the resumed loop reaches it.
	return t, i
}

// table returns the table of window w, the j-th window of the record,
// creating it when none is live.
func (o *Operator) table(j int, w Window) *table {
	if j < len(o.cache) {
		if t := o.cache[j]; t != nil && t.w.End == w.End {
			return t
		}
	}
	t := o.byEnd[w.End]
	if t == nil {
		if n := len(o.free); n > 0 {
			t = o.free[n-1]
			o.free = o.free[:n-1]
		} else {
			t = &table{}
		}
		t.w = w
		o.byEnd[w.End] = t
		heap.Push(&o.ends, w.End)
	}
	if j < len(o.cache) {
		o.cache[j] = t
	}
	return t
}

// push appends an entry for key with empty accumulators.
func (t *table) push(key string, o *Operator) int {
	i := len(t.n)
	t.keyOff = append(t.keyOff, uint32(len(t.arena)))
	t.arena = append(t.arena, key...)
	t.n = append(t.n, 0)
	if f := o.Fields; f > 0 {
		if o.Need&(NeedMoments|NeedMinMax) != 0 {
			t.m = append(t.m, make([]Moments, f)...)
		} else {
			t.s = append(t.s, make([]sumAcc, f)...)
		}
		if o.Need&NeedFirstLast != 0 {
			t.fl = append(t.fl, make([]FirstLast, f)...)
		}
		if o.Sketch != nil {
			for k := range f {
				t.sk = append(t.sk, newSketches(o.Sketch[k]))
			}
		}
	}
	if o.Touch != nil {
		// Reuse the box a dropped table left in this place, emptied.
		if n := len(t.box); n < cap(t.box) && t.box[:n+1][n] != nil {
			t.box = t.box[:n+1]
			b := t.box[n]
			b.Acc, b.Err, b.Tag = b.Acc[:0], "", 0
		} else {
			t.box = append(t.box, &AccBox{})
		}
	}
	if o.EveryMs > 0 {
		t.dirty = append(t.dirty, false)
	}
	return i
}

// reset empties t for reuse, keeping its arrays and its AccBoxes (emptied
// when reused, not now: results emitted by the Advance that dropped the
// table may still refer to them).
func (t *table) reset() {
	clear(t.sk)
	*t = table{keyOff: t.keyOff[:0], arena: t.arena[:0], n: t.n[:0], m: t.m[:0], s: t.s[:0],
		fl: t.fl[:0], sk: t.sk[:0], box: t.box[:0], dirty: t.dirty[:0]}
}

func (o *Operator) fold(t *table, i int, ts int64, vals []float64, present uint64) {
	t.n[i]++
	f := o.Fields
	if f == 0 {
		return
	}
	if o.Need&(NeedMoments|NeedMinMax) == 0 {
		ss := t.s[i*f : (i+1)*f]
		for k := range ss {
			if present&(1<<k) != 0 {
				s := &ss[k]
				s.n++
				s.sum, s.c = neumaier(s.sum, s.c, vals[k])
			}
		}
	} else {
		ms := t.m[i*f : (i+1)*f]
		for k := range ms {
			if present&(1<<k) == 0 {
				continue
			}
			if o.Need&NeedMoments != 0 {
				ms[k].Add(vals[k])
			} else {
				ms[k].addMinMax(vals[k])
			}
		}
	}
	if o.Need&NeedFirstLast != 0 {
		fl := t.fl[i*f : (i+1)*f]
		for k := range fl {
			if present&(1<<k) != 0 {
				fl[k].Add(ts, vals[k])
			}
		}
	}
	if o.Sketch != nil {
		foldSketches(t.sk[i*f:(i+1)*f], vals, present, o.Hashes, o.Hashed)
	}
}

func (o *Operator) result(t *table, i int, update bool) *Result {
	r := &o.res
	f := o.Fields
	r.Key, r.Window, r.N, r.Update, r.Early, r.Box = t.key(i), t.w, t.n[i], update, false, nil
	if t.box != nil {
		r.Box = t.box[i]
	}
	if len(t.m) > 0 {
		r.M = t.m[i*f : (i+1)*f]
	} else {
		r.M = o.mbuf[:f]
		for k := range r.M {
			s := t.s[i*f+k]
			r.M[k] = Moments{N: s.n, Sum: s.sum, c: s.c}
		}
	}
	r.FL, r.SK = nil, nil
	if o.Need&NeedFirstLast != 0 {
		r.FL = t.fl[i*f : (i+1)*f]
	}
	if o.Sketch != nil {
		r.SK = t.sk[i*f : (i+1)*f]
	}
	return r
}

// dropTable frees the table of end: its windows are past cleanup.
func (o *Operator) dropTable(t *table) {
	delete(o.byEnd, t.w.End)
	o.open -= t.len()
	for j := range o.cache {
		if o.cache[j] == t {
			o.cache[j] = nil
		}
	}
	if len(o.free) < 16 {
		t.reset()
		o.free = append(o.free, t)
	}
}

// sweep drops the keys that have had no open window for Retain (in event
// time), at most once per Retain and only when at least 4096 keys, and a
// quarter of them, are idle; so memory follows the keys in use, not history, while a key that comes back
// regularly keeps its state (no map write, no new string). A key's last
// window is past cleanup at end - 1 + L: that is when it became idle.
func (o *Operator) sweep() {
	// Keys with a window in a live table are at most o.open, so at least
	// keys.n - o.open are idle: sweep (a pass over every key) only when
	// that is a good share of them.
	if idle := o.keys.n - o.open; idle < 4096 || idle < o.keys.n/4 || o.wm-o.swept < o.Retain {
		return
	}
	o.keys.retain(func(ks *keyState) bool { return ks.last-1+o.Lateness+o.Retain > o.wm })
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
// same watermark, before adding records, to go on.
func (o *Operator) AdvanceN(wm int64, max int, emit func(*Result)) (done bool) {
	o.init()
	if wm < o.wm || wm == o.wm && o.resume == nil {
		return true
	}
	if o.EveryMs > 0 && o.resume == nil && o.wm != NoWatermark && FloorDiv(wm, o.EveryMs) > FloorDiv(o.wm, o.EveryMs) {
		o.early(wm, emit)
	}
	o.wm = wm
	n := 0
	for {
		var t *table
		if t = o.resume; t != nil {
			o.resume = nil
		} else if o.ends.Len() > 0 && o.ends[0]-1 <= wm {
			t = o.byEnd[heap.Pop(&o.ends).(int64)]
		} else {
			break
		}
		for i := t.emitted; i < t.len(); i++ {
			if max > 0 && n == max {
				o.resume = t // resumed at t.emitted
				return false
			}
			t.emitted = i + 1
			emit(o.result(t, i, false))
			n++
		}
		if !t.fired {
			t.fired = true
			heap.Push(&o.cleans, t.w.End)
		}
	}
	for o.cleans.Len() > 0 && o.cleans[0]-1+o.Lateness <= wm {
		end := heap.Pop(&o.cleans).(int64)
		o.dropTable(o.byEnd[end])
	}
	o.sweep()
	return true
}

// early emits an early result for every open window that gained records
// since its last result and does not fire at wm, in order of window end,
// then in the order the windows opened.
func (o *Operator) early(wm int64, emit func(*Result)) {
	ends := make([]int64, 0, len(o.byEnd))
	for e, t := range o.byEnd {
		if e-1 > wm && t.emitted < t.len() {
			ends = append(ends, e)
		}
	}
	slices.Sort(ends)
	for _, e := range ends {
		t := o.byEnd[e]
		for i := t.emitted; i < t.len(); i++ {
			if !t.dirty[i] {
				continue
			}
			t.dirty[i] = false
			r := o.result(t, i, false)
			r.Early = true
			emit(r)
		}
	}
}

// Open is the number of (key, window) states held.
func (o *Operator) Open() int { return o.open }

// Keys is the number of keys with at least one open window (it walks the
// key index: for tests and metrics, not the hot path).
func (o *Operator) Keys() int {
	n := 0
	o.keys.each(func(ks *keyState) {
		if ks.last-1+o.Lateness > o.wm || o.wm == NoWatermark {
			n++
		}
	})
	return n
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
