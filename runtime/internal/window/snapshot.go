package window

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Snapshots of operator state (issue "state"; DESIGN.md, "Checkpoints and
// recovery: the plan"). An operator writes its whole state as bytes and
// reads it back, possibly from several snapshots (the workers of an earlier
// run) and keeping only the keys of some key groups (this worker's range),
// so state moves between runs with different worker counts.
//
// The aligned operator's snapshot, format version 1, all integers varints
// unless said otherwise:
//
//	snapshot = magic "WSPA" | version | settings | watermark | tables
//	settings = fields | need (byte) | sketch kind per field (bytes, or 0 fields) | touch (byte) | lateness
//	tables   = count | table*
//	table    = start | end | fired (byte) | entries | entry*
//	entry    = key (len | bytes) | n | per field: accumulator | per field: first/last | per field: sketches | box
//	accumulator = Moments (7 values) or, without NeedMoments and NeedMinMax, count and sum (3)
//	box      = (with touch) acc (len | bytes) | err (len | bytes)
//
// Floats are their IEEE bits as 8 little-endian bytes. A snapshot is taken
// between batches, with no Advance cut short: then every table is either
// fired in full or not at all, so a table carries one fired flag. Early
// results' "records since the last result" marks are not kept: a restored
// window gives its next early result at the next interval or count.
//
// The format is versioned: a later wsp reads version 1, or says it cannot.

const (
	alignedMagic    = "WSPA"
	snapshotVersion = 1
)

// ErrSnapshotBusy is returned by Snapshot while an AdvanceN is cut short:
// state is consistent only between batches.
var ErrSnapshotBusy = errors.New("window: snapshot during an unfinished advance")

// Snapshot appends the operator's state to dst.
func (o *Operator) Snapshot(dst []byte) ([]byte, error) {
	tabs, err := o.liveTables()
	if err != nil {
		return dst, err
	}
	return o.encode(dst, o.wm, tabs), nil
}

// SnapshotLater is Snapshot in two steps, to keep the worker's pause short:
// it copies the state's arrays now (a memory copy per table) and returns a
// function, safe to run on another goroutine while the operator goes on,
// that encodes the copy. Windows with sketches or a Wasm aggregate (state
// behind pointers) are encoded at once instead.
func (o *Operator) SnapshotLater() (func() ([]byte, error), error) {
	tabs, err := o.liveTables()
	if err != nil {
		return nil, err
	}
	wm := o.wm
	if o.Sketch != nil || o.Touch != nil {
		b := o.encode(nil, wm, tabs)
		return func() ([]byte, error) { return b, nil }, nil
	}
	// The copies and the encoded bytes reuse the last snapshot's arrays:
	// checkpoints are taken one at a time, so the last encode (and the
	// write of its bytes) is over before the next SnapshotLater. Fresh
	// arrays each time would be garbage of the state's size per
	// checkpoint, and the collector's work on a large heap costs more
	// than the copy.
	if o.snap == nil {
		o.snap = &snapScratch{}
	}
	sc := o.snap
	for len(sc.tabs) < len(tabs) {
		sc.tabs = append(sc.tabs, &table{})
	}
	frozen := sc.tabs[:len(tabs)]
	for i, t := range tabs {
		f := frozen[i]
		f.w, f.emitted = t.w, t.emitted
		f.keyOff, f.arena = append(f.keyOff[:0], t.keyOff...), append(f.arena[:0], t.arena...)
		f.n, f.m, f.s, f.fl = append(f.n[:0], t.n...), append(f.m[:0], t.m...), append(f.s[:0], t.s...), append(f.fl[:0], t.fl...)
	}
	cp := *o // the settings only: encode reads no live state
	return func() ([]byte, error) {
		sc.out = cp.encode(sc.out[:0], wm, frozen)
		return sc.out, nil
	}, nil
}

// snapScratch is what SnapshotLater reuses: the tables' copies and the
// encoded bytes.
type snapScratch struct {
	tabs []*table
	out  []byte
}

// liveTables returns the live tables by end, checking they can be written.
func (o *Operator) liveTables() ([]*table, error) {
	o.init()
	if o.resume != nil {
		return nil, ErrSnapshotBusy
	}
	ends := make([]int64, 0, len(o.byEnd))
	for end := range o.byEnd {
		ends = append(ends, end)
	}
	slices.Sort(ends)
	tabs := make([]*table, 0, len(ends))
	for _, end := range ends {
		t := o.byEnd[end]
		if t.emitted != 0 && t.emitted != t.len() {
			return nil, fmt.Errorf("window: snapshot: window ending %d is half fired", end)
		}
		tabs = append(tabs, t)
	}
	return tabs, nil
}

// encode writes the snapshot of tabs (see the format above).
func (o *Operator) encode(dst []byte, wm int64, tabs []*table) []byte {
	// Room for it all at once (keys, varints of a few bytes, floats).
	est := 256 // (and room for the trailer a step appends: runtime/internal/ops/snapshot.go)
	for _, t := range tabs {
		est += 32 + len(t.arena) + t.len()*(8+o.Fields*26)
	}
	e := enc{b: slices.Grow(dst, est)}
	e.b = append(e.b, alignedMagic...)
	e.uvarint(snapshotVersion)
	o.putSettings(&e)
	e.varint(wm)
	e.uvarint(uint64(len(tabs)))
	f := o.Fields
	for _, t := range tabs {
		e.varint(t.w.Start)
		e.varint(t.w.End)
		e.bool(t.emitted > 0)
		e.uvarint(uint64(t.len()))
		for i := range t.len() {
			e.bytes([]byte(t.key(i)))
			e.varint(t.n[i])
			for k := range f {
				if len(t.m) > 0 {
					putMoments(&e, &t.m[i*f+k])
				} else {
					s := &t.s[i*f+k]
					e.varint(s.n)
					e.float(s.sum)
					e.float(s.c)
				}
			}
			var fl []FirstLast
			var sk []*Sketches
			var box *AccBox
			if len(t.fl) > 0 {
				fl = t.fl[i*f : (i+1)*f]
			}
			if len(t.sk) > 0 {
				sk = t.sk[i*f : (i+1)*f]
			}
			if len(t.box) > 0 {
				box = t.box[i]
			}
			putExtras(&e, o.Need, o.Sketch != nil, fl, sk, box, o.Touch != nil)
		}
	}
	return e.b
}

func (o *Operator) putSettings(e *enc) {
	putSettings(e, o.Fields, o.Need, o.Sketch, o.Touch != nil, o.Lateness)
}

// putSettings writes what a snapshot's state depends on of an operator's
// settings; a restore refuses a snapshot whose settings differ.
func putSettings(e *enc, fields int, need Need, sketch []uint8, touch bool, lateness int64) {
	e.uvarint(uint64(fields))
	e.b = append(e.b, byte(need))
	e.uvarint(uint64(len(sketch)))
	e.b = append(e.b, sketch...)
	e.bool(touch)
	e.varint(lateness)
}

// Restore adds the state of a snapshot to the operator, keeping only the
// keys for which keep returns true (nil: all). Call it before the first
// Add, once per snapshot to merge (for example every worker's of an
// earlier run). The operator's settings must be the snapshot's: a
// different aggregate list, lateness or Wasm aggregate is refused, naming
// the difference. The watermark becomes the largest restored.
func (o *Operator) Restore(snap []byte, keep func(key []byte) bool) error {
	o.init()
	d := dec{b: snap}
	if err := checkHeader(&d, alignedMagic, "tumbling or sliding", o.putSettings); err != nil {
		return err
	}
	wm := d.varint()
	if wm > o.wm {
		o.wm = wm
	}
	f := o.Fields
	var ms []Moments
	var ss []sumAcc
	var fls []FirstLast // per entry, filled by getExtras when kept
	var sks []*Sketches
	if o.Need&NeedFirstLast != 0 {
		fls = make([]FirstLast, f)
	}
	if o.Sketch != nil {
		sks = make([]*Sketches, f)
	}
	for range d.uvarint() {
		w := Window{Start: d.varint(), End: d.varint()}
		fired := d.bool()
		entries := d.uvarint()
		if d.err != nil {
			break
		}
		for range entries {
			key := d.bytes()
			n := d.varint()
			ms, ss = ms[:0], ss[:0]
			for range f {
				if o.Need&(NeedMoments|NeedMinMax) != 0 {
					ms = append(ms, getMoments(&d))
				} else {
					ss = append(ss, sumAcc{n: d.varint(), sum: d.float(), c: d.float()})
				}
			}
			box := getExtras(&d, o.Need, o.Sketch != nil, fls, sks, o.Touch != nil)
			if d.err != nil {
				break
			}
			if keep != nil && !keep(key) {
				continue
			}
			o.restoreEntry(w, fired, key, n, ms, ss, fls, sks, box)
		}
	}
	return endOf(&d)
}

// restoreEntry adds one (key, window) state.
func (o *Operator) restoreEntry(w Window, fired bool, key []byte, n int64, ms []Moments, ss []sumAcc, fls []FirstLast, sks []*Sketches, box *AccBox) {
	l := o.Lookup(key)
	ks := l.ks
	if ks == nil {
		ks = o.addKey(key, l.h)
	}
	t := o.byEnd[w.End]
	if t == nil {
		t = &table{w: w}
		o.byEnd[w.End] = t
		if fired {
			// Fired before the snapshot: not to fire again, but to be
			// cleaned up in time (and updated by late records meanwhile).
			t.fired = true
			heap.Push(&o.cleans, w.End)
		} else {
			heap.Push(&o.ends, w.End)
		}
	}
	i := t.push(ks.key, o)
	if fired {
		t.emitted = t.len()
	}
	ks.refs = append(ks.refs, winRef{end: w.End, idx: int32(i)})
	ks.last = max(ks.last, w.End)
	o.open++
	t.n[i] = n
	f := o.Fields
	if len(ms) > 0 {
		copy(t.m[i*f:], ms)
	}
	if len(ss) > 0 {
		copy(t.s[i*f:], ss)
	}
	if len(fls) > 0 {
		copy(t.fl[i*f:], fls)
	}
	if t.sk != nil {
		for k, s := range sks {
			t.sk[i*f+k] = s
		}
	}
	if box != nil {
		t.box[i].Acc = append(t.box[i].Acc[:0], box.Acc...)
		t.box[i].Err = box.Err
	}
}

func putMoments(e *enc, m *Moments) {
	e.varint(m.N)
	for _, x := range [...]float64{m.Mean, m.M2, m.Sum, m.c, m.Min, m.Max} {
		e.float(x)
	}
}

func getMoments(d *dec) Moments {
	return Moments{N: d.varint(), Mean: d.float(), M2: d.float(), Sum: d.float(), c: d.float(), Min: d.float(), Max: d.float()}
}

// Sketches: a kind byte (0 none, else SketchDistinct|SketchQuantiles), then
// the distinct count's sparse hashes or dense registers, then the
// quantiles' stores.
func putSketches(e *enc, s *Sketches) {
	if s == nil {
		e.b = append(e.b, 0)
		return
	}
	var kind byte
	if s.D != nil {
		kind |= SketchDistinct
	}
	if s.Q != nil {
		kind |= SketchQuantiles
	}
	e.b = append(e.b, kind)
	if d := s.D; d != nil {
		e.bool(d.regs != nil)
		if d.regs != nil {
			e.bytes(d.regs)
		} else {
			e.uvarint(uint64(len(d.hashes)))
			for _, h := range d.hashes {
				e.b = binary.LittleEndian.AppendUint64(e.b, h)
			}
		}
	}
	if q := s.Q; q != nil {
		e.uvarint(q.zeros)
		e.uvarint(q.n)
		for _, st := range []*qstore{&q.pos, &q.neg} {
			e.varint(int64(st.off))
			e.uvarint(uint64(len(st.counts)))
			for _, c := range st.counts {
				e.uvarint(c)
			}
		}
	}
}

func getSketches(d *dec) *Sketches {
	kind := d.byte()
	if kind == 0 {
		return nil
	}
	s := &Sketches{}
	if kind&SketchDistinct != 0 {
		s.D = &Distinct{}
		if d.bool() {
			s.D.regs = append([]uint8(nil), d.bytes()...)
		} else {
			for range d.count(8) {
				s.D.hashes = append(s.D.hashes, d.uint64())
			}
		}
	}
	if kind&SketchQuantiles != 0 {
		s.Q = &Quantiles{zeros: d.uvarint(), n: d.uvarint()}
		for _, st := range []*qstore{&s.Q.pos, &s.Q.neg} {
			st.off = int(d.varint())
			for range d.count(1) {
				st.counts = append(st.counts, d.uvarint())
			}
		}
	}
	return s
}

// enc and dec are the snapshot codec's primitives. dec records the first
// error and returns zero values after it.
type enc struct{ b []byte }

func (e *enc) uvarint(x uint64) { e.b = binary.AppendUvarint(e.b, x) }
func (e *enc) varint(x int64)   { e.b = binary.AppendVarint(e.b, x) }
func (e *enc) float(x float64)  { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(x)) }
func (e *enc) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

