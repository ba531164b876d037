package benthos_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
	"github.com/wsp-project/wsp/examples/sensors/rules"
)

// edgeLines are single-line readings that stress the formatting and type
// rules (they are appended to the generated input of the pipeline test).
var edgeLines = []string{
	`{"sensor_id":"s-0042","value":21.53,"ts":1700000000123}`,
	`{"sensor_id":"a<b>&c","value":1,"ts":2}`,
	`{"sensor_id":"s-\u0030\u00e9\"\\\/\t\u2028\u2029\ud83d\ude00\ud800x","value":1,"ts":2}`,
	"{\"sensor_id\":\"raw\u2028sep\xffbad\xc3\",\"value\":1,\"ts\":2}",
	`{"sensor_id":"\u0000\u001f\u007f","value":1,"ts":2}`,
	`{"sensor\u005fid":"escaped-key","v\u0061lue":1,"\u0074s":2,"unit":"\u0046"}`,
	`{"sensor_id":"a","value":-0,"ts":-0}`,
	`{"sensor_id":"a","value":-0.0,"ts":1}`,
	`{"sensor_id":"a","value":-0,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":0.000001,"ts":1}`,
	`{"sensor_id":"a","value":1e-7,"ts":1}`,
	`{"sensor_id":"a","value":-2.5E-10,"ts":1}`,
	`{"sensor_id":"a","value":1e-400,"ts":1}`,
	`{"sensor_id":"a","value":1e21,"ts":1}`,
	`{"sensor_id":"a","value":1e400,"ts":1}`,
	`{"sensor_id":"a","value":-1e400,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":1e400,"ts":1,"unit":"K"}`,
	`{"sensor_id":"a","value":123456789012345678901234567890,"ts":1}`,
	`{"sensor_id":"a","value":9223372036854775807,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":-9223372036854775808,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":4611686018427387904,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":60,"ts":1}`,
	`{"sensor_id":"a","value":60.000000000000001,"ts":1}`,
	`{"sensor_id":"a","value":60.00000000000001,"ts":1}`,
	`{"sensor_id":"a","value":-90,"ts":1}`,
	`{"sensor_id":"a","value":-90.00000000000001,"ts":1}`,
	`{"sensor_id":"a","value":140,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":140.00000000000003,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":71.6,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":80.1,"ts":1,"unit":"F"}`,
	`{"sensor_id":"a","value":2.153e1,"ts":1,"unit":"C"}`,
	`{"sensor_id":"a","value":0.1,"ts":9223372036854775807}`,
	`{"sensor_id":"a","value":0.1,"ts":-9223372036854775808}`,
	`{"sensor_id":"a","value":0.1,"ts":9223372036854775808}`,
	`{"sensor_id":"a","value":0.1,"ts":1.0}`,
	`{"sensor_id":"a","value":0.1,"ts":1e3}`,
	`{"sensor_id":"a","value":0.1,"ts":"1"}`,
	`{"sensor_id":"a","value":0.1,"ts":{"ms":1}}`,
	`{"sensor_id":"a","value":0.1,"ts":[1]}`,
	`{"sensor_id":"a","value":0.1,"ts":true}`,
	`{"sensor_id":"a","value":0.1,"ts":null}`,
	`{"sensor_id":"a","value":{},"ts":1}`,
	`{"sensor_id":"a","value":[],"ts":1}`,
	`{"sensor_id":"a","value":false,"ts":1}`,
	`{"sensor_id":"a","value":"1","ts":1}`,
	`{"sensor_id":"a","value":1,"ts":1,"unit":null}`,
	`{"sensor_id":"a","value":1,"ts":1,"unit":"c"}`,
	`{"sensor_id":"a","value":1,"ts":1,"unit":""}`,
	`{"sensor_id":"a","value":1,"ts":1,"unit":["C"]}`,
	`{"sensor_id":"a","value":1,"ts":1,"unit":{"C":1}}`,
	`{"sensor_id":"a","value":1,"ts":1,"unit":true}`,
	`{"sensor_id":"","value":1,"ts":1}`,
	`{"sensor_id":4.2,"value":1,"ts":1}`,
	`{"sensor_id":false,"value":1,"ts":1}`,
	`{"sensor_id":[],"value":1,"ts":1}`,
	`{"sensor_id":{},"value":1,"ts":1}`,
	`{"sensor_id":1,"sensor_id":"dup-last-wins","value":"x","value":3,"ts":1.5,"ts":4}`,
	`{"sensor_id":"dup","sensor_id":null,"value":1,"ts":1}`,
	` { "sensor_id" : "ws" ,	"value" : 1.5 , "ts" : 2 }  `,
	`{"meta":{"sensor_id":5,"ts":"x","a":[{"value":null},[],{}],"s":"}]\"{"},"sensor_id":"nested","value":1,"ts":2}`,
	`{}`,
	`{"a":1}`,
	`[]`,
	`null`,
	`"str"`,
	`42`,
	``,
	`{"sensor_id":"a","value":01,"ts":2}`,
	`{"sensor_id":"a","value":1.,"ts":2}`,
	`{"sensor_id":"a","value":NaN,"ts":2}`,
	`{"sensor_id":"a\q","value":1,"ts":2}`,
	"{\"sensor_id\":\"a\x01\",\"value\":1,\"ts\":2}",
	`{"sensor_id":"a","value":1,"ts":2,}`,
	`{"sensor_id":"a","value":1,"ts":2} x`,
	`{"sensor_id":"a","value":1,"ts":2}{"b":1}`,
	"\xef\xbb\xbf{\"sensor_id\":\"bom\",\"value\":1,\"ts\":2}",
	`{"sensor_id":"a","value":1,"ts":2,"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"sensor_id":"a","value":1,"ts":2,"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
}

type result struct {
	v      rules.Verdict
	reason string
	out    string
}

func cleanJSON(line []byte) result {
	out, v, reason := rules.CleanJSON(nil, line)
	return result{v, reason, string(out)}
}

func loadMapping(t *testing.T) *bloblang.Executor {
	t.Helper()
	m, err := os.ReadFile("clean.blobl")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := bloblang.Parse(string(m))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func runMapping(t *testing.T, exe *bloblang.Executor, line []byte) result {
	t.Helper()
	res, err := service.NewMessage(line).BloblangQuery(exe)
	if err != nil {
		const prefix = "failed assignment (line "
		s := err.Error()
		if !strings.HasPrefix(s, prefix) || !strings.Contains(s, "): ") {
			t.Fatalf("%q: unexpected mapping error %q", line, s)
		}
		return result{rules.Fail, s[strings.Index(s, "): ")+3:], ""}
	}
	if res == nil {
		return result{rules.Drop, "", ""}
	}
	b, err := res.AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	return result{rules.Keep, "", string(b)}
}

// mutate returns a randomly damaged or re-valued copy of a reading.
func mutate(r *rand.Rand, line []byte) []byte {
	tokens := []string{`"`, `\`, `{`, `}`, `[`, `]`, `,`, `:`, `-`, `0`, `.`, `e`, ` `, `null`, `true`, `"F"`, `"C"`,
		`\u0000`, `\ud800`, `<`, "\xff", "\u2028", `1e400`, `-0`, `1E2`, `"x"`, `{}`, `[1]`}
	numbers := []string{"-0", "0.0", "-0.0", "1e-7", "1e21", "123456789012345678901234567890", "-1e400", "9007199254740993",
		"1E2", "59.99999999999999", "-90.0000000000001", "1.7976931348623157e308", "140", "-130", "0.1", "3", "2.5e1", "1e-400"}
	b := slices.Clone(line)
	switch r.IntN(8) {
	case 0: // truncate
		if len(b) > 0 {
			b = b[:r.IntN(len(b))]
		}
	case 1: // delete a byte
		if len(b) > 0 {
			i := r.IntN(len(b))
			b = append(b[:i], b[i+1:]...)
		}
	case 2, 3: // insert a token
		i := r.IntN(len(b) + 1)
		b = slices.Insert(b, i, []byte(tokens[r.IntN(len(tokens))])...)
	case 4: // flip a byte
		if len(b) > 0 {
			b[r.IntN(len(b))] = byte(r.IntN(128))
		}
	default: // replace the value (and maybe the unit) with an edge number
		s := string(b)
		if i := strings.Index(s, `"value":`); i >= 0 {
			j := i + len(`"value":`)
			k := j
			for k < len(s) && strings.IndexByte("-+.eE0123456789", s[k]) >= 0 {
				k++
			}
			s = s[:j] + numbers[r.IntN(len(numbers))] + s[k:]
			if r.IntN(2) == 0 && strings.HasSuffix(s, "}") && !strings.Contains(s, `"unit"`) {
				s = s[:len(s)-1] + `,"unit":"F"}`
			}
		}
		b = []byte(s)
	}
	return b
}

