// Package sensorgen generates the deterministic sensor readings of the sensors
// example, one JSON object per line, such as
//
//	{"sensor_id":"s-0042","value":21.53,"ts":1700000000123}
//	{"sensor_id":"s-0007","value":71.46,"ts":1700000000124,"unit":"F"}
//
// The same seed and count always give byte-identical output (the generator has
// its own splitmix64 PRNG and formats numbers itself).
//
// Data shape, for reading number i (0-based):
//   - sensor_id: one of 1000 sensors s-0000..s-0999, chosen at random;
//   - ts (epoch ms): 1700000000000 + max(0, i - jitter), jitter uniform in
//     0..200, so timestamps start at 1700000000000, rise by 1 ms per reading,
//     and a reading is at most MaxLatenessMS (200 ms) older than the largest
//     ts seen before it (bounded out-of-orderness);
//   - value: Celsius, a per-sensor baseline in 15..30 plus uniform noise of
//     ±1.5, two decimals (about 3% written as integers, 1% in exponent form);
//   - unit: about 10% in Fahrenheit ("unit":"F", value converted), about 5%
//     with an explicit "unit":"C", the rest without unit;
//   - about 0.5% implausible values (999.9, -999.9, 61.5, -95.5 °C, 1000 °F);
//   - about 2% bad readings spread evenly over all failure kinds of the
//     cleaning rules (see BadKinds);
//   - about 1% carry an extra nested "meta" field, 1% use spaces, 1% put ts
//     first.
package sensorgen

import (
	"bufio"
	"io"
	"strconv"
)

// Base timestamp of reading 0 and the largest backwards jitter.
const (
	BaseTS        = 1700000000000
	MaxLatenessMS = 200
	NumSensors    = 1000
)

// BadKinds names the kinds of bad readings, in the order of their index.
var BadKinds = []string{
	"missing sensor_id",
	"numeric sensor_id",
	"empty sensor_id",
	"null sensor_id",
	"object sensor_id",
	"missing ts",
	"string ts",
	"fractional ts",
	"exponent ts",
	"missing value",
	"non-numeric value",
	"null value",
	"bool value",
	"unknown unit",
	"numeric unit",
	"truncated line",
	"non-JSON line",
	"JSON array",
}

// Generator produces readings. It is not safe for concurrent use.
type Generator struct {
	state uint64
	i     int64
	buf   []byte
}

// New returns a generator seeded with seed.
func New(seed uint64) *Generator { return &Generator{state: seed} }

// splitmix64
func (g *Generator) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (g *Generator) intn(n int) int { return int(g.next() % uint64(n)) }

type reading struct {
	sensor int
	ts     int64
	value  []byte // number literal
	unit   byte   // 0, 'C' or 'F'
}

// AppendLine appends the next reading (without newline) to dst.
func (g *Generator) AppendLine(dst []byte) []byte {
	i := g.i
	g.i++
	r := reading{
		sensor: g.intn(NumSensors),
		ts:     BaseTS + max(0, i-int64(g.intn(MaxLatenessMS+1))),
	}
	centi := 1500 + (r.sensor*37)%1500 + g.intn(301) - 150
	switch u := g.intn(100); {
	case u < 10:
		r.unit = 'F'
	case u < 15:
		r.unit = 'C'
	}
	kind := g.intn(10000)
	numFmt := g.intn(100)
	extra := g.intn(100)
	g.buf = g.buf[:0]

	switch {
	case kind < 50: // implausible
		switch g.intn(5) {
		case 0:
			r.value, r.unit = append(g.buf, "999.9"...), 0
		case 1:
			r.value, r.unit = append(g.buf, "-999.9"...), 'C'
		case 2:
			r.value, r.unit = append(g.buf, "61.5"...), 0
		case 3:
			r.value, r.unit = append(g.buf, "-95.5"...), 0
		default:
			r.value, r.unit = append(g.buf, "1000"...), 'F'
		}
	default:
		if r.unit == 'F' {
			centi = centi*9/5 + 3200
		}
		switch {
		case numFmt < 3:
			r.value = strconv.AppendInt(g.buf, int64(centi/100), 10)
		case numFmt < 4:
			r.value = appendExp(g.buf, centi)
		default:
			r.value = appendCenti(g.buf, centi)
		}
	}
	g.buf = r.value

	if kind >= 50 && kind < 250 { // bad
		return g.appendBad(dst, &r, g.intn(len(BadKinds)))
	}
	switch extra {
	case 0:
		return appendObj(dst, &r, objOpts{meta: true})
	case 1:
		return appendObj(dst, &r, objOpts{spaces: true})
	case 2:
		return appendObj(dst, &r, objOpts{tsFirst: true})
	}
	return appendObj(dst, &r, objOpts{})
}

type objOpts struct {
	meta, spaces, tsFirst bool

	// replacements for the bad kinds: nil means the normal field, "-" means
	// omit the field; otherwise the literal JSON text
	sensorID, ts, value, unit string
}