type dec struct {
	b   []byte
	err error
}

var errTruncated = errors.New("the snapshot is cut short or corrupt")

func (d *dec) fail() {
	if d.err == nil {
		d.err = errTruncated
	}
	d.b = nil
}

func (d *dec) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *dec) varint() int64 {
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *dec) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	x := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return x
}

func (d *dec) float() float64 { return math.Float64frombits(d.uint64()) }

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) bool() bool { return d.byte() != 0 }

// count reads a count of items of at least size bytes each, refusing one
// larger than the bytes left (so corrupt input cannot ask for huge memory).
func (d *dec) count(size int) uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b)/size) {
		d.fail()
		return 0
	}
	return n
}

func (d *dec) bytes() []byte {
	n := d.count(1)
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// Encoder and Decoder are the snapshot codec's primitives for other
// packages' state (the timeseries step's): the same varints, IEEE floats
// and length-prefixed bytes as the window snapshots. A Decoder records the
// first error (a snapshot cut short or corrupt) and returns zero values
// after it; counts are refused when larger than the bytes left.
type Encoder struct{ e enc }

// NewEncoder appends to dst.
func NewEncoder(dst []byte) *Encoder { return &Encoder{enc{b: dst}} }

func (x *Encoder) Uvarint(v uint64) { x.e.uvarint(v) }
func (x *Encoder) Varint(v int64)   { x.e.varint(v) }
func (x *Encoder) Float(v float64)  { x.e.float(v) }
func (x *Encoder) Bytes(p []byte)   { x.e.bytes(p) }
func (x *Encoder) Bool(v bool)      { x.e.bool(v) }
func (x *Encoder) Raw(p []byte)     { x.e.b = append(x.e.b, p...) }
func (x *Encoder) Grow(n int)       { x.e.b = slices.Grow(x.e.b, n) }
func (x *Encoder) Result() []byte   { return x.e.b }

// Decoder reads what an Encoder wrote.
type Decoder struct{ d dec }

// NewDecoder reads b.
func NewDecoder(b []byte) *Decoder { return &Decoder{dec{b: b}} }

func (x *Decoder) Uvarint() uint64 { return x.d.uvarint() }
func (x *Decoder) Varint() int64   { return x.d.varint() }
func (x *Decoder) Float() float64  { return x.d.float() }
func (x *Decoder) Bytes() []byte   { return x.d.bytes() }
func (x *Decoder) Bool() bool      { return x.d.bool() }

// Count reads a count of items of at least size bytes each.
func (x *Decoder) Count(size int) uint64 { return x.d.count(size) }

// Prefix consumes p if the input starts with it, and says whether it did.
func (x *Decoder) Prefix(p []byte) bool {
	if len(x.d.b) < len(p) || string(x.d.b[:len(p)]) != string(p) {
		return false
	}
	x.d.b = x.d.b[len(p):]
	return true
}

// Failed reports whether a read failed so far (bytes left over are not a
// failure until the end: see Err).
func (x *Decoder) Failed() bool { return x.d.err != nil }

// Err is the first error, or one for bytes left over after the end.
func (x *Decoder) Err() error {
	if x.d.err != nil {
		return x.d.err
	}
	if len(x.d.b) != 0 {
		return fmt.Errorf("%d bytes after the snapshot", len(x.d.b))
	}
	return nil
}
