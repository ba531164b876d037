package ops

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// TSKind is a time-series helper.
type TSKind int

// The time-series helpers: per key, over one numeric field, each record
// gets the helper's value added as a field.
const (
	TSCumSum    TSKind = iota // running sum of the key's values
	TSMovingAvg               // mean over the trailing window (t - W, t]
	TSEWMA                    // exponentially weighted mean: m = a x + (1 - a) m'
	TSZScore                  // (x - mean) / stddev of the trailing window before x
	TSAnomaly                 // |z-score| > threshold
)

// TSOutput is one field a time-series step adds: Name = kind(args).
type TSOutput struct {
	Name      string
	Kind      TSKind
	Window    int64   // ms: moving_avg, zscore, anomaly
	Alpha     float64 // ewma
	Threshold float64 // anomaly
	win       int     // index of the trailing window state
}

var tsRe = regexp.MustCompile(`^\s*([a-z_]+)\s*\(\s*([^()]*?)\s*\)\s*$`)

// ParseTSOutput reads `cumsum()`, `moving_avg(30s)`, `ewma(0.1)`,
// `zscore(60s)` or `anomaly(60s, 3)`.
func ParseTSOutput(name, expr string) (TSOutput, error) {
	m := tsRe.FindStringSubmatch(expr)
	bad := func(why string) (TSOutput, error) {
		return TSOutput{}, fmt.Errorf("time series output %s: %q: %s", name, expr, why)
	}
	if m == nil {
		return bad("want cumsum(), moving_avg(window), ewma(alpha), zscore(window) or anomaly(window, threshold)")
	}
	var args []string
	if m[2] != "" {
		for _, a := range strings.Split(m[2], ",") {
			args = append(args, strings.TrimSpace(a))
		}
	}
	o := TSOutput{Name: name}
	dur := func(s string) (int64, error) {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d%time.Millisecond != 0 {
			return 0, fmt.Errorf("window %q: want a positive duration in whole milliseconds", s)
		}
		return d.Milliseconds(), nil
	}
	var err error
	switch m[1] {
	case "cumsum":
		if len(args) != 0 {
			return bad("cumsum takes no argument")
		}
		o.Kind = TSCumSum
	case "moving_avg", "zscore":
		if len(args) != 1 {
			return bad(m[1] + " takes a window, e.g. " + m[1] + "(30s)")
		}
		o.Kind = map[string]TSKind{"moving_avg": TSMovingAvg, "zscore": TSZScore}[m[1]]
		if o.Window, err = dur(args[0]); err != nil {
			return bad(err.Error())
		}
	case "ewma":
		if len(args) != 1 {
			return bad("ewma takes alpha, e.g. ewma(0.1)")
		}
		o.Kind = TSEWMA
		if o.Alpha, err = strconv.ParseFloat(args[0], 64); err != nil || o.Alpha <= 0 || o.Alpha > 1 {
			return bad("alpha must be in (0, 1]")
		}
	case "anomaly":
		if len(args) != 2 {
			return bad("anomaly takes a window and a threshold in standard deviations, e.g. anomaly(60s, 3)")
		}
		o.Kind = TSAnomaly
		if o.Window, err = dur(args[0]); err != nil {
			return bad(err.Error())
		}
		if o.Threshold, err = strconv.ParseFloat(args[1], 64); err != nil || o.Threshold <= 0 {
			return bad("the threshold must be a positive number")
		}
	default:
		return bad("unknown helper " + m[1])
	}
	return o, nil
}

// TimeSeriesStep is a keyed step that adds per-key running statistics of
// one numeric field to each record (a JSON object), at once: cumulative
// sum, moving average over a trailing event-time window, exponentially
// weighted mean, z-score against the trailing window, and an anomaly flag.
//
// Records are taken per key in arrival order (input order). The trailing
// window of a record at time t holds the key's earlier records with times
// in (t - W, t], evicted oldest first: exact for data in time order per
// key; with out-of-order data an evicted record is the one that arrived
// first. A record whose field is missing or not a number goes to the error
// output; the state of a key lives as long as the run (until checkpoints
// and state time-to-live exist).
type TimeSeriesStep struct {
	StepName string
	Field    string
	Outputs  []TSOutput
	windows  []int64 // distinct trailing windows
}

