package plugin

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/record"
)

// Aggregate is the function of a module that implements the aggregate
// contract (wsp_agg_add, wsp_agg_merge, wsp_agg_finish; feature
// `aggregate`): the host keeps each accumulator's bytes, the module folds
// records and other accumulators into them and turns them into results.
const Aggregate Function = "aggregate"

// AggGroup is one accumulator and what to fold into it. An empty Acc is a
// new accumulator: the module creates it.
type AggGroup struct {
	Acc     []byte
	Records []record.Record // for AggAdd
	Others  [][]byte        // for AggMerge
}

// aggCall is the staged input and the collected output of one call.
type aggCall struct {
	op     hostabi.AggOp
	n      int        // groups
	groups []AggGroup // variable form
	out    [][]byte   // entries written (variable form, and fixed finish)
	arena  []byte

	// Fixed form (Module.AccSize() > 0): the groups' accumulators back to
	// back, and what to fold into them.
	fixed  bool
	accs   []byte
	recs   []record.Record // add: group i's are recs[ends[i-1]:ends[i]]
	ends   []int
	others []byte // merge: group i's are others[oEnds[i-1]*S:oEnds[i]*S]
	oEnds  []int  // nil: one other per group

	// unit > 0: the module writes exactly n*unit bytes, not entries: the
	// accumulators of a fixed add or merge (unit = agg_size), or the typed
	// results of a finish (unit = 8 * result fields, agg_result).
	unit  int
	wrote []byte // what was written when unit > 0
}

// CallAggregate runs op over groups in one guest call and returns one entry
// per group, in order: the new accumulator (add, merge) or the result
// (finish: the text of a JSON object, which the host formats itself from
// the values of a module with typed results, Results()). The entries are
// copied out of guest
// memory into one buffer the next call does not reuse. Errors are *Error,
// as for Call.
//
// On a module with fixed-size accumulators (AccSize() > 0) CallAggregate
// still works: an empty Acc (or other accumulator) stands for S zero bytes,
// any other must have S bytes, and the call runs in the fixed formats;
// add and merge then return S bytes for every group, also for a new one
// with nothing added. AddFixed, MergeFixed and FinishFixed are cheaper.
func (in *Instance) CallAggregate(ctx context.Context, op hostabi.AggOp, groups []AggGroup) ([][]byte, error) {
	m := in.m
	if m.opts.Function != Aggregate {
		return nil, errors.New("plugin: CallAggregate on a module loaded for " + string(m.opts.Function))
	}
	if m.accSize > 0 {
		return in.callAggregateAsFixed(ctx, op, groups)
	}
	call := &aggCall{op: op, n: len(groups), groups: groups, out: make([][]byte, 0, len(groups))}
	if err := in.runAgg(ctx, call); err != nil {
		return nil, err
	}
	return call.out, nil
}

