package jsonfields

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/hostabi"
)

// decoded is one field as the guest would see it.
type decoded struct {
	tag uint8
	i   int64
	f   float64
	s   string
}

func (d decoded) String() string {
	switch d.tag {
	case hostabi.FieldInt:
		return fmt.Sprintf("int(%d)", d.i)
	case hostabi.FieldFloat:
		return fmt.Sprintf("float(%v)", d.f)
	case hostabi.FieldString:
		return fmt.Sprintf("string(%q)", d.s)
	case hostabi.FieldRaw:
		return fmt.Sprintf("raw(%s)", d.s)
	}
	return [...]string{"missing", "null", "false", "true"}[d.tag]
}

func decodeFields(t testing.TB, b []byte, n int) []decoded {
	t.Helper()
	var out []decoded
	for i := 0; i < n; i++ {
		tag := b[0]
		b = b[1:]
		d := decoded{tag: tag}
		switch tag {
		case hostabi.FieldInt:
			d.i = int64(binary.LittleEndian.Uint64(b))
			b = b[8:]
		case hostabi.FieldFloat:
			d.f = math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
		case hostabi.FieldString, hostabi.FieldRaw:
			l := binary.LittleEndian.Uint32(b)
			d.s = string(b[4 : 4+l])
			b = b[4+l:]
		}
		out = append(out, d)
	}
	if len(b) != 0 {
		t.Fatalf("%d trailing bytes", len(b))
	}
	return out
}

func TestExtract(t *testing.T) {
	paths := []string{"id", "v", "ts", "a.b", "a.c.d"}
	cases := []struct {
		in   string
		ok   bool
		want string
	}{
		{`{"id":"s-1","v":2.5,"ts":1700000000000}`, true, `[string("s-1") float(2.5) int(1700000000000) missing missing]`},
		{`  {"v":-0,"id":null,"ts":true}  `, true, `[null int(0) true missing missing]`},
		{`{"v":1e3,"ts":-9223372036854775808,"id":false}`, true, `[false float(1000) int(-9223372036854775808) missing missing]`},
		{`{"ts":9223372036854775808}`, true, `[missing missing float(9.223372036854776e+18) missing missing]`},
		{`{"id":"a\"b\\c\u00e9\ud83d\ude00","v":"n/a"}`, true, `[string("a\"b\\cé😀") string("n/a") missing missing missing]`},
		{`{"a":{"b":[1,{"x":2}],"c":{"d":"deep"}},"id":"x"}`, true, `[string("x") missing missing raw([1,{"x":2}]) string("deep")]`},
		{`{"a":{"b":1},"a":{"c":{"d":2}}}`, true, `[missing missing missing missing int(2)]`},
		{`{"id":"first","id":"last"}`, true, `[string("last") missing missing missing missing]`},
		{`{"i\u0064":"escaped key"}`, true, `[string("escaped key") missing missing missing missing]`},
		{`{"a":"not an object"}`, true, `[missing missing missing missing missing]`},
		{`{"id":"s-1","v":2.5`, false, `[missing missing missing missing missing]`},
		{`[1,2]`, false, `[missing missing missing missing missing]`},
		{`not json`, false, `[missing missing missing missing missing]`},
		{``, false, `[missing missing missing missing missing]`},
		{`{"id":01}`, false, `[missing missing missing missing missing]`},
		{`{"id":"x"} trailing`, false, `[missing missing missing missing missing]`},
		{`{"id":"bad \x01 control"}`, false, `[missing missing missing missing missing]`},
		{`{"v":1.}`, false, `[missing missing missing missing missing]`},
		{`{}`, true, `[missing missing missing missing missing]`},
	}
	ex, err := New(paths)
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	for _, c := range cases {
		out, ok := ex.Append(nil, []byte(c.in), &s)
		if ok != c.ok {
			t.Errorf("%s: ok = %v, want %v", c.in, ok, c.ok)
		}
		if got := fmt.Sprint(decodeFields(t, out, len(paths))); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, p := range [][]string{{""}, {"a..b"}, {"a", "a"}, {".a"}} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%q) accepted", p)
		}
	}
}