// Validate checks the step and prepares it.
func (s *TimeSeriesStep) Validate() error {
	if s.Field == "" {
		return fmt.Errorf("timeseries.field is required")
	}
	if len(s.Outputs) == 0 {
		return fmt.Errorf("timeseries.outputs is empty")
	}
	s.windows = nil
	seen := map[string]bool{}
	for i := range s.Outputs {
		o := &s.Outputs[i]
		if seen[o.Name] || o.Name == "" {
			return fmt.Errorf("output name %q is empty or used twice", o.Name)
		}
		seen[o.Name] = true
		if o.Window > 0 {
			o.win = -1
			for j, w := range s.windows {
				if w == o.Window {
					o.win = j
				}
			}
			if o.win < 0 {
				o.win = len(s.windows)
				s.windows = append(s.windows, o.Window)
			}
		}
	}
	return nil
}

func (s *TimeSeriesStep) Name() string    { return s.StepName }
func (s *TimeSeriesStep) Ports() []string { return nil }

// NewWorker makes one keyed worker's state.
func (s *TimeSeriesStep) NewWorker(context.Context) (engine.KeyedWorker, error) {
	fr, err := newFieldReader([]string{s.Field})
	if err != nil {
		return nil, err
	}
	return &tsWorker{s: s, fr: fr, keys: map[string]*tsState{}}, nil
}

type tsPoint struct {
	t int64
	v float64
}

// trailing is a key's trailing window: its points in arrival order and
// their moments (with removal).
type trailing struct {
	pts   []tsPoint
	head  int
	n     float64
	mean  float64
	m2    float64
	epoch int // removals since the moments were last recomputed exactly
}

func (w *trailing) add(p tsPoint) {
	w.pts = append(w.pts, p)
	w.n++
	d := p.v - w.mean
	w.mean += d / w.n
	w.m2 += d * (p.v - w.mean)
}

func (w *trailing) evict(before int64) {
	for w.head < len(w.pts) && w.pts[w.head].t <= before {
		x := w.pts[w.head].v
		w.head++
		if w.n <= 1 {
			w.n, w.mean, w.m2 = 0, 0, 0
			continue
		}
		d := x - w.mean
		w.n--
		w.mean -= d / w.n
		w.m2 -= d * (x - w.mean)
		w.epoch++
	}
	if w.head > 64 && w.head*2 > len(w.pts) {
		n := copy(w.pts, w.pts[w.head:])
		w.pts, w.head = w.pts[:n], 0
	}
	if w.epoch > 1024 { // removal drifts: recompute from the points now and then
		w.epoch, w.n, w.mean, w.m2 = 0, 0, 0, 0
		for _, p := range w.pts[w.head:] {
			w.n++
			d := p.v - w.mean
			w.mean += d / w.n
			w.m2 += d * (p.v - w.mean)
		}
	}
	if w.m2 < 0 {
		w.m2 = 0
	}
}

type tsState struct {
	sum, comp float64   // Neumaier-compensated running sum
	ewma      []float64 // per output (only EWMA outputs use theirs)
	started   bool
	wins      []trailing
}

// plus returns the compensated sum with x added, and its new compensation.
func (st *tsState) plus(x float64) (sum, comp float64) {
	t := st.sum + x
	c := st.comp
	if math.Abs(st.sum) >= math.Abs(x) {
		c += (st.sum - t) + x
	} else {
		c += (x - t) + st.sum
	}
	return t, c
}

type tsWorker struct {
	s    *TimeSeriesStep
	fr   *fieldReader
	keys map[string]*tsState
}