// runAgg stages call, runs its export and checks what it wrote.
func (in *Instance) runAgg(ctx context.Context, call *aggCall) error {
	m := in.m
	if in.mod == nil {
		if err := in.instantiate(ctx); err != nil {
			return err
		}
	}
	export := call.op.Export()
	fn := in.aggFns[call.op]
	// Fields of the records to add, flattened over the groups.
	in.knownSize = 0
	if ex := m.extractor; ex != nil && call.op == hostabi.AggAdd {
		in.fields, in.fEnd, in.notJSON = in.fields[:0], in.fEnd[:0], in.notJSON[:0]
		each := func(recs []record.Record) {
			for ri := range recs {
				var ok bool
				in.fields, ok = ex.Append(in.fields, recs[ri].Value, &in.scratch)
				in.fEnd = append(in.fEnd, len(in.fields))
				in.notJSON = append(in.notJSON, !ok)
			}
		}
		if call.fixed {
			each(call.recs)
		} else {
			for gi := range call.groups {
				each(call.groups[gi].Records)
			}
		}
	}
	call.unit = 0
	switch {
	case call.op == hostabi.AggFinish && m.resultFmt != nil:
		call.unit = m.resultFmt.Size()
	case call.fixed && call.op != hostabi.AggFinish:
		call.unit = m.accSize
	}
	call.wrote = call.wrote[:0]
	if want := call.n * call.unit; cap(call.wrote) < want {
		call.wrote = make([]byte, 0, want)
	}
	in.agg = call
	in.failMsg = ""
	in.phase = phaseCall
	n := uint64(call.n)
	err := in.guard(export, fn, &n)
	in.phase = phaseIdle
	in.agg = nil
	if err != nil {
		in.discard(ctx)
		return err
	}
	if rc := int32(in.stack[0]); rc != 0 {
		msg := in.failMsg
		if msg == "" {
			msg = fmt.Sprintf("returned %d", rc)
		}
		return &Error{Module: m.name, Export: export, Kind: Returned, Err: errors.New(msg)}
	}
	if call.unit > 0 {
		if want := call.n * call.unit; len(call.wrote) != want {
			return &Error{Module: m.name, Export: export, Kind: Malformed,
				Err: fmt.Errorf("wrote %d bytes of %s; want %d (%s)", len(call.wrote), call.unitName(), want, call.unitDesc(m))}
		}
		if call.op == hostabi.AggFinish {
			return in.formatResults(call)
		}
		return nil
	}
	if len(call.out) != call.n {
		return &Error{Module: m.name, Export: export, Kind: Malformed,
			Err: fmt.Errorf("answered %d of %d groups: the module must write one entry per group", len(call.out), call.n)}
	}
	return nil
}

// unitName and unitDesc name what a call with unit > 0 writes, for errors.
func (c *aggCall) unitName() string {
	if c.op == hostabi.AggFinish {
		return "results"
	}
	return "accumulators"
}

func (c *aggCall) unitDesc(m *Module) string {
	if c.op == hostabi.AggFinish {
		return fmt.Sprintf("%d groups of %d fields of 8 bytes, agg_result", c.n, len(m.results))
	}
	return fmt.Sprintf("%d groups of %d bytes, agg_size", c.n, m.accSize)
}

// formatResults turns the typed results a finish wrote (call.wrote, unit
// bytes per group) into one JSON object text per group (call.out), in one
// buffer.
func (in *Instance) formatResults(c *aggCall) error {
	f := in.m.resultFmt
	u := c.unit
	// The arena holds all the texts: sized by the previous call's average
	// (a little more), it rarely grows and is not much larger than needed.
	// (Append wants room for Width() bytes before each text.)
	w := in.resWidth
	if w == 0 {
		w = f.Width()
	}
	arena := make([]byte, 0, c.n*w+f.Width())
	ends := in.resEnds[:0]
	for g := 0; g < c.n; g++ {
		var err error
		arena, err = f.Append(arena, c.wrote[g*u:(g+1)*u])
		if err != nil {
			in.resEnds = ends
			return &Error{Module: in.m.name, Export: hostabi.ExportAggFinish, Kind: Malformed,
				Err: fmt.Errorf("group %d: %w", g, err)}
		}
		ends = append(ends, len(arena))
	}
	in.resWidth = min(len(arena)/c.n+8, f.Width())
	out := c.out[:0]
	if cap(out) < c.n {
		out = make([][]byte, 0, c.n)
	}
	start := 0
	for _, e := range ends {
		out = append(out, arena[start:e:e])
		start = e
	}
	c.out, in.resEnds = out, ends[:0]
	return nil
}

// Results are the typed fields of the module's aggregate result when it
// declared them (agg_result); nil when its finish writes JSON text.
func (m *Module) Results() []hostabi.ResultField { return m.results }

// AccSize is the size in bytes of the module's accumulators when it
// declared them fixed-size (agg_size), 0 when they are variable.
func (m *Module) AccSize() int { return m.accSize }

