package sensorgen_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
)

func TestDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	if err := sensorgen.Write(&a, 5000, 1); err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(&b, 5000, 1); err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(&c, 5000, 2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different output")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seeds, same output")
	}
	var joined []byte
	for _, l := range sensorgen.Lines(5000, 1) {
		joined = append(append(joined, l...), '\n')
	}
	if !bytes.Equal(joined, a.Bytes()) {
		t.Fatal("Lines and Write disagree")
	}
}

// TestBundledData checks that examples/sensors/data/readings.jsonl is what
// `go run ./examples/sensors/gen -n 30000 -seed 1` produces.
func TestBundledData(t *testing.T) {
	want, err := os.ReadFile("../../data/readings.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := sensorgen.Write(&got, 30000, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("bundled data differs from the generator's output; regenerate with: go run ./examples/sensors/gen -n 30000 -seed 1 -o examples/sensors/data/readings.jsonl")
	}
}

func TestShape(t *testing.T) {
	const n = 100000
	var maxTS int64
	var objects, fahrenheit, withTS int
	for i, line := range sensorgen.Lines(n, 1) {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if dec.Decode(&m) != nil || m == nil {
			continue
		}
		objects++
		if m["unit"] == "F" {
			fahrenheit++
		}
		num, ok := m["ts"].(json.Number)
		if !ok {
			continue
		}
		ts, err := strconv.ParseInt(num.String(), 10, 64) // integer literals only
		if err != nil {
			continue
		}
		withTS++
		if ts < sensorgen.BaseTS || ts > sensorgen.BaseTS+int64(i) {
			t.Fatalf("line %d: ts %d out of range", i, ts)
		}
		if ts < maxTS-sensorgen.MaxLatenessMS {
			t.Fatalf("line %d: ts %d more than %d ms behind %d", i, ts, sensorgen.MaxLatenessMS, maxTS)
		}
		maxTS = max(maxTS, ts)
	}
	if objects < n*99/100 || withTS < n*98/100 {
		t.Fatalf("objects %d, with integer ts %d of %d", objects, withTS, n)
	}
	if fahrenheit < n*8/100 || fahrenheit > n*12/100 {
		t.Fatalf("fahrenheit %d of %d", fahrenheit, n)
	}
}
