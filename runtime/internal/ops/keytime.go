package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// Source says where a key or an event time comes from: exactly one of a
// JSON field path, a Bloblang query, or (event time only) a metadata key.
type Source struct {
	Field    string
	Bloblang string
	Metadata string
}

func (s Source) describe() string {
	switch {
	case s.Field != "":
		return fmt.Sprintf("field %q", s.Field)
	case s.Bloblang != "":
		return "bloblang"
	default:
		return fmt.Sprintf("metadata %q", s.Metadata)
	}
}

// TimeFormat says how an event-time value is read.
type TimeFormat string

// Event-time formats. Auto reads numbers as epoch milliseconds and strings
// as RFC 3339.
const (
	TimeAuto    TimeFormat = "auto"
	TimeEpochMs TimeFormat = "epoch_ms"
	TimeEpochS  TimeFormat = "epoch_s"
	TimeRFC3339 TimeFormat = "rfc3339"
)

// KeyStep sets each record's key (record.HasKey). A record whose key cannot
// be read goes to the error output with the reason.
type KeyStep struct {
	StepName string
	From     Source
}

// TimeStep sets each record's event time (record.HasTime). A record whose
// time cannot be read goes to the error output with the reason; it is never
// given a made-up time.
type TimeStep struct {
	StepName string
	From     Source
	Format   TimeFormat
}

func (s *KeyStep) Name() string    { return s.StepName }
func (s *KeyStep) Ports() []string { return nil }
func (s *TimeStep) Name() string   { return s.StepName }
func (s *TimeStep) Ports() []string {
	return nil
}

// Validate checks the step's settings.
func (s *KeyStep) Validate() error { return validSource(s.From, false) }

// Validate checks the step's settings.
func (s *TimeStep) Validate() error {
	switch s.Format {
	case "":
		s.Format = TimeAuto
	case TimeAuto, TimeEpochMs, TimeEpochS, TimeRFC3339:
	default:
		return fmt.Errorf("format %q: want auto, epoch_ms, epoch_s or rfc3339", s.Format)
	}
	return validSource(s.From, true)
}

func validSource(s Source, meta bool) error {
	n := 0
	for _, v := range []string{s.Field, s.Bloblang, s.Metadata} {
		if v != "" {
			n++
		}
	}
	want := "field or bloblang"
	if meta {
		want = "field, bloblang or metadata"
	}
	if n != 1 || (!meta && s.Metadata != "") {
		return fmt.Errorf("set exactly one of %s", want)
	}
	if s.Bloblang != "" {
		if _, err := bloblang.Parse(s.Bloblang); err != nil {
			return fmt.Errorf("bloblang: %w", err)
		}
	}
	return nil
}

// reader reads one value per record from a Source.
type reader struct {
	src  Source
	fr   *fieldReader
	blob *bloblang.Executor
}

func newReader(src Source) (*reader, error) {
	r := &reader{src: src}
	var err error
	switch {
	case src.Field != "":
		r.fr, err = newFieldReader([]string{src.Field})
	case src.Bloblang != "":
		r.blob, err = bloblang.Parse(src.Bloblang)
	}
	return r, err
}