// checkFixed checks that accs holds whole accumulators of a fixed-size
// aggregate and returns how many.
func (in *Instance) checkFixed(what string, accs []byte) (int, error) {
	m := in.m
	if m.opts.Function != Aggregate {
		return 0, errors.New("plugin: " + what + " on a module loaded for " + string(m.opts.Function))
	}
	s := m.accSize
	if s == 0 {
		return 0, fmt.Errorf("plugin %s: %s on a module with variable-size accumulators (AccSize 0): use CallAggregate", m.name, what)
	}
	if len(accs)%s != 0 {
		return 0, fmt.Errorf("plugin %s: %s: %d bytes of accumulators is not a multiple of the module's %d", m.name, what, len(accs), s)
	}
	return len(accs) / s, nil
}

// checkEnds checks that ends splits total items into n groups.
func checkEnds(what string, ends []int, n, total int) error {
	if len(ends) != n {
		return fmt.Errorf("plugin: %s: %d ends for %d groups", what, len(ends), n)
	}
	prev := 0
	for i, e := range ends {
		if e < prev {
			return fmt.Errorf("plugin: %s: ends[%d] = %d is below ends[%d] = %d", what, i, e, i-1, prev)
		}
		prev = e
	}
	if prev != total {
		return fmt.Errorf("plugin: %s: the last end is %d, want %d", what, prev, total)
	}
	return nil
}

// AddFixed folds records into the accumulators of a fixed-size aggregate
// (AccSize() = S > 0) in one wsp_agg_add call. accs holds the groups'
// accumulators back to back (len(accs) = groups*S; S zero bytes for a new
// one); group i's records are recs[ends[i-1]:ends[i]] (ends[-1] = 0,
// ends[groups-1] = len(recs)). accs is updated in place, and only when the
// call succeeds. Errors are *Error, as for CallAggregate (a plain error for
// arguments that do not fit the module).
func (in *Instance) AddFixed(ctx context.Context, accs []byte, recs []record.Record, ends []int) error {
	n, err := in.checkFixed("AddFixed", accs)
	if err != nil {
		return err
	}
	if err := checkEnds("AddFixed", ends, n, len(recs)); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	c := in.fixedCall(hostabi.AggAdd, accs)
	c.recs, c.ends = recs, ends
	return in.runFixed(ctx, c, accs)
}

// runFixed runs a fixed-size add or merge: on success the module's new
// accumulators replace accs (a failed call leaves them as they were).
func (in *Instance) runFixed(ctx context.Context, c *aggCall, accs []byte) error {
	err := in.runAgg(ctx, c)
	if err == nil {
		copy(accs, c.wrote)
	}
	c.recs, c.ends, c.others, c.oEnds, c.accs = nil, nil, nil, nil, nil
	return err
}

// MergeFixed folds other accumulators into those of a fixed-size aggregate
// in one wsp_agg_merge call. With ends nil, others holds one accumulator
// per group (len(others) = len(accs)); otherwise group i's are
// others[ends[i-1]*S:ends[i]*S]. accs is updated in place when the call
// succeeds.
func (in *Instance) MergeFixed(ctx context.Context, accs, others []byte, ends []int) error {
	n, err := in.checkFixed("MergeFixed", accs)
	if err != nil {
		return err
	}
	s := in.m.accSize
	if ends == nil {
		if len(others) != len(accs) {
			return fmt.Errorf("plugin %s: MergeFixed: %d bytes of other accumulators for %d groups of %d bytes", in.m.name, len(others), n, s)
		}
	} else if len(others)%s != 0 {
		return fmt.Errorf("plugin %s: MergeFixed: %d bytes of other accumulators is not a multiple of %d", in.m.name, len(others), s)
	} else if err := checkEnds("MergeFixed", ends, n, len(others)/s); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	c := in.fixedCall(hostabi.AggMerge, accs)
	c.others, c.oEnds = others, ends
	return in.runFixed(ctx, c, accs)
}

