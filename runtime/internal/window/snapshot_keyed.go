package window

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Snapshots of the session and count (global) operators, format version 1,
// in the codec of snapshot.go:
//
//	session snapshot = magic "WSPS" | version | settings | watermark | keys
//	keys     = count | (key (len | bytes) | sessions | session*)*
//	session  = start | end | n | fired (byte) | updated (byte) | accumulators (as the aligned
//	           operator's entry, Moments always) | box
//
//	count snapshot = magic "WSPC" | version | settings | windows
//	windows  = count | (key | n | start | end | accumulators | box)*   (in opening order)
//
// Keys are written in sorted order and a key's sessions in opening order,
// so a snapshot of the same state is the same bytes, and a restore keeps
// the order in which results come out.

const (
	sessionMagic = "WSPS"
	countMagic   = "WSPC"
)

func putSessionSettings(e *enc, fields int, need Need, sketch []uint8, touch bool, lateness, gap int64) {
	putSettings(e, fields, need, sketch, touch, lateness)
	e.varint(gap)
}

// putAccs writes one window's accumulators (Moments per field, first/last
// and sketches when kept) and its AccBox.
func putAccs(e *enc, need Need, hasSketch bool, m []Moments, fl []FirstLast, sk []*Sketches, box *AccBox, touch bool) {
	for k := range m {
		putMoments(e, &m[k])
	}
	putExtras(e, need, hasSketch, fl, sk, box, touch)
}

// putExtras writes what every operator keeps beside its counts and sums:
// first/last per field, sketches per field, the AccBox.
func putExtras(e *enc, need Need, hasSketch bool, fl []FirstLast, sk []*Sketches, box *AccBox, touch bool) {
	if need&NeedFirstLast != 0 {
		for k := range fl {
			f := &fl[k]
			e.bool(f.Set)
			e.varint(f.FirstTime)
			e.varint(f.LastTime)
			e.float(f.First)
			e.float(f.Last)
		}
	}
	if hasSketch {
		for k := range sk {
			putSketches(e, sk[k])
		}
	}
	if touch {
		e.bytes(box.Acc)
		e.bytes([]byte(box.Err))
	}
}

// getAccs reads what putAccs wrote into m, fl and sk (allocated by the
// caller, len = fields) and returns the box.
func getAccs(d *dec, need Need, hasSketch bool, m []Moments, fl []FirstLast, sk []*Sketches, touch bool) *AccBox {
	for k := range m {
		m[k] = getMoments(d)
	}
	return getExtras(d, need, hasSketch, fl, sk, touch)
}

// getExtras reads what putExtras wrote into fl and sk (len = fields when
// kept) and returns the box (nil without touch).
func getExtras(d *dec, need Need, hasSketch bool, fl []FirstLast, sk []*Sketches, touch bool) *AccBox {
	if need&NeedFirstLast != 0 {
		for k := range fl {
			fl[k] = FirstLast{Set: d.bool(), FirstTime: d.varint(), LastTime: d.varint(), First: d.float(), Last: d.float()}
		}
	}
	if hasSketch {
		for k := range sk {
			sk[k] = getSketches(d)
		}
	}
	if !touch {
		return nil
	}
	return &AccBox{Acc: append([]byte(nil), d.bytes()...), Err: string(d.bytes())}
}

// checkHeader reads magic, version and settings (as put writes them).
func checkHeader(d *dec, magic, what string, put func(*enc)) error {
	if len(d.b) < len(magic) || string(d.b[:len(magic)]) != magic {
		return fmt.Errorf("window: restore: not a snapshot of a %s window", what)
	}
	d.b = d.b[len(magic):]
	if v := d.uvarint(); v != snapshotVersion {
		return fmt.Errorf("window: restore: snapshot format version %d; this wsp reads version %d", v, snapshotVersion)
	}
	var want enc
	put(&want)
	if len(d.b) < len(want.b) || string(d.b[:len(want.b)]) != string(want.b) {
		return errors.New("window: restore: the snapshot was taken with other window settings (aggregates, lateness, gap or aggregate module); reset the state to change them")
	}
	d.b = d.b[len(want.b):]
	return nil
}

