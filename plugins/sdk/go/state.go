package wsp

// Keyed state and timers (ABI.md, "Keyed state and timers").
//
// A plugin that calls UseState runs as a keyed step: every record reaching
// it has a key, records of one key always reach the same instance in
// order, and the host hands over, with each batch, the state of the
// batch's keys. r.State() is that state; its setters change it at once (a
// later record of the same key in the batch sees the change) and tell the
// host, which keeps the change only if the whole call succeeds. So a
// failed batch (a panic, a time-out) changes no state.
//
// A State is valid only during the call that produced it, like a Record;
// the slices its getters return likewise. Setters copy what they are given.

const (
	featureState  = 1 << 3
	featureTimers = 1 << 4

	kindState      = 3
	batchFlagState = 1
	noValue        = 0xFFFFFFFF

	opValueSet        = 1
	opValueClear      = 2
	opMapPut          = 3
	opMapDelete       = 4
	opMapClear        = 5
	opListAppend      = 6
	opListClear       = 7
	opTimerSet        = 8
	opTimerDelete     = 9
	opProcTimerSet    = 10
	opProcTimerDelete = 11
	opClear           = 12
)

// UseState declares that the plugin keeps keyed state, and the version of
// its state layout. The host stores the version with the state, and a run
// refuses stored state of another version unless it is told to reset that
// step's state (`wsp run --reset-state STEP`): raise the version whenever
// the bytes the plugin stores change meaning. Call it from init().
func UseState(version uint32) {
	checkLoad("UseState", false)
	reg.state, reg.stateVersion = true, version
}

// OnTimer registers the timer function (the wsp_on_timer export): the host
// calls it for every timer that fires, in time order, with the timer's key
// and time and the key's state. It emits, changes state and sets timers as
// Process does (for output records, &t.Record is the input they derive
// from: its key is the timer's key, its time the timer's time). Requires
// UseState. Call it from init().
func OnTimer(fn func(t *Timer, out *Output)) {
	checkLoad("OnTimer", fn == nil)
	if reg.onTimer != nil {
		panic("wsp: OnTimer registered twice")
	}
	reg.onTimer = fn
}

// Timer is a timer that fired: Key() and Time() are its key and time,
// State() the key's state.
type Timer struct {
	Record
}

// ProcessingTime reports whether the timer follows the processing clock
// (SetProcTimer) rather than the watermark (SetTimer).
func (t *Timer) ProcessingTime() bool { return le.Uint16(t.head()[4:]) == 1 }

// State is the keyed state of one key: a value, a map and a list, each
// empty until set.
type State struct {
	idx      int // the record the next change is reported for
	key      []byte
	val      []byte
	hasVal   bool
	m        []stateKV
	list     [][]byte
	mapOwned bool // m was copied out of the batch (it can grow)
}

type stateKV struct{ k, v []byte }

// the state of the running call's keys
var (
	states    []State
	stateKVs  []stateKV
	stateList [][]byte
	slots     []byte // u32 per record: its entry in states
	// stateArena holds the bytes setters copy during a call; it is reused
	// from call to call (a new array only when it fills), because an
	// allocation per change costs much in Go's Wasm code.
	stateArena []byte
)

// keepBytes copies b into the call's arena.
func keepBytes(b []byte) []byte {
	if cap(stateArena)-len(stateArena) < len(b) {
		stateArena = make([]byte, 0, max(64<<10, 2*cap(stateArena), 2*len(b)))
	}
	n := len(stateArena)
	stateArena = append(stateArena, b...)
	return stateArena[n:len(stateArena):len(stateArena)]
}

// State returns the state of the record's key. It panics when the plugin
// did not call UseState.
func (r *Record) State() *State {
	if slots == nil {
		panic("wsp: Record.State without UseState (or outside a keyed step)")
	}
	s := &states[le.Uint32(slots[4*r.index:])]
	s.idx = r.index
	return s
}

// Key is the key the state belongs to.
func (s *State) Key() []byte { return s.key }

// Value returns the key's value; ok is false when it has none (or it
// expired).
func (s *State) Value() (v []byte, ok bool) { return s.val, s.hasVal }

