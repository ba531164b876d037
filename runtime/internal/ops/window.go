package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/internal/window"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// AggKind is a built-in aggregation.
type AggKind int

// The built-in aggregations. Variance and standard deviation come in the
// population form (divide by n: the mean squared deviation) and the sample
// form (divide by n - 1).
const (
	AggCount AggKind = iota
	AggSum
	AggMin
	AggMax
	AggMean
	AggVarPop
	AggVarSamp
	AggStdPop
	AggStdSamp
	AggFirst
	AggLast
	AggDistinct // distinct count: a sketch, exact up to 256 values, 1.6 % standard error beyond
	AggQuantile // a quantile: a sketch, within 1 % relative of the true value
)

var aggNames = map[string]AggKind{
	"count": AggCount, "sum": AggSum, "min": AggMin, "max": AggMax, "mean": AggMean, "avg": AggMean,
	"var_pop": AggVarPop, "variance": AggVarPop, "var_samp": AggVarSamp,
	"stddev_pop": AggStdPop, "stddev": AggStdPop, "stddev_samp": AggStdSamp,
	"first": AggFirst, "last": AggLast,
	"distinct": AggDistinct, "quantile": AggQuantile, "median": AggQuantile,
}

// Agg is one aggregate of a window: Name is its field in the result.
type Agg struct {
	Name  string
	Kind  AggKind
	Field string  // "" for count()
	Q     float64 // the quantile of quantile(field, q); 0.5 for median
	field int     // index among the step's distinct fields
}

var aggRe = regexp.MustCompile(`^\s*([a-z_]+)\s*\(\s*([^(),\s]*)\s*(?:,\s*([^(),\s]+)\s*)?\)\s*$`)

// ParseAgg reads an aggregate written as `kind(field)`, or `count()`.
func ParseAgg(name, expr string) (Agg, error) {
	m := aggRe.FindStringSubmatch(expr)
	if m == nil {
		return Agg{}, fmt.Errorf("aggregate %s: %q: want kind(field), e.g. mean(value), or count()", name, expr)
	}
	kind, ok := aggNames[m[1]]
	if !ok {
		return Agg{}, fmt.Errorf("aggregate %s: unknown kind %q (want count, sum, min, max, mean, var_pop, var_samp, stddev_pop, stddev_samp, first, last)", name, m[1])
	}
	a := Agg{Name: name, Kind: kind, Field: m[2]}
	switch {
	case m[1] == "quantile":
		q, err := strconv.ParseFloat(m[3], 64)
		if m[3] == "" || err != nil || q < 0 || q > 1 {
			return Agg{}, fmt.Errorf("aggregate %s: quantile(field, q) needs q between 0 and 1, e.g. quantile(value, 0.99)", name)
		}
		a.Q = q
	case m[3] != "":
		return Agg{}, fmt.Errorf("aggregate %s: %s takes one field", name, m[1])
	case m[1] == "median":
		a.Q = 0.5
	}
	switch {
	case kind == AggCount && a.Field != "":
		return Agg{}, fmt.Errorf("aggregate %s: count() counts records and takes no field", name)
	case kind != AggCount && a.Field == "":
		return Agg{}, fmt.Errorf("aggregate %s: %s needs a field, e.g. %s(value)", name, m[1], m[1])
	}
	return a, nil
}