// FinishFixed turns the accumulators of a fixed-size aggregate into
// results in one wsp_agg_finish call: one entry per group, the text of a
// JSON object, copied into one buffer the next call does not reuse.
func (in *Instance) FinishFixed(ctx context.Context, accs []byte) ([][]byte, error) {
	n, err := in.checkFixed("FinishFixed", accs)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	c := in.fixedCall(hostabi.AggFinish, accs)
	c.out = make([][]byte, 0, n)
	if in.m.resultFmt == nil {
		c.arena = make([]byte, 0, n*32)
	}
	err = in.runAgg(ctx, c)
	out := c.out
	c.out, c.arena, c.accs = nil, nil, nil
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fixedCall readies the instance's reused fixed-form call.
func (in *Instance) fixedCall(op hostabi.AggOp, accs []byte) *aggCall {
	c := &in.aggFixed
	c.op, c.fixed, c.accs, c.n = op, true, accs, len(accs)/in.m.accSize
	return c
}

// callAggregateAsFixed is CallAggregate on a fixed-size module: the groups
// are translated to the fixed form.
func (in *Instance) callAggregateAsFixed(ctx context.Context, op hostabi.AggOp, groups []AggGroup) ([][]byte, error) {
	m := in.m
	s := m.accSize
	accs := make([]byte, len(groups)*s)
	put := func(dst, acc []byte, what string, g int) error {
		if len(acc) != 0 && len(acc) != s {
			return &Error{Module: m.name, Export: op.Export(), Kind: Fault,
				Err: fmt.Errorf("group %d: %s of %d bytes; the module's accumulators have %d (agg_size)", g, what, len(acc), s)}
		}
		copy(dst, acc)
		return nil
	}
	for g := range groups {
		if err := put(accs[g*s:], groups[g].Acc, "accumulator", g); err != nil {
			return nil, err
		}
	}
	var err error
	switch op {
	case hostabi.AggAdd:
		recs, ends := in.flatRecs[:0], make([]int, len(groups))
		for g := range groups {
			recs = append(recs, groups[g].Records...)
			ends[g] = len(recs)
		}
		err = in.AddFixed(ctx, accs, recs, ends)
		clear(recs)
		in.flatRecs = recs[:0]
	case hostabi.AggMerge:
		var others []byte
		ends := make([]int, len(groups))
		k := 0
		for g := range groups {
			for _, o := range groups[g].Others {
				others = append(others, make([]byte, s)...)
				if err := put(others[k*s:], o, "other accumulator", g); err != nil {
					return nil, err
				}
				k++
			}
			ends[g] = k
		}
		err = in.MergeFixed(ctx, accs, others, ends)
	default:
		return in.FinishFixed(ctx, accs)
	}
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(groups))
	for g := range out {
		out[g] = accs[g*s : (g+1)*s : (g+1)*s]
	}
	return out, nil
}

// encodeAgg writes the staged aggregate batch into dst (see encode).
func (in *Instance) encodeAgg(dst []byte) uint64 {
	c := in.agg
	if in.knownSize != 0 && uint64(len(dst)) < in.knownSize {
		return in.knownSize // asked again with a buffer still too small (or a tick)
	}
	if c.fixed {
		return in.encodeFixed(dst)
	}
	size := uint64(hostabi.BatchHeaderSize)
	k := 0
	add, merge := c.op == hostabi.AggAdd, c.op == hostabi.AggMerge
	for gi := range c.groups {
		g := &c.groups[gi]
		size += 8 + uint64(len(g.Acc))
		if !add {
			continue
		}
		for ri := range g.Records {
			r := &g.Records[ri]
			size += uint64(hostabi.RecordHeaderSize + len(r.Key) + len(r.Value))
			for _, kv := range r.Meta {
				size += uint64(hostabi.MetaEntrySize(kv.Key, kv.Value))
			}
			if in.m.extractor != nil {
				start := 0
				if k > 0 {
					start = in.fEnd[k-1]
				}
				size += uint64(in.fEnd[k] - start)
			}
			k++
		}
	}
	if merge {
		for gi := range c.groups {
			for _, o := range c.groups[gi].Others {
				size += 4 + uint64(len(o))
			}
		}
	}
	if size > uint64(len(dst)) {
		in.knownSize = size
		return size
	}
	hostabi.PutAggHeader(dst, uint32(len(c.groups)), c.op)
	p := hostabi.BatchHeaderSize
	k = 0
	for gi := range c.groups {
		g := &c.groups[gi]
		binary.LittleEndian.PutUint32(dst[p:], uint32(len(g.Acc)))
		p += 4
		p += copy(dst[p:], g.Acc)
		var recs []record.Record
		var others [][]byte
		switch {
		case add:
			recs = g.Records
		case merge:
			others = g.Others
		}
		binary.LittleEndian.PutUint32(dst[p:], uint32(len(recs)+len(others)))
		p += 4
		for ri := range recs {
			r := &recs[ri]
			flags, t, metaLen, fsec := in.parts(r, k)
			p = putRecord(dst, p, ri, r, flags, t, metaLen, fsec)
			k++
		}
		for _, o := range others {
			binary.LittleEndian.PutUint32(dst[p:], uint32(len(o)))
			p += 4
			p += copy(dst[p:], o)
		}
	}
	return uint64(p)
}

