package wsptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
	"github.com/wsp-project/wsp/plugins/sdk/go/internal/stubhost"
)

// Aggregates (wsp.Aggregate): the harness plays the window step's side of
// the aggregate contract (hostabi/ABI.md "Aggregates"). It keeps no
// accumulators itself: a test passes them in and gets the new ones back,
// as the host stores them. Each call is one wsp_agg_add, wsp_agg_merge or
// wsp_agg_finish call over a batch of groups, encoded in the format of the
// module's mode (variable-size accumulators, fixed-size ones when the
// module declared a Size, with typed results when it declared Results), and
// its output is checked as the host checks it.

// The ops of the aggregate exports.
const (
	opAdd    = 1
	opMerge  = 2
	opFinish = 3
)

var opNames = [...]string{opAdd: "wsp_agg_add", opMerge: "wsp_agg_merge", opFinish: "wsp_agg_finish"}

// AggGroup is one group (a window) of a batch aggregate call: an
// accumulator and what to fold into it.
type AggGroup struct {
	// Acc is the group's accumulator; nil or empty is a new one (with a
	// fixed Size the harness passes Size zero bytes for it, as the host).
	Acc []byte
	// Records are folded in by AggAddGroups (a record's Index in Add is its
	// position in the group, or with a fixed Size the group's number).
	Records []Record
	// Others are the accumulators folded in by AggMergeGroups (nil or
	// empty: a new one).
	Others [][]byte
}

// AggAdd folds recs into acc with one wsp_agg_add call and returns the new
// accumulator. A nil or empty acc is a new accumulator. It runs Init first
// if it has not run, and fails the test if the call fails or its output
// breaks the ABI.
func (h *Harness) AggAdd(acc []byte, recs ...Record) []byte {
	h.t.Helper()
	a, err := h.TryAggAdd(acc, recs...)
	if err != nil {
		h.t.Fatalf("wsp_agg_add: %v", err)
	}
	return a
}