// WindowStep is a keyed event-time window with built-in aggregates: the
// keyed step of the engine.
type WindowStep struct {
	StepName string
	// Session windows when Gap > 0; else tumbling when Slide is 0, sliding
	// otherwise. Times in milliseconds.
	Size, Slide, Offset, Gap int64
	// Count > 0 makes a global window that fires every Count records.
	Count int64
	// ProcessingTime assigns records to tumbling (or sliding) windows by
	// the time they reach the window (Now), and fires them as the clock
	// passes their end: no watermark, no lateness. Default: event time.
	ProcessingTime bool
	// Now is the processing-time clock; tests inject one. Default time.Now.
	Now func() time.Time
	// Aggregate, when set, is a Wasm module (loaded with
	// plugin.Aggregate) whose accumulator the host keeps per window; the
	// fields of its finished JSON object join each result.
	Aggregate *plugin.Module
	Lateness  int64
	// KeyName is the result's field for the key (default "key").
	KeyName string
	Aggs    []Agg
	// LateOutput is set when the `late` port has an output; otherwise late
	// records are counted and dropped.
	LateOutput bool
	// EarlyEveryMs and EarlyEveryRecords select emission "updates" (early
	// results, marked "early": true; every result then has the field).
	EarlyEveryMs, EarlyEveryRecords int64

	fields  []string
	need    window.Need
	sketch  []uint8 // per field: window.SketchDistinct, SketchQuantiles
	numeric []bool  // per field: some aggregate needs it to be a number
	assign  func(dst []window.Window, ts int64) []window.Window
}