// read returns the value for r as a field value (bloblang results and
// metadata are converted), or a reason it has none.
func (rd *reader) read(rec *record.Record) (value, string) {
	switch {
	case rd.fr != nil:
		vals, ok := rd.fr.read(rec.Value)
		if !ok {
			return value{}, "the record is not a JSON object"
		}
		if vals[0].tag == hostabi.FieldMissing {
			return value{}, fmt.Sprintf("field %q is missing", rd.src.Field)
		}
		return vals[0], ""
	case rd.blob != nil:
		var doc any
		if err := json.Unmarshal(rec.Value, &doc); err != nil {
			doc = string(rec.Value)
		}
		res, err := rd.blob.Query(doc)
		if err != nil {
			return value{}, "bloblang: " + err.Error()
		}
		switch v := res.(type) {
		case string:
			return value{tag: hostabi.FieldString, b: []byte(v)}, ""
		case []byte:
			return value{tag: hostabi.FieldString, b: v}, ""
		case int64:
			return value{tag: hostabi.FieldInt, i: v}, ""
		case int:
			return value{tag: hostabi.FieldInt, i: int64(v)}, ""
		case uint64:
			return value{tag: hostabi.FieldFloat, f: float64(v)}, ""
		case float64:
			return value{tag: hostabi.FieldFloat, f: v}, ""
		case json.Number:
			if i, err := v.Int64(); err == nil {
				return value{tag: hostabi.FieldInt, i: i}, ""
			}
			f, _ := v.Float64()
			return value{tag: hostabi.FieldFloat, f: f}, ""
		case bool:
			if v {
				return value{tag: hostabi.FieldTrue}, ""
			}
			return value{tag: hostabi.FieldFalse}, ""
		case time.Time:
			return value{tag: hostabi.FieldInt, i: v.UnixMilli(), b: timeMarker}, ""
		case nil:
			return value{tag: hostabi.FieldNull}, ""
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return value{}, "bloblang: result cannot be used: " + err.Error()
			}
			return value{tag: hostabi.FieldRaw, b: b}, ""
		}
	default:
		v, ok := rec.MetaValue(rd.src.Metadata)
		if !ok {
			return value{}, fmt.Sprintf("metadata %q is missing", rd.src.Metadata)
		}
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return value{tag: hostabi.FieldInt, i: i}, ""
		}
		return value{tag: hostabi.FieldString, b: v}, ""
	}
}

// timeMarker flags a Bloblang timestamp result: already milliseconds.
var timeMarker = []byte{}

func (s *KeyStep) NewWorker(context.Context) (engine.StepWorker, error) {
	rd, err := newReader(s.From)
	if err != nil {
		return nil, err
	}
	return &keyWorker{s: s, rd: rd}, nil
}

func (s *TimeStep) NewWorker(context.Context) (engine.StepWorker, error) {
	rd, err := newReader(s.From)
	if err != nil {
		return nil, err
	}
	return &timeWorker{s: s, rd: rd}, nil
}

type keyWorker struct {
	s  *KeyStep
	rd *reader
}

func (w *keyWorker) Close(context.Context) error { return nil }

func (w *keyWorker) Process(_ context.Context, in *record.Batch) (*plugin.Result, error) {
	res := &plugin.Result{Ports: []record.Batch{{Source: in.Source}}}
	out := &res.Ports[0]
	out.Records = make([]record.Record, 0, len(in.Records))
	var buf []byte
	for i := range in.Records {
		r := in.Records[i]
		v, reason := w.rd.read(&r)
		if reason == "" {
			var ok bool
			if buf, ok = v.text(buf[:0]); !ok {
				reason = fmt.Sprintf("key %s is %s", w.s.From.describe(), v.kindName())
			}
		}
		if reason != "" {
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: "key: " + reason})
			continue
		}
		r.Key = out.CopyBytes(buf)
		r.Flags |= record.HasKey
		out.Records = append(out.Records, r)
	}
	return res, nil
}

type timeWorker struct {
	s  *TimeStep
	rd *reader
}

func (w *timeWorker) Close(context.Context) error { return nil }

func (w *timeWorker) Process(_ context.Context, in *record.Batch) (*plugin.Result, error) {
	res := &plugin.Result{Ports: []record.Batch{{Source: in.Source}}}
	out := &res.Ports[0]
	out.Records = make([]record.Record, 0, len(in.Records))
	for i := range in.Records {
		r := in.Records[i]
		v, reason := w.rd.read(&r)
		var t int64
		if reason == "" {
			t, reason = w.s.toMillis(&v)
		}
		if reason != "" {
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: "event time: " + reason})
			continue
		}
		r.Time = t
		r.Flags |= record.HasTime
		out.Records = append(out.Records, r)
	}
	return res, nil
}

// maxMillis bounds epoch values so the conversion cannot overflow.
const maxMillis = math.MaxInt64 / 1000