func endOf(d *dec) error {
	if d.err != nil {
		return fmt.Errorf("window: restore: %w", d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("window: restore: %d bytes after the snapshot", len(d.b))
	}
	return nil
}

func (o *SessionOperator) putSettings(e *enc) {
	putSessionSettings(e, o.Fields, o.Need, o.Sketch, o.Touch != nil, o.Lateness, o.Gap)
}

// Snapshot appends the operator's state to dst (see Operator.Snapshot).
func (o *SessionOperator) Snapshot(dst []byte) ([]byte, error) {
	o.init()
	if o.resuming {
		return dst, ErrSnapshotBusy
	}
	e := enc{b: append(dst, sessionMagic...)}
	e.uvarint(snapshotVersion)
	o.putSettings(&e)
	e.varint(o.wm)
	keys := make([]*sessKey, 0, len(o.keys))
	for _, k := range o.keys {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b *sessKey) int { return cmp.Compare(a.key, b.key) })
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.bytes([]byte(k.key))
		ss := slices.Clone(k.sess)
		slices.SortFunc(ss, func(a, b *session) int { return cmp.Compare(a.id, b.id) })
		e.uvarint(uint64(len(ss)))
		for _, s := range ss {
			e.varint(s.w.Start)
			e.varint(s.w.End)
			e.varint(s.n)
			e.bool(s.fired)
			e.bool(s.updated)
			putAccs(&e, o.Need, o.Sketch != nil, s.m, s.fl, s.sk, s.box, o.Touch != nil)
		}
	}
	return e.b, nil
}

// Restore adds a snapshot's sessions for the keys keep accepts (nil: all);
// see Operator.Restore.
func (o *SessionOperator) Restore(snap []byte, keep func(key []byte) bool) error {
	o.init()
	d := dec{b: snap}
	if err := checkHeader(&d, sessionMagic, "session", o.putSettings); err != nil {
		return err
	}
	if wm := d.varint(); wm > o.wm {
		o.wm = wm
	}
	for range d.count(2) {
		key := d.bytes()
		n := d.count(2)
		var k *sessKey
		if keep == nil || keep(key) {
			if k = o.keys[string(key)]; k == nil {
				k = &sessKey{key: string(key)}
				o.keys[k.key] = k
			}
		}
		for range n {
			w := Window{Start: d.varint(), End: d.varint()}
			s := o.newSession(w)
			s.n, s.fired, s.updated = d.varint(), d.bool(), d.bool()
			box := getAccs(&d, o.Need, o.Sketch != nil, s.m, s.fl, s.sk, o.Touch != nil)
			if box != nil {
				s.box = box
			}
			if d.err != nil || k == nil {
				o.release(s)
				continue
			}
			k.sess = append(k.sess, s)
			if s.fired {
				o.cleans.push(sessTimer{at: s.w.End - 1 + o.Lateness, k: k, id: s.id})
			} else {
				o.fires.push(sessTimer{at: s.w.End - 1, k: k, id: s.id})
				s.timer = true
			}
		}
		if k != nil && len(k.sess) == 0 {
			delete(o.keys, k.key)
		}
	}
	return endOf(&d)
}

func (o *CountOperator) putSettings(e *enc) {
	putSessionSettings(e, o.Fields, o.Need, o.Sketch, o.Touch != nil, 0, o.Count)
}

// Snapshot appends the operator's state to dst (see Operator.Snapshot).
func (o *CountOperator) Snapshot(dst []byte) ([]byte, error) {
	e := enc{b: append(dst, countMagic...)}
	e.uvarint(snapshotVersion)
	o.putSettings(&e)
	live := 0
	for _, s := range o.order {
		if !s.fired {
			live++
		}
	}
	e.uvarint(uint64(live))
	for _, s := range o.order {
		if s.fired {
			continue
		}
		e.bytes([]byte(s.key))
		e.varint(s.n)
		e.varint(s.start)
		e.varint(s.end)
		putAccs(&e, o.Need, o.Sketch != nil, s.m, s.fl, s.sk, s.box, o.Touch != nil)
	}
	return e.b, nil
}

// Restore adds a snapshot's windows in progress for the keys keep accepts
// (nil: all); see Operator.Restore.
func (o *CountOperator) Restore(snap []byte, keep func(key []byte) bool) error {
	d := dec{b: snap}
	if err := checkHeader(&d, countMagic, "global (count)", o.putSettings); err != nil {
		return err
	}
	if o.keys == nil {
		o.keys = map[string]*countState{}
	}
	for range d.count(2) {
		key := d.bytes()
		s := &countState{key: string(key), n: d.varint(), start: d.varint(), end: d.varint(), m: make([]Moments, o.Fields)}
		if o.Need&NeedFirstLast != 0 {
			s.fl = make([]FirstLast, o.Fields)
		}
		if o.Sketch != nil {
			s.sk = make([]*Sketches, o.Fields)
		}
		s.box = getAccs(&d, o.Need, o.Sketch != nil, s.m, s.fl, s.sk, o.Touch != nil)
		if d.err != nil || keep != nil && !keep(key) {
			continue
		}
		if o.keys[s.key] != nil {
			return fmt.Errorf("window: restore: key %q has a window in two snapshots", s.key)
		}
		o.keys[s.key] = s
		o.order = append(o.order, s)
	}
	return endOf(&d)
}