// Validate checks the step and prepares it.
func (s *WindowStep) Validate() error {
	if s.KeyName == "" {
		s.KeyName = "key"
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.ProcessingTime && (s.Gap != 0 || s.Count != 0 || s.Lateness != 0) {
		return fmt.Errorf("processing-time windows are tumbling or sliding, without lateness")
	}
	if s.Lateness < 0 {
		return fmt.Errorf("allowed_lateness is negative")
	}
	switch {
	case s.Count > 0:
		if s.Size != 0 || s.Slide != 0 || s.Gap != 0 || s.Lateness != 0 || s.EarlyEveryMs != 0 || s.EarlyEveryRecords != 0 {
			return fmt.Errorf("a global window has a count only")
		}
	case s.Count < 0:
		return fmt.Errorf("global window count %d is negative", s.Count)
	case s.Gap > 0:
		if s.Size != 0 || s.Slide != 0 || s.Offset != 0 {
			return fmt.Errorf("a session window has a gap, not a size, slide or offset")
		}
	case s.Gap < 0:
		return fmt.Errorf("session gap %d ms is negative", s.Gap)
	case s.Slide == 0:
		tw := window.Tumbling{Size: s.Size, Offset: s.Offset}
		if err := tw.Validate(); err != nil {
			return err
		}
		s.assign = func(dst []window.Window, ts int64) []window.Window { return append(dst, tw.Assign(ts)) }
	default:
		sw := window.Sliding{Size: s.Size, Slide: s.Slide, Offset: s.Offset}
		if err := sw.Validate(); err != nil {
			return err
		}
		s.assign = sw.Assign
	}
	seen := map[string]bool{s.KeyName: true, "window_start": true, "window_end": true, "update": true, "early": true}
	idx := map[string]int{}
	s.fields, s.need, s.sketch, s.numeric = nil, 0, nil, nil
	for i := range s.Aggs {
		a := &s.Aggs[i]
		if a.Name == "count" && a.Kind == AggCount {
			continue // the record count is always in the result
		}
		if seen[a.Name] || a.Name == "count" {
			return fmt.Errorf("aggregate name %q is used twice or is reserved (%s, window_start, window_end, count, update, early)", a.Name, s.KeyName)
		}
		seen[a.Name] = true
		if a.Kind == AggCount {
			continue
		}
		fi, ok := idx[a.Field]
		if !ok {
			fi = len(s.fields)
			idx[a.Field] = fi
			s.fields = append(s.fields, a.Field)
			s.sketch = append(s.sketch, 0)
			s.numeric = append(s.numeric, false)
		}
		a.field = fi
		switch a.Kind {
		case AggDistinct:
			s.sketch[fi] |= window.SketchDistinct
		case AggQuantile:
			s.sketch[fi] |= window.SketchQuantiles
			s.numeric[fi] = true
		default:
			s.numeric[fi] = true
		}
		switch a.Kind {
		case AggMin, AggMax:
			s.need |= window.NeedMinMax
		case AggVarPop, AggVarSamp, AggStdPop, AggStdSamp:
			s.need |= window.NeedMoments
		case AggFirst, AggLast:
			s.need |= window.NeedFirstLast
		}
	}
	if len(s.fields) > 64 {
		return fmt.Errorf("%d fields aggregated; at most 64", len(s.fields))
	}
	any := false
	for _, k := range s.sketch {
		any = any || k != 0
	}
	if !any {
		s.sketch = nil
	}
	return nil
}

func (s *WindowStep) Name() string { return s.StepName }

// Ports is "late" when a late output is configured.
func (s *WindowStep) Ports() []string {
	if s.LateOutput {
		return []string{"late"}
	}
	return nil
}

// NewWorker makes one keyed worker's operator.
func (s *WindowStep) NewWorker(context.Context) (engine.KeyedWorker, error) {
	w := &windowWorker{s: s, vals: make([]float64, len(s.fields)), hashes: make([]uint64, len(s.fields))}
	w.emitFn = w.emit
	var touch func(*window.AccBox)
	if s.Aggregate != nil {
		in, err := s.Aggregate.Instance(context.Background())
		if err != nil {
			return nil, err
		}
		w.agg = newWasmAgg(in, s.Aggregate.AccSize())
		touch = w.agg.touch
	}
	if s.Count > 0 {
		op := &window.CountOperator{Count: s.Count, Fields: len(s.fields), Need: s.need | window.NeedMoments, Sketch: s.sketch, Hashes: w.hashes,
			Touch: touch}
		w.op, w.hashed = op, &op.Hashed
	} else if s.Gap > 0 {
		op := &window.SessionOperator{Gap: s.Gap, Lateness: s.Lateness, Fields: len(s.fields), Need: s.need | window.NeedMoments,
			Sketch: s.sketch, Hashes: w.hashes, EveryMs: s.EarlyEveryMs, EveryRecords: s.EarlyEveryRecords, Touch: touch}
		if w.agg != nil {
			op.MergeBoxes = w.agg.merge
		}
		w.op, w.hashed = op, &op.Hashed
	} else {
		op := &window.Operator{Assign: s.assign, Lateness: s.Lateness, Fields: len(s.fields), Need: s.need,
			Sketch: s.sketch, Hashes: w.hashes, EveryMs: s.EarlyEveryMs, EveryRecords: s.EarlyEveryRecords, Touch: touch}
		w.op, w.hashed = op, &op.Hashed
	}
	if len(s.fields) > 0 {
		fr, err := newFieldReader(s.fields)
		if err != nil {
			return nil, err
		}
		w.fr = fr
	}
	return w, nil
}

// windowOp is what the window operators share.
type windowOp interface {
	Add(key []byte, ts int64, vals []float64, present uint64, emit func(*window.Result)) window.Outcome
	AdvanceN(wm int64, max int, emit func(*window.Result)) bool
	Open() int
}

// maxResults is how many results one Advance call puts in a batch: a
// firing of many windows leaves as several batches of bounded size.
const maxResults = 2048

type windowWorker struct {
	s      *WindowStep
	op     windowOp
	fr     *fieldReader
	vals   []float64
	hashes []uint64 // the operator's Hashes
	hashed *uint64  // the operator's Hashed
	text   []byte
	out    *record.Batch // where emit writes
	// emitFn is w.emit, made once: a method value passed through an
	// interface call would be allocated on every call.
	emitFn  func(*window.Result)
	agg     *wasmAgg // with a Wasm aggregate
	looked  []window.Looked
	lastWin window.Window
	winText []byte // the result text for lastWin's bounds
}

func (w *windowWorker) Close(ctx context.Context) error {
	if w.agg != nil {
		return w.agg.in.Close(ctx)
	}
	return nil
}

// Open is the number of (key, window) states held (for tests and metrics).
func (w *windowWorker) Open() int { return w.op.Open() }

func (w *windowWorker) Add(ctx context.Context, b *record.Batch, res *plugin.Result) error {
	w.out = &res.Ports[0]
	if w.agg != nil {
		w.agg.adding = true
	}
	// With the aligned operator, look up every key of the batch first:
	// independent lookups overlap their cache misses.
	aligned, _ := w.op.(*window.Operator)
	if aligned != nil && !w.s.ProcessingTime {
		w.looked = w.looked[:0]
		for i := range b.Records {
			w.looked = append(w.looked, aligned.Lookup(b.Records[i].Key))
		}
	}
	for i := range b.Records {
		r := &b.Records[i]
		if w.agg != nil {
			w.agg.cur = r
		}
		var present uint64
		if w.fr != nil {
			vals, ok := w.fr.read(r.Value)
			if !ok {
				res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: "window: the record is not a JSON object"})
				continue
			}
			bad := ""
			var hashed uint64
			for f := range vals {
				if x, ok := vals[f].number(); ok {
					w.vals[f] = x
					present |= 1 << f
				} else if t := vals[f].tag; t > 1 && w.s.numeric[f] { // neither missing nor null
					bad = fmt.Sprintf("window: field %q is %s, not a number", w.s.fields[f], vals[f].kindName())
					break
				}
				if w.s.sketch != nil && w.s.sketch[f]&window.SketchDistinct != 0 && vals[f].tag > 1 {
					w.text, _ = vals[f].text(w.text[:0])
					w.hashes[f] = window.KeyHash(w.text)
					hashed |= 1 << f
				}
			}
			*w.hashed = hashed
			if bad != "" {
				res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: bad})
				continue
			}
		}
		ts := r.Time
		if w.s.ProcessingTime {
			ts = w.s.Now().UnixMilli()
		}
		var out window.Outcome
		if aligned != nil && !w.s.ProcessingTime {
			out = aligned.AddLooked(w.looked[i], r.Key, ts, w.vals, present, w.emitFn)
		} else {
			out = w.op.Add(r.Key, ts, w.vals, present, w.emitFn)
		}
		switch out {
		case window.Late:
			if w.s.LateOutput {
				res.Ports[1].Records = append(res.Ports[1].Records, *r)
			} else {
				res.Dropped++
			}
		case window.NoWindow:
			res.Dropped++
		}
	}
	if w.agg != nil {
		w.agg.add(ctx)
		w.agg.adding = false
		w.agg.finish(ctx)
	}
	return nil
}

