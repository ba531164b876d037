package hostabi

import "encoding/binary"

// The aggregate contract (feature `aggregate`, ABI.md "Aggregates"): the
// host keeps accumulator bytes per (key, window) and calls the module a
// batch of groups at a time.

// AggOp is an aggregate call.
type AggOp uint32

// Aggregate calls and their exports.
const (
	AggAdd    AggOp = 1 // wsp_agg_add: fold each group's records into its accumulator
	AggMerge  AggOp = 2 // wsp_agg_merge: fold each group's other accumulators into its own
	AggFinish AggOp = 3 // wsp_agg_finish: turn each accumulator into a result (a JSON object)
)

// Export is the export an op calls.
func (op AggOp) Export() string {
	switch op {
	case AggAdd:
		return ExportAggAdd
	case AggMerge:
		return ExportAggMerge
	default:
		return ExportAggFinish
	}
}

// PutAggHeader writes an aggregate batch's 8-byte header: the number of
// groups and the op.
func PutAggHeader(dst []byte, groups uint32, op AggOp) {
	binary.LittleEndian.PutUint32(dst, groups)
	binary.LittleEndian.PutUint32(dst[4:], uint32(op))
}

// AggEntryReader reads an aggregate call's output: one `len u32 | bytes`
// entry per group, in group order, over any number of chunks.
type AggEntryReader struct {
	b   []byte
	off int
}

// NewAggEntryReader reads chunk.
func NewAggEntryReader(chunk []byte) *AggEntryReader { return &AggEntryReader{b: chunk} }

// Next returns the next entry (pointing into the chunk), false at the end,
// or an error for a truncated entry.
func (r *AggEntryReader) Next() ([]byte, bool, error) {
	if r.off == len(r.b) {
		return nil, false, nil
	}
	if len(r.b)-r.off < 4 {
		return nil, false, &ParseError{Offset: r.off, Reason: "truncated entry length"}
	}
	n := int(binary.LittleEndian.Uint32(r.b[r.off:]))
	if n > len(r.b)-r.off-4 {
		return nil, false, &ParseError{Offset: r.off, Reason: "entry runs past the end of the chunk"}
	}
	e := r.b[r.off+4 : r.off+4+n]
	r.off += 4 + n
	return e, true, nil
}

// Fixed-size accumulators (ABI.md "Fixed-size accumulators"): a module that
// calls agg_size(S) during wsp_init gets every accumulator as exactly S
// bytes, S zero bytes for a new one, and the compact batch formats:
//
//	fixed batch = groups u32 | op u32 | accs (groups*S bytes) | rest
//	rest        = add:    the records of all groups, in group order, as in an input
//	                      batch; a record's index is its group's number (< groups)
//	              merge:  counts (u32 * groups) | the other accumulators, S bytes each, in group order
//	              finish: nothing
//
// Add and merge write back exactly groups*S bytes (the new accumulators, in
// group order, over any number of chunks); finish writes `len u32 | JSON
// object text` per group, as in the variable formats, or, for a module that
// declared typed results (agg_result, result.go), exactly groups*8*F bytes
// in either mode.

// FixedAggAccsOffset is where the accumulators of a fixed batch start.
const FixedAggAccsOffset = BatchHeaderSize