func appendObj(dst []byte, r *reading, o objOpts) []byte {
	sep, colon := ",", ":"
	if o.spaces {
		sep, colon = ", ", ": "
	}
	n := 0
	field := func(name string) {
		if n > 0 {
			dst = append(dst, sep...)
		}
		n++
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"')
		dst = append(dst, colon...)
	}
	tsField := func() {
		switch o.ts {
		case "-":
		case "":
			field("ts")
			dst = strconv.AppendInt(dst, r.ts, 10)
		default:
			field("ts")
			dst = append(dst, o.ts...)
		}
	}
	dst = append(dst, '{')
	if o.spaces {
		dst = append(dst, ' ')
	}
	if o.tsFirst {
		tsField()
	}
	switch o.sensorID {
	case "-":
	case "":
		field("sensor_id")
		dst = append(dst, `"s-`...)
		dst = append(dst, byte('0'+r.sensor/1000%10), byte('0'+r.sensor/100%10), byte('0'+r.sensor/10%10), byte('0'+r.sensor%10))
		dst = append(dst, '"')
	default:
		field("sensor_id")
		dst = append(dst, o.sensorID...)
	}
	if o.meta {
		field("meta")
		dst = append(dst, `{"fw":"1.4.2","tags":["roof","north"],"cal":{"k":0.98,"at":[1,2,{"x":null}]},"ts":"x"}`...)
	}
	switch o.value {
	case "-":
	case "":
		field("value")
		dst = append(dst, r.value...)
	default:
		field("value")
		dst = append(dst, o.value...)
	}
	if !o.tsFirst {
		tsField()
	}
	switch o.unit {
	case "-":
	case "":
		if r.unit != 0 {
			field("unit")
			dst = append(dst, '"', r.unit, '"')
		}
	default:
		field("unit")
		dst = append(dst, o.unit...)
	}
	if o.spaces {
		dst = append(dst, ' ')
	}
	return append(dst, '}')
}

func (g *Generator) appendBad(dst []byte, r *reading, k int) []byte {
	var o objOpts
	switch BadKinds[k] {
	case "missing sensor_id":
		o.sensorID = "-"
	case "numeric sensor_id":
		o.sensorID = strconv.Itoa(r.sensor)
	case "empty sensor_id":
		o.sensorID = `""`
	case "null sensor_id":
		o.sensorID = "null"
	case "object sensor_id":
		o.sensorID = `{"id":"s-0001"}`
	case "missing ts":
		o.ts = "-"
	case "string ts":
		o.ts = `"` + strconv.FormatInt(r.ts, 10) + `"`
	case "fractional ts":
		o.ts = strconv.FormatInt(r.ts, 10) + ".5"
	case "exponent ts":
		o.ts = "1.7e12"
	case "missing value":
		o.value = "-"
	case "non-numeric value":
		o.value = `"n/a"`
	case "null value":
		o.value = "null"
	case "bool value":
		o.value = "true"
	case "unknown unit":
		o.unit = `"K"`
	case "numeric unit":
		o.unit = "1"
	case "truncated line":
		start := len(dst)
		dst = appendObj(dst, r, o)
		full := len(dst) - start
		// keep 1..full-2 bytes: the closing brace is always cut
		return dst[:start+1+g.intn(full-2)]
	case "non-JSON line":
		dst = append(dst, "sensor s-"...)
		dst = strconv.AppendInt(dst, int64(r.sensor), 10)
		dst = append(dst, " value="...)
		dst = append(dst, r.value...)
		dst = append(dst, " ts="...)
		return strconv.AppendInt(dst, r.ts, 10)
	case "JSON array":
		dst = append(dst, `["s-`...)
		dst = strconv.AppendInt(dst, int64(r.sensor), 10)
		dst = append(dst, `",`...)
		dst = append(dst, r.value...)
		dst = append(dst, ',')
		dst = strconv.AppendInt(dst, r.ts, 10)
		return append(dst, ']')
	}
	return appendObj(dst, r, o)
}

// appendCenti appends centi/100 with exactly two decimals.
func appendCenti(dst []byte, centi int) []byte {
	if centi < 0 {
		dst = append(dst, '-')
		centi = -centi
	}
	dst = strconv.AppendInt(dst, int64(centi/100), 10)
	return append(dst, '.', byte('0'+centi/10%10), byte('0'+centi%10))
}

// appendExp appends centi/100 in exponent form, e.g. 2153 -> 2.153e1.
func appendExp(dst []byte, centi int) []byte {
	if centi < 0 {
		dst = append(dst, '-')
		centi = -centi
	}
	var d [20]byte
	digits := strconv.AppendInt(d[:0], int64(centi), 10)
	dst = append(dst, digits[0])
	if len(digits) > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	return strconv.AppendInt(dst, int64(len(digits)-3), 10)
}

// Write writes n readings generated from seed to w, one per line.
func Write(w io.Writer, n int, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	g := New(seed)
	var line []byte
	for range n {
		line = g.AppendLine(line[:0])
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Lines returns n readings generated from seed (without newlines).
func Lines(n int, seed uint64) [][]byte {
	g := New(seed)
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.AppendLine(nil)
	}
	return out
}