// TryAggAdd is AggAdd returning the failure of the call (the plugin's fail
// message, such as "panic: ...", or a description of malformed output)
// instead of failing the test.
func (h *Harness) TryAggAdd(acc []byte, recs ...Record) ([]byte, error) {
	out, err := h.agg(opAdd, []AggGroup{{Acc: acc, Records: recs}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// AggMerge folds the others into acc with one wsp_agg_merge call and
// returns the new accumulator.
func (h *Harness) AggMerge(acc []byte, others ...[]byte) []byte {
	h.t.Helper()
	a, err := h.TryAggMerge(acc, others...)
	if err != nil {
		h.t.Fatalf("wsp_agg_merge: %v", err)
	}
	return a
}

// TryAggMerge is AggMerge returning the failure of the call.
func (h *Harness) TryAggMerge(acc []byte, others ...[]byte) ([]byte, error) {
	out, err := h.agg(opMerge, []AggGroup{{Acc: acc, Others: others}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// AggFinish turns acc into its result with one wsp_agg_finish call: the
// text of a JSON object, as the window's result gets it. With typed
// results (Results) the harness formats the values Finish stored exactly
// as the host does.
func (h *Harness) AggFinish(acc []byte) string {
	h.t.Helper()
	s, err := h.TryAggFinish(acc)
	if err != nil {
		h.t.Fatalf("wsp_agg_finish: %v", err)
	}
	return s
}

// TryAggFinish is AggFinish returning the failure of the call. A result
// that is not the text of a JSON object is an error too (the host's
// window step would put an "aggregate_error" in its place).
func (h *Harness) TryAggFinish(acc []byte) (string, error) {
	out, err := h.TryAggFinishGroups(acc)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// AggAddGroups runs one wsp_agg_add call over several groups (what the
// host does for a batch of windows) and returns the new accumulators, one
// per group, in order.
func (h *Harness) AggAddGroups(groups []AggGroup) [][]byte {
	h.t.Helper()
	out, err := h.TryAggAddGroups(groups)
	if err != nil {
		h.t.Fatalf("wsp_agg_add: %v", err)
	}
	return out
}

// TryAggAddGroups is AggAddGroups returning the failure of the call.
func (h *Harness) TryAggAddGroups(groups []AggGroup) ([][]byte, error) {
	return h.agg(opAdd, groups)
}

// AggMergeGroups runs one wsp_agg_merge call over several groups (each
// group's Others are merged into its Acc) and returns the new
// accumulators.
func (h *Harness) AggMergeGroups(groups []AggGroup) [][]byte {
	h.t.Helper()
	out, err := h.TryAggMergeGroups(groups)
	if err != nil {
		h.t.Fatalf("wsp_agg_merge: %v", err)
	}
	return out
}

// TryAggMergeGroups is AggMergeGroups returning the failure of the call.
func (h *Harness) TryAggMergeGroups(groups []AggGroup) ([][]byte, error) {
	return h.agg(opMerge, groups)
}

// AggFinishGroups runs one wsp_agg_finish call over several accumulators
// and returns their results, in order.
func (h *Harness) AggFinishGroups(accs ...[]byte) []string {
	h.t.Helper()
	out, err := h.TryAggFinishGroups(accs...)
	if err != nil {
		h.t.Fatalf("wsp_agg_finish: %v", err)
	}
	return out
}

// TryAggFinishGroups is AggFinishGroups returning the failure of the call.
func (h *Harness) TryAggFinishGroups(accs ...[]byte) ([]string, error) {
	groups := make([]AggGroup, len(accs))
	for i, a := range accs {
		groups[i].Acc = a
	}
	out, err := h.agg(opFinish, groups)
	if err != nil {
		return nil, err
	}
	s := make([]string, len(out))
	for i, o := range out {
		if t := bytes.TrimSpace(o); len(t) < 2 || t[0] != '{' || !json.Valid(t) {
			return nil, errors.New("group " + strconv.Itoa(i) + ": the aggregate's result is not a JSON object: " + strconv.Quote(string(o)))
		}
		s[i] = string(o)
	}
	return s, nil
}

// AccSize returns the size of the module's accumulators declared during
// Init (agg_size, AggregateFuncs.Size), 0 for variable-size ones.
func (h *Harness) AccSize() int { return h.host.AccSize }

// Results returns the typed result fields declared during Init
// (agg_result, AggregateFuncs.Results), nil when Finish writes JSON text.
func (h *Harness) Results() []wsp.ResultField {
	var f []wsp.ResultField
	d := h.host.Results
	for p := 0; p+2 <= len(d); {
		n := int(d[p+1])
		f = append(f, wsp.ResultField{Type: wsp.ResultType(d[p]), Name: string(d[p+2 : p+2+n])})
		p += 2 + n
	}
	return f
}

// aggOutput collects and checks the output chunks of an aggregate call as
// the host does.
type aggOutput struct {
	n       int
	unit    int      // > 0: the call writes exactly n*unit bytes, no entries
	what    string   // what those bytes are, for errors
	wrote   []byte   // unit > 0
	entries [][]byte // unit == 0: `len u32 | bytes` entries, whole in each chunk
	chunks  int
	err     error
}

func (o *aggOutput) write(chunk []byte) int32 {
	o.chunks++
	if o.err != nil {
		return stubhost.ErrMalformed
	}
	if o.unit > 0 {
		if want := o.n * o.unit; len(o.wrote)+len(chunk) > want {
			o.err = errors.New("more than the " + strconv.Itoa(want) + " bytes of " + o.what + " of the call")
			return stubhost.ErrMalformed
		}
		o.wrote = append(o.wrote, chunk...)
		return 0
	}
	for off := 0; off < len(chunk); {
		if len(chunk)-off < 4 {
			o.err = errors.New("chunk " + strconv.Itoa(o.chunks-1) + " at byte " + strconv.Itoa(off) + ": truncated entry length")
			return stubhost.ErrMalformed
		}
		l := uint64(le.Uint32(chunk[off:]))
		if l > uint64(len(chunk)-off-4) {
			o.err = errors.New("chunk " + strconv.Itoa(o.chunks-1) + " at byte " + strconv.Itoa(off) + ": entry runs past the end of the chunk")
			return stubhost.ErrMalformed
		}
		if len(o.entries) == o.n {
			o.err = errors.New("more entries than the " + strconv.Itoa(o.n) + " groups of the call")
			return stubhost.ErrMalformed
		}
		o.entries = append(o.entries, bytes.Clone(chunk[off+4:off+4+int(l)]))
		off += 4 + int(l)
	}
	return 0
}

// agg runs one aggregate call over groups: the new accumulators (add,
// merge) or the results (finish: JSON text, typed results formatted).
func (h *Harness) agg(op int, groups []AggGroup) ([][]byte, error) {
	if !h.inited {
		if err := h.TryInit(); err != nil {
			return nil, errors.New("wsp_init: " + err.Error())
		}
	}
	n := len(groups)
	size := h.host.AccSize
	var input []byte
	if size > 0 {
		if n == 0 {
			return nil, nil // the host makes no call
		}
		var err error
		if input, err = encodeFixed(op, groups, size, h.host.Fields); err != nil {
			return nil, err
		}
	} else {
		input = encodeVariable(op, groups, h.host.Fields)
	}
	results := h.Results()
	o := &aggOutput{n: n}
	switch {
	case op == opFinish && len(results) > 0:
		o.unit = 8 * len(results)
		o.what = "results (" + strconv.Itoa(n) + " groups of " + strconv.Itoa(len(results)) + " fields of 8 bytes, agg_result)"
	case size > 0 && op != opFinish:
		o.unit = size
		o.what = "accumulators (" + strconv.Itoa(n) + " groups of " + strconv.Itoa(size) + " bytes, agg_size)"
	}
	fn := stubhost.Guest.AggAdd
	switch op {
	case opMerge:
		fn = stubhost.Guest.AggMerge
	case opFinish:
		fn = stubhost.Guest.AggFinish
	}
	h.host.Input = input
	h.host.Write = o.write
	rc := h.call(stubhost.Call, func() int32 { return fn(int32(n)) })
	h.host.Input, h.host.Write = nil, nil
	if o.err != nil {
		return nil, errors.New("malformed output: batch_write: " + o.err.Error())
	}
	if rc != 0 {
		return nil, failure(h.host.FailMsg, rc)
	}
	if o.unit > 0 {
		if want := n * o.unit; len(o.wrote) != want {
			return nil, errors.New("malformed output: wrote " + strconv.Itoa(len(o.wrote)) + " bytes of " + o.what +
				"; want " + strconv.Itoa(want))
		}
		out := make([][]byte, n)
		for g := range out {
			v := o.wrote[g*o.unit : (g+1)*o.unit : (g+1)*o.unit]
			if op != opFinish {
				out[g] = v
				continue
			}
			t, err := formatResult(nil, results, v)
			if err != nil {
				return nil, errors.New("malformed output: group " + strconv.Itoa(g) + ": " + err.Error())
			}
			out[g] = t
		}
		return out, nil
	}
	if len(o.entries) != n {
		return nil, errors.New("malformed output: answered " + strconv.Itoa(len(o.entries)) + " of " + strconv.Itoa(n) +
			" groups: the module must write one entry per group")
	}
	return o.entries, nil
}

// encodeVariable encodes the batch of an aggregate call in the variable
// formats:
//
//	groups u32 | op u32 | (acc_len u32 | acc | items u32 | item*)*
//
// with items the records (add; index = position in the group), the other
// accumulators as `len u32 | acc` (merge), or none (finish).
func encodeVariable(op int, groups []AggGroup, fields []string) []byte {
	b := make([]byte, batchHeaderSize, 1024)
	le.PutUint32(b, uint32(len(groups)))
	le.PutUint32(b[4:], uint32(op))
	for gi := range groups {
		g := &groups[gi]
		b = le.AppendUint32(b, uint32(len(g.Acc)))
		b = append(b, g.Acc...)
		switch op {
		case opAdd:
			b = le.AppendUint32(b, uint32(len(g.Records)))
			for i := range g.Records {
				b = appendRecord(b, uint32(i), &g.Records[i], fields)
			}
		case opMerge:
			b = le.AppendUint32(b, uint32(len(g.Others)))
			for _, a := range g.Others {
				b = le.AppendUint32(b, uint32(len(a)))
				b = append(b, a...)
			}
		default:
			b = le.AppendUint32(b, 0)
		}
	}
	return b
}

// encodeFixed encodes the batch of an aggregate call in the fixed formats
// (accumulators of size bytes):
//
//	groups u32 | op u32 | accs | add: records (index = group) | merge: counts (u32*groups) | other accs
//
// An empty accumulator becomes size zero bytes; any other must have size
// bytes (the host refuses the call otherwise).
func encodeFixed(op int, groups []AggGroup, size int, fields []string) ([]byte, error) {
	b := make([]byte, batchHeaderSize, batchHeaderSize+len(groups)*size+1024)
	le.PutUint32(b, uint32(len(groups)))
	le.PutUint32(b[4:], uint32(op))
	put := func(acc []byte, what string, g int) error {
		switch len(acc) {
		case 0:
			b = append(b, make([]byte, size)...)
		case size:
			b = append(b, acc...)
		default:
			return errors.New(opNames[op] + ": group " + strconv.Itoa(g) + ": " + what + " of " + strconv.Itoa(len(acc)) +
				" bytes; the module's accumulators have " + strconv.Itoa(size) + " (agg_size)")
		}
		return nil
	}
	for g := range groups {
		if err := put(groups[g].Acc, "accumulator", g); err != nil {
			return nil, err
		}
	}
	switch op {
	case opAdd:
		for g := range groups {
			for i := range groups[g].Records {
				b = appendRecord(b, uint32(g), &groups[g].Records[i], fields)
			}
		}
	case opMerge:
		for g := range groups {
			b = le.AppendUint32(b, uint32(len(groups[g].Others)))
		}
		for g := range groups {
			for _, a := range groups[g].Others {
				if err := put(a, "other accumulator", g); err != nil {
					return nil, err
				}
			}
		}
	}
	return b, nil
}

// formatResult appends the JSON object text of one group's typed values
// (8 bytes per field) to dst, exactly as the host writes it
// (hostabi.ResultFormat): ints as integers, floats as encoding/json writes
// them with NaN and ±Inf as null, bools as true or false (another value
// than 0 or 1 is an error).
func formatResult(dst []byte, fields []wsp.ResultField, vals []byte) ([]byte, error) {
	for i, f := range fields {
		if i == 0 {
			dst = append(dst, '{')
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		for k := 0; k < len(f.Name); k++ {
			if c := f.Name[k]; c == '"' || c == '\\' {
				dst = append(dst, '\\')
			}
			dst = append(dst, f.Name[k])
		}
		dst = append(dst, '"', ':')
		v := le.Uint64(vals[8*i:])
		switch f.Type {
		case wsp.ResultInt:
			dst = strconv.AppendInt(dst, int64(v), 10)
		case wsp.ResultFloat:
			x := math.Float64frombits(v)
			if i := int64(x); float64(i) == x && i < 1e15 && i > -1e15 && (i != 0 || v == 0) {
				dst = strconv.AppendInt(dst, i, 10)
				break
			}
			dst = appendJSONFloat(dst, x)
		default:
			switch v {
			case 0:
				dst = append(dst, "false"...)
			case 1:
				dst = append(dst, "true"...)
			default:
				return dst, errors.New("result field " + strconv.Itoa(i) + " is a bool but holds " +
					strconv.FormatUint(v, 10) + " (0 false, 1 true)")
			}
		}
	}
	return append(dst, '}'), nil
}

// appendJSONFloat writes x as the host does (hostabi.AppendJSONFloat): as
// encoding/json writes a float64, NaN and ±Inf as null.
func appendJSONFloat(b []byte, x float64) []byte {
	if i := int64(x); float64(i) == x && i < 1e15 && i > -1e15 && (i != 0 || !math.Signbit(x)) {
		return strconv.AppendInt(b, i, 10)
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(b, "null"...)
	}
	if a := math.Abs(x); a != 0 && (a < 1e-6 || a >= 1e21) {
		n := len(b)
		b = strconv.AppendFloat(b, x, 'e', -1, 64)
		// e-07 -> e-7, as encoding/json writes it
		if m := len(b) - n; m >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
		return b
	}
	return strconv.AppendFloat(b, x, 'f', -1, 64)
}
