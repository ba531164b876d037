package window

// keyIndex finds a key's state by the maphash of the key: an open-addressing
// table with linear probing, a power-of-two size and at most half full. A
// slot holds the hash beside the state, so a probe compares hashes without
// loading the state, and only a matching hash loads it to compare the key.
// Removal shifts later entries of the probe run back (no tombstones), so a
// lookup's cost does not grow with the keys that came and went.
//
// It replaces a Go map keyed by the hash, which hashed the hash again and
// needed a collision chain in every state.
type keyIndex struct {
	slots []keySlot
	n     int
	mask  uint64
}

type keySlot struct {
	h  uint64
	ks *keyState // nil: empty
}

// find returns the state of key (whose hash is h), or nil.
func (x *keyIndex) find(h uint64, key []byte) *keyState {
	if x.n == 0 {
		return nil
	}
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if s.ks == nil {
			return nil
		}
		if s.h == h && s.ks.key == string(key) {
			return s.ks
		}
	}
}

// insert adds ks, which is not in the index, under ks.hash.
func (x *keyIndex) insert(ks *keyState) {
	if 2*(x.n+1) > len(x.slots) {
		x.resize(max(16, 2*len(x.slots)))
	}
	x.put(ks)
	x.n++
}

func (x *keyIndex) put(ks *keyState) {
	i := ks.hash & x.mask
	for x.slots[i].ks != nil {
		i = (i + 1) & x.mask
	}
	x.slots[i] = keySlot{h: ks.hash, ks: ks}
}

func (x *keyIndex) resize(size int) {
	old := x.slots
	x.slots = make([]keySlot, size)
	x.mask = uint64(size - 1)
	for _, s := range old {
		if s.ks != nil {
			x.put(s.ks)
		}
	}
}

// remove takes ks out of the index (if there).
func (x *keyIndex) remove(ks *keyState) {
	if x.n == 0 {
		return
	}
	i := ks.hash & x.mask
	for x.slots[i].ks != ks {
		if x.slots[i].ks == nil {
			return
		}
		i = (i + 1) & x.mask
	}
	x.n--
	// Backward shift: move up each later entry of the run whose home slot
	// is not in (i, j], so every entry stays reachable from its home.
	for j := i; ; {
		j = (j + 1) & x.mask
		s := x.slots[j]
		if s.ks == nil {
			x.slots[i] = keySlot{}
			return
		}
		home := s.h & x.mask
		if i <= j && (i < home && home <= j) || i > j && (i < home || home <= j) {
			continue
		}
		x.slots[i] = s
		i = j
	}
}

// retain keeps the states for which keep returns true and drops the rest
// (one pass; no allocation when it drops none), shrinking the table when
// it is mostly empty.
func (x *keyIndex) retain(keep func(*keyState) bool) {
	var drop []*keyState
	for _, s := range x.slots {
		if s.ks != nil && !keep(s.ks) {
			drop = append(drop, s.ks)
		}
	}
	if len(drop) == 0 {
		return
	}
	n := x.n - len(drop)
	if size := len(x.slots); len(drop) < n || 8*n > size {
		for _, ks := range drop {
			x.remove(ks)
		}
		return
	}
	// Most keys go: rebuild at a smaller size.
	size := 16
	for 2*n > size {
		size *= 2
	}
	old := x.slots
	x.slots, x.mask, x.n = make([]keySlot, size), uint64(size-1), n
	for _, s := range old {
		if s.ks != nil && keep(s.ks) {
			x.put(s.ks)
		}
	}
}

// each calls f for every state in the index.
func (x *keyIndex) each(f func(*keyState)) {
	for _, s := range x.slots {
		if s.ks != nil {
			f(s.ks)
		}
	}
}