// reference decodes with encoding/json, the behaviour the extractor must match.
func reference(v []byte, paths []string) ([]decoded, bool) {
	var root any
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	out := make([]decoded, len(paths))
	if err := d.Decode(&root); err != nil || d.More() {
		return out, false
	}
	if _, err := d.Token(); err == nil {
		return out, false
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return out, false
	}
	for i, p := range paths {
		var cur any = obj
		for _, seg := range strings.Split(p, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			if cur, ok = m[seg]; !ok {
				cur = nil
				break
			}
		}
		switch x := cur.(type) {
		case nil:
			// missing (or null: told apart below)
		case bool:
			out[i].tag = hostabi.FieldFalse
			if x {
				out[i].tag = hostabi.FieldTrue
			}
		case json.Number:
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				out[i] = decoded{tag: hostabi.FieldInt, i: n}
			} else {
				f, _ := strconv.ParseFloat(string(x), 64)
				out[i] = decoded{tag: hostabi.FieldFloat, f: f}
			}
		case string:
			out[i] = decoded{tag: hostabi.FieldString, s: x}
		default:
			out[i].tag = hostabi.FieldRaw
		}
		if cur == nil && hasNull(obj, p) {
			out[i].tag = hostabi.FieldNull
		}
	}
	return out, true
}

func hasNull(obj map[string]any, p string) bool {
	segs := strings.Split(p, ".")
	var cur any = obj
	for _, s := range segs {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		v, ok := m[s]
		if !ok {
			return false
		}
		cur = v
	}
	return cur == nil
}

// TestAgainstEncodingJSON compares the extractor with encoding/json on
// random documents, including broken ones.
func TestAgainstEncodingJSON(t *testing.T) {
	paths := []string{"id", "v", "n.x", "s"}
	ex, _ := New(paths)
	rng := rand.New(rand.NewSource(7))
	vals := []string{`1`, `-12`, `3.25`, `1e5`, `-0.0`, `"str"`, `"e\n\u0041"`, `true`, `false`, `null`,
		`[1,"a",{}]`, `{"x":5}`, `{"x":"y","z":[]}`, `99999999999999999999`, `""`}
	keys := []string{"id", "v", "n", "s", "other", "i\\u0064"}
	var s Scratch
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		b.WriteString("{")
		k := rng.Intn(6)
		for j := 0; j < k; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%s", keys[rng.Intn(len(keys))], vals[rng.Intn(len(vals))])
		}
		b.WriteString("}")
		doc := []byte(strings.ReplaceAll(b.String(), `\\u0064`, `\u0064`))
		if rng.Intn(10) == 0 && len(doc) > 2 { // break it
			doc = doc[:rng.Intn(len(doc))]
		}
		want, wantOK := reference(doc, paths)
		out, ok := ex.Append(nil, doc, &s)
		if ok != wantOK {
			t.Fatalf("%s: ok = %v, encoding/json says %v", doc, ok, wantOK)
		}
		got := decodeFields(t, out, len(paths))
		for f := range got {
			w := want[f]
			g := got[f]
			if g.tag == hostabi.FieldRaw {
				g.s = "" // the reference does not keep raw text
			}
			if fmt.Sprint(g) != fmt.Sprint(w) {
				t.Fatalf("%s: field %s = %v, encoding/json gives %v", doc, paths[f], g, w)
			}
		}
	}
}

func BenchmarkExtractSensor(b *testing.B) {
	ex, _ := New([]string{"sensor_id", "value", "ts", "unit"})
	line := []byte(`{"sensor_id":"s-0042","value":21.53,"ts":1700000000123}`)
	var s Scratch
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(line)))
	for i := 0; i < b.N; i++ {
		buf, _ = ex.Append(buf[:0], line, &s)
	}
}