// toMillis converts a value to epoch milliseconds, or says why it cannot.
func (s *TimeStep) toMillis(v *value) (int64, string) {
	what := s.From.describe()
	switch v.tag {
	case hostabi.FieldInt, hostabi.FieldFloat:
		if v.b != nil && v.tag == hostabi.FieldInt { // a Bloblang timestamp
			return v.i, ""
		}
		if s.Format == TimeRFC3339 {
			return 0, fmt.Sprintf("%s is a number, the format is rfc3339", what)
		}
		f, _ := v.number()
		if s.Format == TimeEpochS {
			f *= 1000
		}
		if math.IsNaN(f) || f >= maxMillis*1000 || f <= -maxMillis*1000 {
			return 0, fmt.Sprintf("%s = %g is out of range", what, f)
		}
		if v.tag == hostabi.FieldInt && s.Format != TimeEpochS {
			return v.i, ""
		}
		return int64(math.Floor(f)), ""
	case hostabi.FieldString:
		if s.Format == TimeEpochMs || s.Format == TimeEpochS {
			return 0, fmt.Sprintf("%s is a string, the format is %s", what, s.Format)
		}
		t, err := time.Parse(time.RFC3339Nano, string(v.b))
		if err != nil {
			return 0, fmt.Sprintf("%s = %q is not an RFC 3339 time", what, v.b)
		}
		return t.UnixMilli(), ""
	}
	return 0, fmt.Sprintf("%s is %s, not a time", what, v.kindName())
}

// TimeRangeStep sends records whose event time is implausible (semantics.md,
// "Watermarks") to the error output, so one record far in the future cannot
// drag the watermark forward and make everything after it late. The range
// is relative to the processing clock, read once per batch: a record more
// than MaxAhead ahead of it, or (MaxBehind > 0) more than MaxBehind behind
// it, fails with both times in the reason. It runs right after an
// event_time step that sets it (max_ahead, max_behind).
type TimeRangeStep struct {
	StepName            string
	MaxAhead, MaxBehind time.Duration    // 0: no bound
	Now                 func() time.Time // default time.Now
}

func (s *TimeRangeStep) Name() string    { return s.StepName }
func (s *TimeRangeStep) Ports() []string { return nil }

// Validate checks the bounds and sets the clock.
func (s *TimeRangeStep) Validate() error {
	if s.MaxAhead < 0 || s.MaxBehind < 0 {
		return fmt.Errorf("max_ahead and max_behind must be positive")
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return nil
}

func (s *TimeRangeStep) NewWorker(context.Context) (engine.StepWorker, error) {
	return timeRangeWorker{s}, nil
}

type timeRangeWorker struct{ s *TimeRangeStep }

func (timeRangeWorker) Close(context.Context) error { return nil }

func (w timeRangeWorker) Process(_ context.Context, in *record.Batch) (*plugin.Result, error) {
	s := w.s
	now := s.Now().UnixMilli()
	hi, lo := int64(math.MaxInt64), int64(math.MinInt64)
	if s.MaxAhead > 0 {
		hi = now + s.MaxAhead.Milliseconds()
	}
	if s.MaxBehind > 0 {
		lo = now - s.MaxBehind.Milliseconds()
	}
	res := &plugin.Result{Ports: []record.Batch{{Source: in.Source}}}
	out := &res.Ports[0]
	out.Records = make([]record.Record, 0, len(in.Records))
	for i := range in.Records {
		r := &in.Records[i]
		if r.Flags&record.HasTime != 0 && (r.Time > hi || r.Time < lo) {
			how, bound := "ahead of", s.MaxAhead
			if r.Time < lo {
				how, bound = "behind", s.MaxBehind
			}
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: fmt.Sprintf(
				"event time: %s is more than %s %s the processing clock (%s)",
				time.UnixMilli(r.Time).UTC().Format(time.RFC3339Nano), bound, how, time.UnixMilli(now).UTC().Format(time.RFC3339Nano))})
			continue
		}
		out.Records = append(out.Records, *r)
	}
	return res, nil
}
