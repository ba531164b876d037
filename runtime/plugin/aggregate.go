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
	groups []AggGroup
	out    [][]byte
	arena  []byte
}

// CallAggregate runs op over groups in one guest call and returns one entry
// per group, in order: the new accumulator (add, merge) or the result
// (finish: the text of a JSON object). The entries are copied out of guest
// memory into one buffer the next call does not reuse. Errors are *Error,
// as for Call.
func (in *Instance) CallAggregate(ctx context.Context, op hostabi.AggOp, groups []AggGroup) ([][]byte, error) {
	m := in.m
	if m.opts.Function != Aggregate {
		return nil, errors.New("plugin: CallAggregate on a module loaded for " + string(m.opts.Function))
	}
	if in.mod == nil {
		if err := in.instantiate(ctx); err != nil {
			return nil, err
		}
	}
	export := op.Export()
	fn := in.mod.ExportedFunction(export)
	call := &aggCall{op: op, groups: groups, out: make([][]byte, 0, len(groups))}
	// Fields of the records to add, flattened over the groups.
	in.knownSize = 0
	if ex := m.extractor; ex != nil && op == hostabi.AggAdd {
		in.fields, in.fEnd, in.notJSON = in.fields[:0], in.fEnd[:0], in.notJSON[:0]
		for gi := range groups {
			for ri := range groups[gi].Records {
				var ok bool
				in.fields, ok = ex.Append(in.fields, groups[gi].Records[ri].Value, &in.scratch)
				in.fEnd = append(in.fEnd, len(in.fields))
				in.notJSON = append(in.notJSON, !ok)
			}
		}
	}
	in.agg = call
	in.failMsg = ""
	in.phase = phaseCall
	n := uint64(len(groups))
	err := in.guard(export, fn, &n)
	in.phase = phaseIdle
	in.agg = nil
	if err != nil {
		in.discard(ctx)
		return nil, err
	}
	if rc := int32(in.stack[0]); rc != 0 {
		msg := in.failMsg
		if msg == "" {
			msg = fmt.Sprintf("returned %d", rc)
		}
		return nil, &Error{Module: m.name, Export: export, Kind: Returned, Err: errors.New(msg)}
	}
	if len(call.out) != len(groups) {
		return nil, &Error{Module: m.name, Export: export, Kind: Malformed,
			Err: fmt.Errorf("answered %d of %d groups: the module must write one entry per group", len(call.out), len(groups))}
	}
	return call.out, nil
}

// encodeAgg writes the staged aggregate batch into dst (see encode).
func (in *Instance) encodeAgg(dst []byte) uint64 {
	c := in.agg
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
			var flags uint8
			if r.Flags&record.HasTime != 0 {
				flags |= hostabi.FlagHasTime
			}
			if r.Flags&record.HasKey != 0 {
				flags |= hostabi.FlagHasKey
			}
			metaLen := 0
			for _, kv := range r.Meta {
				metaLen += hostabi.MetaEntrySize(kv.Key, kv.Value)
			}
			var fsec []byte
			if in.m.extractor != nil {
				start := 0
				if k > 0 {
					start = in.fEnd[k-1]
				}
				fsec = in.fields[start:in.fEnd[k]]
				if in.notJSON[k] {
					flags |= hostabi.FlagNotJSON
				}
			}
			var t int64
			if r.Flags&record.HasTime != 0 {
				t = r.Time
			}
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

// writeAgg takes one output chunk of an aggregate call.
func (in *Instance) writeAgg(chunk []byte) {
	c := in.agg
	rd := hostabi.NewAggEntryReader(chunk)
	for {
		e, ok, err := rd.Next()
		if err != nil {
			in.abort("%s: %w", hostabi.FuncBatchWrite, err)
		}
		if !ok {
			return
		}
		if len(c.out) == len(c.groups) {
			in.abort("%s: more entries than the %d groups of the call", hostabi.FuncBatchWrite, len(c.groups))
		}
		start := len(c.arena)
		c.arena = append(c.arena, e...)
		c.out = append(c.out, c.arena[start:len(c.arena):len(c.arena)])
	}
}