func (w *windowWorker) Advance(ctx context.Context, wm int64, res *plugin.Result) (bool, error) {
	if w.s.ProcessingTime && wm != window.EndOfTime {
		return true, nil // the clock fires these windows (AdvanceProc); the end of input all of them
	}
	w.out = &res.Ports[0]
	done := w.op.AdvanceN(wm, maxResults, w.emitFn)
	if w.agg != nil {
		w.agg.finish(ctx)
	}
	return done, nil
}

// AdvanceProc fires processing-time windows that end by now (unix ms).
func (w *windowWorker) AdvanceProc(ctx context.Context, now int64, res *plugin.Result) (bool, error) {
	if !w.s.ProcessingTime {
		return true, nil
	}
	w.out = &res.Ports[0]
	done := w.op.AdvanceN(now-1, maxResults, w.emitFn)
	if w.agg != nil {
		w.agg.finish(ctx)
	}
	return done, nil
}

// resultPool recycles the memory of written result batches: large arrays
// that would otherwise be zeroed, traced and swept at every firing.
var resultPool sync.Pool

type resultBufs struct {
	recs  []record.Record
	arena []byte
}

func recycleResults(b *record.Batch) {
	if cap(b.Records) < maxResults {
		return
	}
	clear(b.Records)
	resultPool.Put(&resultBufs{recs: b.Records[:0], arena: b.Arena[:0]})
	b.Records, b.Arena, b.Recycle = nil, nil, nil
}

// resultSize estimates the bytes of one result (for sizing the arena).
func (s *WindowStep) resultSize() int {
	return 96 + len(s.KeyName) + 24*len(s.Aggs)
}