func (w *tsWorker) Close(context.Context) error { return nil }

func (w *tsWorker) Advance(context.Context, int64, *plugin.Result) (bool, error) { return true, nil }

func (w *tsWorker) Add(_ context.Context, b *record.Batch, res *plugin.Result) error {
	out := &res.Ports[0]
	out.Records = make([]record.Record, 0, len(b.Records))
	for i := range b.Records {
		r := b.Records[i]
		vals, ok := w.fr.read(r.Value)
		if !ok {
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: "timeseries: the record is not a JSON object"})
			continue
		}
		x, ok := vals[0].number()
		if !ok {
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: fmt.Sprintf("timeseries: field %q is %s, not a number", w.s.Field, vals[0].kindName())})
			continue
		}
		st := w.keys[string(r.Key)]
		if st == nil {
			st = &tsState{wins: make([]trailing, len(w.s.windows)), ewma: make([]float64, len(w.s.Outputs))}
			w.keys[string(r.Key)] = st
		}
		// Statistics of the trailing windows before x (for z-scores).
		for j := range st.wins {
			st.wins[j].evict(r.Time - w.s.windows[j])
		}
		start := len(out.Arena)
		v := trimObject(r.Value)
		buf := append(out.Arena, v[:len(v)-1]...)
		sep := len(v) > 2 // the object has fields already
		for oi, o := range w.s.Outputs {
			if sep {
				buf = append(buf, ',')
			}
			sep = true
			buf = append(buf, '"')
			buf = append(buf, o.Name...)
			buf = append(buf, '"', ':')
			switch o.Kind {
			case TSCumSum:
				sum, comp := st.plus(x)
				buf = appendFloat(buf, sum+comp)
			case TSEWMA:
				m := x
				if st.started {
					m = o.Alpha*x + (1-o.Alpha)*st.ewma[oi]
				}
				buf = appendFloat(buf, m)
			case TSMovingAvg:
				tw := &st.wins[o.win]
				buf = appendFloat(buf, (tw.mean*tw.n+x)/(tw.n+1))
			case TSZScore, TSAnomaly:
				tw := &st.wins[o.win]
				z := math.NaN()
				if tw.n >= 2 {
					if sd := math.Sqrt(tw.m2 / tw.n); sd > 0 {
						z = (x - tw.mean) / sd
					}
				}
				if o.Kind == TSZScore {
					buf = appendFloat(buf, z)
				} else {
					buf = strconv.AppendBool(buf, !math.IsNaN(z) && math.Abs(z) > o.Threshold)
				}
			}
		}
		buf = append(buf, '}')
		out.Arena = buf
		r.Value = buf[start:len(buf):len(buf)]
		out.Records = append(out.Records, r)
		// Then fold x into the state.
		st.sum, st.comp = st.plus(x)
		for oi, o := range w.s.Outputs {
			if o.Kind == TSEWMA {
				if st.started {
					st.ewma[oi] = o.Alpha*x + (1-o.Alpha)*st.ewma[oi]
				} else {
					st.ewma[oi] = x
				}
			}
		}
		st.started = true
		for j := range st.wins {
			st.wins[j].add(tsPoint{r.Time, x})
		}
	}
	return nil
}

// trimObject strips white space around a JSON object's text (the field
// reader has checked it is one).
func trimObject(v []byte) []byte {
	i, j := 0, len(v)
	for i < j && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n') {
		i++
	}
	for j > i && (v[j-1] == ' ' || v[j-1] == '\t' || v[j-1] == '\r' || v[j-1] == '\n') {
		j--
	}
	v = v[i:j]
	// "{ }" has no fields: treat as "{}".
	k := 1
	for k < len(v)-1 && (v[k] == ' ' || v[k] == '\t' || v[k] == '\r' || v[k] == '\n') {
		k++
	}
	if k == len(v)-1 {
		return []byte("{}")
	}
	return v
}