// SetValue sets the key's value.
func (s *State) SetValue(v []byte) { s.SetValueTTL(v, 0) }

// SetValueTTL sets the key's value, which expires ttlMs milliseconds of
// processing time later (0: never). Each set starts the time again.
func (s *State) SetValueTTL(v []byte, ttlMs int64) {
	s.val, s.hasVal = keepBytes(v), true
	out.stateOp(s.idx, opValueSet, ttlMs, nil, v)
}

// ClearValue removes the key's value.
func (s *State) ClearValue() {
	s.val, s.hasVal = nil, false
	out.stateOp(s.idx, opValueClear, 0, nil, nil)
}

// MapGet returns the map entry k.
func (s *State) MapGet(k []byte) (v []byte, ok bool) {
	for i := range s.m {
		if string(s.m[i].k) == string(k) {
			return s.m[i].v, true
		}
	}
	return nil, false
}

// MapLen is the number of map entries.
func (s *State) MapLen() int { return len(s.m) }

// MapEach calls fn for each map entry (in no set order) until it returns
// false. fn must not change the map.
func (s *State) MapEach(fn func(k, v []byte) bool) {
	for i := range s.m {
		if !fn(s.m[i].k, s.m[i].v) {
			return
		}
	}
}

// MapPut sets map entry k to v.
func (s *State) MapPut(k, v []byte) { s.MapPutTTL(k, v, 0) }

// MapPutTTL sets map entry k to v; the entry expires ttlMs milliseconds of
// processing time later (0: never).
func (s *State) MapPutTTL(k, v []byte, ttlMs int64) {
	s.own()
	kv := stateKV{keepBytes(k), keepBytes(v)}
	replaced := false
	for i := range s.m {
		if string(s.m[i].k) == string(k) {
			s.m[i], replaced = kv, true
			break
		}
	}
	if !replaced {
		s.m = append(s.m, kv)
	}
	out.stateOp(s.idx, opMapPut, ttlMs, k, v)
}

// MapDelete removes map entry k.
func (s *State) MapDelete(k []byte) {
	s.own()
	for i := range s.m {
		if string(s.m[i].k) == string(k) {
			s.m = append(s.m[:i], s.m[i+1:]...)
			break
		}
	}
	out.stateOp(s.idx, opMapDelete, 0, k, nil)
}

// MapClear removes every map entry.
func (s *State) MapClear() {
	s.m, s.mapOwned = nil, true
	out.stateOp(s.idx, opMapClear, 0, nil, nil)
}

// own gives the state a map of its own before a change (the one parsed
// from the batch shares an array with the other keys').
func (s *State) own() {
	if !s.mapOwned {
		s.m = append([]stateKV(nil), s.m...)
		s.mapOwned = true
	}
}

// List returns the list's items, oldest first. Do not change the slice.
func (s *State) List() [][]byte { return s.list }

// ListAppend adds v at the end of the list.
func (s *State) ListAppend(v []byte) { s.ListAppendTTL(v, 0) }

// ListAppendTTL adds v at the end of the list; the item expires ttlMs
// milliseconds of processing time later (0: never).
func (s *State) ListAppendTTL(v []byte, ttlMs int64) {
	s.list = append(s.list[:len(s.list):len(s.list)], keepBytes(v))
	out.stateOp(s.idx, opListAppend, ttlMs, nil, v)
}

// ListClear empties the list.
func (s *State) ListClear() {
	s.list = nil
	out.stateOp(s.idx, opListClear, 0, nil, nil)
}

// Clear removes the value, the map and the list (not the timers).
func (s *State) Clear() {
	s.val, s.hasVal, s.m, s.mapOwned, s.list = nil, false, nil, true, nil
	out.stateOp(s.idx, opClear, 0, nil, nil)
}

// SetTimer asks for OnTimer to be called for this key once the watermark
// reaches ms (event time). A key has at most one timer per time.
func (s *State) SetTimer(ms int64) { out.stateOp(s.idx, opTimerSet, ms, nil, nil) }