// encodeFixed writes the staged fixed-form batch into dst (see encode).
func (in *Instance) encodeFixed(dst []byte) uint64 {
	c := in.agg
	size := uint64(hostabi.BatchHeaderSize + len(c.accs))
	switch c.op {
	case hostabi.AggAdd:
		for ri := range c.recs {
			r := &c.recs[ri]
			size += uint64(hostabi.RecordHeaderSize + len(r.Key) + len(r.Value))
			for _, kv := range r.Meta {
				size += uint64(hostabi.MetaEntrySize(kv.Key, kv.Value))
			}
		}
		if in.m.extractor != nil {
			size += uint64(len(in.fields))
		}
	case hostabi.AggMerge:
		size += 4*uint64(c.n) + uint64(len(c.others))
	}
	if size > uint64(len(dst)) {
		in.knownSize = size
		return size
	}
	hostabi.PutAggHeader(dst, uint32(c.n), c.op)
	p := hostabi.FixedAggAccsOffset
	p += copy(dst[p:], c.accs)
	switch c.op {
	case hostabi.AggAdd:
		start := 0
		for g, e := range c.ends {
			for k := start; k < e; k++ {
				r := &c.recs[k]
				flags, t, metaLen, fsec := in.parts(r, k)
				p = putRecord(dst, p, g, r, flags, t, metaLen, fsec)
			}
			start = e
		}
	case hostabi.AggMerge:
		for g := 0; g < c.n; g++ {
			k := uint32(1)
			if c.oEnds != nil {
				k = uint32(c.oEnds[g])
				if g > 0 {
					k -= uint32(c.oEnds[g-1])
				}
			}
			binary.LittleEndian.PutUint32(dst[p+4*g:], k)
		}
		p += 4 * c.n
		p += copy(dst[p:], c.others)
	}
	return uint64(p)
}

// malformedError is a fault that breaks a rule of the output format (Kind
// Malformed).
type malformedError struct{ error }

func (e malformedError) Unwrap() error { return e.error }

// writeAgg takes one output chunk of an aggregate call.
func (in *Instance) writeAgg(chunk []byte) {
	c := in.agg
	if c.unit > 0 {
		if want := c.n * c.unit; len(c.wrote)+len(chunk) > want {
			in.abort("%s: %w", hostabi.FuncBatchWrite, malformedError{fmt.Errorf(
				"more than the %d bytes of %s of the call (%s)", want, c.unitName(), c.unitDesc(in.m))})
		}
		c.wrote = append(c.wrote, chunk...)
		return
	}
	rd := hostabi.NewAggEntryReader(chunk)
	for {
		e, ok, err := rd.Next()
		if err != nil {
			in.abort("%s: %w", hostabi.FuncBatchWrite, err)
		}
		if !ok {
			return
		}
		if len(c.out) == c.n {
			in.abort("%s: more entries than the %d groups of the call", hostabi.FuncBatchWrite, c.n)
		}
		start := len(c.arena)
		c.arena = append(c.arena, e...)
		c.out = append(c.out, c.arena[start:len(c.arena):len(c.arena)])
	}
}