// emit appends a window result as a JSON record.
func (w *windowWorker) emit(r *window.Result) {
	s := w.s
	out := w.out
	if cap(out.Records) == 0 {
		// Sized for a full Advance (firings come in bulk), and recycled
		// once written.
		if rb, ok := resultPool.Get().(*resultBufs); ok {
			out.Records, out.Arena = rb.recs, rb.arena
		} else {
			out.Records = make([]record.Record, 0, maxResults)
			out.Arena = make([]byte, 0, maxResults*s.resultSize())
		}
		out.Recycle = recycleResults
	}
	kstart := len(out.Arena)
	b := append(out.Arena, r.Key...)
	start := len(b)
	b = append(b, '{', '"')
	b = append(b, s.KeyName...)
	b = append(b, '"', ':')
	b = appendJSONString(b, r.Key)
	if r.Window != w.lastWin || w.winText == nil {
		// Firings come in runs of the same window: format its bounds once.
		w.lastWin = r.Window
		w.winText = append(w.winText[:0], `,"window_start":`...)
		w.winText = strconv.AppendInt(w.winText, r.Window.Start, 10)
		w.winText = append(w.winText, `,"window_end":`...)
		w.winText = strconv.AppendInt(w.winText, r.Window.End, 10)
		w.winText = append(w.winText, `,"count":`...)
	}
	b = append(b, w.winText...)
	b = strconv.AppendInt(b, r.N, 10)
	for i := range s.Aggs {
		a := &s.Aggs[i]
		if a.Kind == AggCount && a.Name == "count" {
			continue
		}
		b = append(b, ',', '"')
		b = append(b, a.Name...)
		b = append(b, '"', ':')
		if a.Kind == AggCount {
			b = strconv.AppendInt(b, r.N, 10)
			continue
		}
		b = appendAgg(b, a, r, s.need)
	}
	b = append(b, `,"update":`...)
	b = strconv.AppendBool(b, r.Update)
	if s.EarlyEveryMs > 0 || s.EarlyEveryRecords > 0 {
		b = append(b, `,"early":`...)
		b = strconv.AppendBool(b, r.Early)
	}
	b = append(b, '}')
	out.Arena = b
	out.Records = append(out.Records, record.Record{
		Key: b[kstart:start:start], Value: b[start:len(b):len(b)],
		Time: r.Window.End - 1, Flags: record.HasKey | record.HasTime,
	})
	if w.agg != nil {
		w.agg.pend(out, len(out.Records)-1, r.Box)
	}
}

func appendAgg(b []byte, a *Agg, r *window.Result, need window.Need) []byte {
	m := &r.M[a.field]
	var x float64
	switch a.Kind {
	case AggSum:
		if m.N == 0 {
			return append(b, "null"...)
		}
		x = m.Total()
	case AggMin:
		x = nanIfEmpty(m.N, m.Min)
	case AggMax:
		x = nanIfEmpty(m.N, m.Max)
	case AggMean:
		if need&window.NeedMoments != 0 {
			x = nanIfEmpty(m.N, m.Mean) // Welford's, kept anyway
		} else {
			x = m.Avg()
		}
	case AggVarPop:
		x = m.VariancePop()
	case AggVarSamp:
		x = m.VarianceSample()
	case AggStdPop:
		x = m.StddevPop()
	case AggStdSamp:
		x = m.StddevSample()
	case AggDistinct:
		return strconv.AppendInt(b, int64(r.SK[a.field].D.Estimate()), 10)
	case AggQuantile:
		x = r.SK[a.field].Q.Quantile(a.Q)
	case AggFirst, AggLast:
		fl := &r.FL[a.field]
		if !fl.Set {
			return append(b, "null"...)
		}
		x = fl.First
		if a.Kind == AggLast {
			x = fl.Last
		}
	}
	return appendFloat(b, x)
}

func nanIfEmpty(n int64, x float64) float64 {
	if n == 0 {
		return math.NaN()
	}
	return x
}

// appendFloat writes x as wsp writes numbers in results (hostabi's
// AppendJSONFloat: as encoding/json does, NaN and infinities as null), the
// same for built-in and Wasm aggregates.
func appendFloat(b []byte, x float64) []byte { return hostabi.AppendJSONFloat(b, x) }

// appendJSONString writes s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