// DeleteTimer removes the key's event-time timer at ms, if any.
func (s *State) DeleteTimer(ms int64) { out.stateOp(s.idx, opTimerDelete, ms, nil, nil) }

// SetProcTimer asks for OnTimer to be called for this key once the
// processing clock reaches ms (Unix milliseconds).
func (s *State) SetProcTimer(ms int64) { out.stateOp(s.idx, opProcTimerSet, ms, nil, nil) }

// DeleteProcTimer removes the key's processing-time timer at ms, if any.
func (s *State) DeleteProcTimer(ms int64) { out.stateOp(s.idx, opProcTimerDelete, ms, nil, nil) }

// stateOp writes a state entry for input index.
func (o *Output) stateOp(index int, op uint16, t int64, k, v []byte) {
	b := o.reserve(recordHeaderSize + len(k) + len(v))
	putHeader(b, uint32(index), op, kindState, 0, t, uint32(len(k)), uint32(len(v)), 0)
	copy(b[recordHeaderSize:], k)
	copy(b[recordHeaderSize+len(k):], v)
}

// cutState parses the state section at the end of data (when the batch
// header says there is one) and returns the records part.
func cutState(data []byte, count int) []byte {
	slots = nil
	stateArena = stateArena[:0] // the last call's views are gone
	if le.Uint32(data[4:])&batchFlagState == 0 {
		return data
	}
	if len(data) < batchHeaderSize+4 {
		panic(errMalformedBatch)
	}
	size := int(le.Uint32(data[len(data)-4:]))
	start := len(data) - 4 - size
	if size < 4+4*count || start < batchHeaderSize {
		panic(errMalformedBatch)
	}
	sec := data[start : len(data)-4]
	keys := int(le.Uint32(sec))
	if keys > len(sec)/16 {
		panic(errMalformedBatch)
	}
	if cap(states) < keys {
		states = make([]State, keys)
	}
	states = states[:keys]
	stateKVs, stateList = stateKVs[:0], stateList[:0]
	rd := secReader{b: sec, p: 4, end: len(sec) - 4*count}
	for i := range states {
		s := &states[i]
		*s = State{key: rd.bytes()}
		if rd.end-rd.p >= 4 && le.Uint32(sec[rd.p:]) == noValue {
			rd.p += 4
		} else {
			s.val, s.hasVal = rd.bytes(), true
		}
		m0 := len(stateKVs)
		for range rd.count() {
			k := rd.bytes()
			stateKVs = append(stateKVs, stateKV{k, rd.bytes()})
		}
		l0 := len(stateList)
		for range rd.count() {
			stateList = append(stateList, rd.bytes())
		}
		// Views stay right if a later key's entries move the arenas: the
		// old arrays keep their contents.
		s.m = stateKVs[m0:len(stateKVs):len(stateKVs)]
		s.list = stateList[l0:len(stateList):len(stateList)]
	}
	p, end := rd.p, rd.end
	if p != end {
		panic(errMalformedBatch)
	}
	slots = sec[end:]
	for i := 0; i < count; i++ {
		if int(le.Uint32(slots[4*i:])) >= keys {
			panic(errMalformedBatch)
		}
	}
	return data[:start]
}

// secReader reads the state section (methods, not closures: a closure call
// costs more in Go's Wasm code).
type secReader struct {
	b      []byte
	p, end int
}

// bytes reads len u32 | bytes.
func (r *secReader) bytes() []byte {
	if r.end-r.p < 4 {
		panic(errMalformedBatch)
	}
	n := int(le.Uint32(r.b[r.p:]))
	r.p += 4
	if n > r.end-r.p {
		panic(errMalformedBatch)
	}
	b := r.b[r.p : r.p+n : r.p+n]
	r.p += n
	return b
}

// count reads a u32 count of items of at least 4 bytes each.
func (r *secReader) count() int {
	if r.end-r.p < 4 {
		panic(errMalformedBatch)
	}
	n := int(le.Uint32(r.b[r.p:]))
	r.p += 4
	if n > (r.end-r.p)/4 {
		panic(errMalformedBatch)
	}
	return n
}