// TestMappingMatchesCleanJSON runs clean.blobl on edge cases, generated and
// mutated lines, and compares verdict, reason and output with rules.CleanJSON.
func TestMappingMatchesCleanJSON(t *testing.T) {
	exe := loadMapping(t)
	var lines [][]byte
	for _, l := range edgeLines {
		lines = append(lines, []byte(l))
	}
	gen := sensorgen.Lines(5000, 3)
	lines = append(lines, gen...)
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		lines = append(lines, mutate(r, gen[r.IntN(len(gen))]))
	}
	counts := map[rules.Verdict]int{}
	for _, line := range lines {
		want := cleanJSON(line)
		got := runMapping(t, exe, line)
		if got != want {
			t.Fatalf("%.300q:\n Bloblang  %v %q %q\n CleanJSON %v %q %q", line, got.v, got.reason, got.out, want.v, want.reason, want.out)
		}
		counts[want.v]++
	}
	t.Logf("%d lines agree: %v keep, %v fail, %v drop", len(lines), counts[rules.Keep], counts[rules.Fail], counts[rules.Drop])
}

type failure struct{ record, reason string }

// TestPipelineMatchesCleanJSON runs pipeline.yaml in-process on 20k generated
// readings (plus edgeLines) and checks that its outputs equal CleanJSON's.
func TestPipelineMatchesCleanJSON(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "readings.jsonl")
	out := filepath.Join(dir, "clean.jsonl")

	var input bytes.Buffer
	if err := sensorgen.Write(&input, 20000, 1); err != nil {
		t.Fatal(err)
	}
	for _, l := range edgeLines {
		input.WriteString(l)
		input.WriteByte('\n')
	}
	if err := os.WriteFile(in, input.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// Expected: CleanJSON over the same lines, split as the lines scanner
	// splits them (bufio.ScanLines).
	var wantKeep []string
	var wantFail []failure
	drops, total := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(input.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		total++
		res := cleanJSON(sc.Bytes())
		switch res.v {
		case rules.Keep:
			wantKeep = append(wantKeep, res.out)
		case rules.Fail:
			wantFail = append(wantFail, failure{sc.Text(), res.reason})
		case rules.Drop:
			drops++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if total != 20000+len(edgeLines) || len(wantKeep) < 19000 || len(wantFail) < 300 || drops < 50 {
		t.Fatalf("unexpected expectation mix: total %d keep %d fail %d drop %d", total, len(wantKeep), len(wantFail), drops)
	}

	// Run the Benthos config.
	conf, err := os.ReadFile("pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := service.NewEnvironment()
	env.UseBloblangEnvironment(bloblang.GlobalEnvironment().WithCustomImporter(func(name string) ([]byte, error) {
		return os.ReadFile(name) // relative to this directory, where pipeline.yaml lives
	}))
	b := env.NewStreamBuilder()
	b.SetEnvVarLookupFunc(func(k string) (string, bool) {
		switch k {
		case "INPUT":
			return in, true
		case "OUTPUT":
			return out, true
		}
		t.Errorf("pipeline.yaml uses unexpected env var %q", k)
		return "", false
	})
	if err := b.SetYAML(string(conf)); err != nil {
		t.Fatal(err)
	}
	if err := b.SetLoggerYAML("level: none"); err != nil {
		t.Fatal(err)
	}
	stream, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := stream.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// Kept lines: equal as sorted multisets (2 threads may reorder).
	gotKeep := readLines(t, out)
	slices.Sort(gotKeep)
	slices.Sort(wantKeep)
	if !slices.Equal(gotKeep, wantKeep) {
		t.Errorf("kept lines differ: Benthos %d, CleanJSON %d", len(gotKeep), len(wantKeep))
		reportDiff(t, gotKeep, wantKeep)
	}

	// Errored records: same count, same (record, reason) pairs.
	var gotFail []failure
	for _, l := range readLines(t, out+".errors") {
		var e struct {
			Error  *string `json:"error"`
			Reason *string `json:"reason"`
			Record *string `json:"record"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Error == nil || e.Reason == nil || e.Record == nil {
			t.Fatalf("bad error line %q: %v", l, err)
		}
		if !strings.HasSuffix(*e.Error, ": "+*e.Reason) {
			t.Errorf("error %q does not end with reason %q", *e.Error, *e.Reason)
		}
		gotFail = append(gotFail, failure{*e.Record, *e.Reason})
	}
	if len(gotFail) != len(wantFail) {
		t.Errorf("errored: Benthos %d, CleanJSON Fail %d", len(gotFail), len(wantFail))
	}
	// A record that is not valid UTF-8 comes back with U+FFFD from the JSON
	// error line, so compare records after the same coercion.
	key := func(f failure) string { return coerceUTF8(f.record) + "\x00" + f.reason }
	gotKeys := make([]string, len(gotFail))
	for i, f := range gotFail {
		gotKeys[i] = key(f)
	}
	wantKeys := make([]string, len(wantFail))
	for i, f := range wantFail {
		wantKeys[i] = key(f)
	}
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Errorf("errored records or reasons differ")
		reportDiff(t, gotKeys, wantKeys)
	}
	if !t.Failed() {
		t.Logf("%d lines: %d kept, %d errored, %d dropped; Benthos agrees with CleanJSON", total, len(gotKeep), len(gotFail), total-len(gotKeep)-len(gotFail))
	}
}

// coerceUTF8 replaces each invalid byte by U+FFFD, as encoding/json does.
func coerceUTF8(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			sb.WriteString("\ufffd")
		} else {
			sb.WriteString(s[i : i+size])
		}
		i += size
	}
	return sb.String()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if s == "" {
		return nil
	}
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("%s: last line not terminated", path)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// reportDiff logs up to 10 elements only in got and only in want (both sorted).
func reportDiff(t *testing.T, got, want []string) {
	t.Helper()
	var onlyGot, onlyWant []string
	i, j := 0, 0
	for i < len(got) || j < len(want) {
		switch {
		case j >= len(want) || (i < len(got) && got[i] < want[j]):
			onlyGot = append(onlyGot, got[i])
			i++
		case i >= len(got) || want[j] < got[i]:
			onlyWant = append(onlyWant, want[j])
			j++
		default:
			i++
			j++
		}
	}
	for k, s := range onlyGot {
		if k == 10 {
			break
		}
		t.Logf("only in Benthos:   %s", fmt.Sprintf("%.300q", s))
	}
	for k, s := range onlyWant {
		if k == 10 {
			break
		}
		t.Logf("only in CleanJSON: %s", fmt.Sprintf("%.300q", s))
	}
	t.Logf("%d only in Benthos, %d only in CleanJSON", len(onlyGot), len(onlyWant))
}
