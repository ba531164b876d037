// Command watchdog is the sensor example's keyed-state plugin: per sensor it
// keeps a running baseline of the readings' `field` (default "value") (count, mean and variance, by
// Welford's method) in keyed state, and raises two kinds of alerts:
//
//   - "anomaly": a reading more than `sigma` standard deviations from the
//     sensor's baseline, once the baseline has `min_readings` readings;
//   - "silent": no reading for `silence` of event time after the latest
//     one. An event-time timer per sensor, moved forward by each reading,
//     fires it; at the end of a bounded input every sensor's timer fires,
//     so each sensor ends with a "silent" alert carrying its final count
//     and mean.
//
// A reading equal to the sensor's previous one (same time and value) is a
// duplicate delivery and is dropped. Readings themselves are not passed on:
// the output is the alerts.
//
// The alerts depend only on the data, not on when the watermark moves: a
// reading that comes after its sensor's silence deadline raises the same
// "silent" alert the timer would have (and removes the timer), so a run
// gives the same alerts however its batches fall, and after a crash and
// restore (the checkpoint holds the state and the timers).
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

// stateVersion is the layout of baseline below; raise it when it changes.
const stateVersion = 1

func init() {
	wsp.Fields() // the reading's field, declared in configure
	wsp.UseState(stateVersion)
	wsp.OnInit(configure)
	wsp.Process(reading)
	wsp.OnTimer(timer)
}

func main() {}

var conf = struct {
	field       string
	silence     int64 // ms of event time
	sigma       float64
	minReadings uint64
}{field: "value", silence: 30_000, sigma: 4, minReadings: 20}

func configure(cfg []byte) error {
	if err := parseConfig(cfg); err != nil {
		return err
	}
	wsp.Fields(conf.field)
	return nil
}

func parseConfig(cfg []byte) error {
	if len(cfg) == 0 {
		return nil
	}
	var c struct {
		Field       string   `json:"field"`
		Silence     string   `json:"silence"`
		Sigma       *float64 `json:"sigma"`
		MinReadings *uint64  `json:"min_readings"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.Field != "" {
		conf.field = c.Field
	}
	if c.Silence != "" {
		d, err := time.ParseDuration(c.Silence)
		if err != nil || d <= 0 {
			return fmt.Errorf("config: silence %q: want a positive duration such as 30s", c.Silence)
		}
		conf.silence = d.Milliseconds()
	}
	if c.Sigma != nil {
		if *c.Sigma <= 0 {
			return fmt.Errorf("config: sigma %v: want a positive number", *c.Sigma)
		}
		conf.sigma = *c.Sigma
	}
	if c.MinReadings != nil {
		conf.minReadings = *c.MinReadings
	}
	return nil
}

// baseline is a sensor's state, stored as 48 bytes (layout version 1):
// n u64 | mean f64 | m2 f64 | latest i64 | deadline i64 | last f64.
type baseline struct {
	n        uint64
	mean, m2 float64
	latest   int64   // the latest reading's time
	deadline int64   // the pending silence timer (0: none)
	last     float64 // the latest reading's value
}

const baselineSize = 48

func load(s *wsp.State) baseline {
	v, ok := s.Value()
	if !ok || len(v) != baselineSize {
		return baseline{}
	}
	le := binary.LittleEndian
	return baseline{n: le.Uint64(v), mean: math.Float64frombits(le.Uint64(v[8:])), m2: math.Float64frombits(le.Uint64(v[16:])),
		latest: int64(le.Uint64(v[24:])), deadline: int64(le.Uint64(v[32:])), last: math.Float64frombits(le.Uint64(v[40:]))}
}

var stored [baselineSize]byte

func save(s *wsp.State, b *baseline) {
	le := binary.LittleEndian
	le.PutUint64(stored[0:], b.n)
	le.PutUint64(stored[8:], math.Float64bits(b.mean))
	le.PutUint64(stored[16:], math.Float64bits(b.m2))
	le.PutUint64(stored[24:], uint64(b.latest))
	le.PutUint64(stored[32:], uint64(b.deadline))
	le.PutUint64(stored[40:], math.Float64bits(b.last))
	s.SetValue(stored[:])
}

func reading(r *wsp.Record, out *wsp.Output) {
	x, ok := r.Field(0).Float()
	ts, hasTime := r.Time()
	if !ok || !hasTime {
		out.Fail(r, "watchdog: a reading needs a numeric value and an event time")
		return
	}
	s := r.State()
	b := load(s)
	if b.n > 0 && ts == b.latest && x == b.last {
		return // a duplicate delivery: dropped
	}
	if b.deadline != 0 && ts >= b.deadline {
		// Silent past the deadline, and the timer has not fired yet.
		emit(out, r, silent(&b, s.Key()))
		s.DeleteTimer(b.deadline)
		b.deadline = 0
	}
	if b.n >= conf.minReadings {
		if sd := math.Sqrt(b.m2 / float64(b.n)); sd > 0 && math.Abs(x-b.mean) > conf.sigma*sd {
			emit(out, r, anomaly(&b, s.Key(), x, ts, sd))
		}
	}
	b.n++
	d := x - b.mean
	b.mean += d / float64(b.n)
	b.m2 += d * (x - b.mean)
	if ts > b.latest || b.n == 1 {
		b.latest = ts
	}
	b.last = x
	if dl := b.latest + conf.silence; dl != b.deadline {
		if b.deadline != 0 {
			s.DeleteTimer(b.deadline)
		}
		s.SetTimer(dl)
		b.deadline = dl
	}
	save(s, &b)
}

func timer(t *wsp.Timer, out *wsp.Output) {
	s := t.State()
	b := load(s)
	at, _ := t.Time()
	if b.deadline != at {
		return // a timer this plugin no longer wants
	}
	emit(out, &t.Record, silent(&b, s.Key()))
	b.deadline = 0
	save(s, &b)
}

var line []byte

func emit(out *wsp.Output, r *wsp.Record, v []byte) {
	out.EmitRecord(r, &wsp.OutRecord{Same: wsp.SameKey | wsp.SameTime, Value: v})
}

func silent(b *baseline, key []byte) []byte {
	line = append(line[:0], `{"sensor_id":`...)
	line = strconv.AppendQuote(line, string(key))
	line = append(line, `,"alert":"silent","latest":`...)
	line = strconv.AppendInt(line, b.latest, 10)
	line = append(line, `,"deadline":`...)
	line = strconv.AppendInt(line, b.deadline, 10)
	line = append(line, `,"count":`...)
	line = strconv.AppendUint(line, b.n, 10)
	line = append(line, `,"mean":`...)
	line = strconv.AppendFloat(line, b.mean, 'g', -1, 64)
	return append(line, '}')
}

func anomaly(b *baseline, key []byte, x float64, ts int64, sd float64) []byte {
	line = append(line[:0], `{"sensor_id":`...)
	line = strconv.AppendQuote(line, string(key))
	line = append(line, `,"alert":"anomaly","ts":`...)
	line = strconv.AppendInt(line, ts, 10)
	line = append(line, `,"value":`...)
	line = strconv.AppendFloat(line, x, 'g', -1, 64)
	line = append(line, `,"mean":`...)
	line = strconv.AppendFloat(line, b.mean, 'g', -1, 64)
	line = append(line, `,"stddev":`...)
	line = strconv.AppendFloat(line, sd, 'g', -1, 64)
	line = append(line, `,"count":`...)
	line = strconv.AppendUint(line, b.n, 10)
	return append(line, '}')
}
