package rules_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
	"github.com/wsp-project/wsp/examples/sensors/rules"
)

// refClean is a slow, independent reference of the rules built on
// encoding/json (decode into map[string]any with UseNumber, encode with
// json.Marshal). It decides "is a JSON object" exactly as Benthos does: one
// JSON document, nothing but whitespace after it.
func refClean(line []byte) (out string, v rules.Verdict, reason string) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return "", rules.Fail, "not a JSON object"
	}
	var rest json.RawMessage
	if err := dec.Decode(&rest); err != io.EOF {
		return "", rules.Fail, "not a JSON object"
	}
	typeName := func(x any) string {
		switch x.(type) {
		case json.Number:
			return "number"
		case string:
			return "string"
		case bool:
			return "bool"
		case nil:
			return "null"
		case map[string]any:
			return "object"
		case []any:
			return "array"
		}
		panic("unexpected type")
	}
	fail := func(r string) (string, rules.Verdict, string) { return "", rules.Fail, r }

	sidAny, ok := m["sensor_id"]
	if !ok {
		return fail("sensor_id: missing")
	}
	sid, ok := sidAny.(string)
	if !ok {
		return fail("sensor_id: want string, got " + typeName(sidAny))
	}
	if sid == "" {
		return fail("sensor_id: empty")
	}

	tsAny, ok := m["ts"]
	if !ok {
		return fail("ts: missing")
	}
	tsNum, ok := tsAny.(json.Number)
	if !ok {
		return fail("ts: want integer epoch ms, got " + typeName(tsAny))
	}
	if strings.ContainsAny(tsNum.String(), ".eE") {
		return fail("ts: want integer epoch ms, got fraction")
	}
	ts, err := tsNum.Int64()
	if err != nil {
		return fail("ts: want integer epoch ms, got fraction")
	}

	valAny, ok := m["value"]
	if !ok {
		return fail("value: missing")
	}
	valNum, ok := valAny.(json.Number)
	if !ok {
		return fail("value: want number, got " + typeName(valAny))
	}
	// An integer literal that fits int64 is converted as float64(int64), so
	// the literal -0 gives 0 (the host hands the Wasm plugin an int there).
	var c float64
	if i, err := valNum.Int64(); err == nil {
		c = float64(i)
	} else if c, err = valNum.Float64(); err != nil && !errors.Is(err, strconv.ErrRange) {
		panic(err)
	}

	if u, ok := m["unit"]; ok {
		switch u {
		case "C":
		case "F":
			c = (c - 32) * 5 / 9
		default:
			return fail("unit: unknown unit")
		}
	}
	if c < -90 || c > 60 || math.IsNaN(c) {
		return "", rules.Drop, ""
	}
	sb, err := json.Marshal(sid)
	if err != nil {
		panic(err)
	}
	vb, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return `{"sensor_id":` + string(sb) + `,"ts":` + strconv.FormatInt(ts, 10) + `,"value":` + string(vb) + `}`, rules.Keep, ""
}

type tcase struct {
	name   string
	line   string
	out    string // for Keep
	v      rules.Verdict
	reason string // for Fail
}

func keep(name, line, out string) tcase { return tcase{name, line, out, rules.Keep, ""} }
func fail(name, line, reason string) tcase {
	return tcase{name, line, "", rules.Fail, reason}
}
func drop(name, line string) tcase { return tcase{name, line, "", rules.Drop, ""} }

const okRest = `"value":1,"ts":2`

var cases = []tcase{
	keep("basic", `{"sensor_id":"s-0042","value":21.53,"ts":1700000000123}`,
		`{"sensor_id":"s-0042","ts":1700000000123,"value":21.53}`),
	keep("unit C", `{"sensor_id":"s-0042","value":21.53,"ts":1700000000123,"unit":"C"}`,
		`{"sensor_id":"s-0042","ts":1700000000123,"value":21.53}`),
	keep("unit F 50", `{"sensor_id":"a","value":50,"ts":1,"unit":"F"}`, `{"sensor_id":"a","ts":1,"value":10}`),
	keep("unit F -40", `{"sensor_id":"a","value":-40,"ts":1,"unit":"F"}`, `{"sensor_id":"a","ts":1,"value":-40}`),
	keep("unit F 32", `{"sensor_id":"a","value":32,"ts":1,"unit":"F"}`, `{"sensor_id":"a","ts":1,"value":0}`),
	keep("unit F 98.6", `{"sensor_id":"a","value":98.6,"ts":1,"unit":"F"}`, `{"sensor_id":"a","ts":1,"value":37}`),
	keep("unit F 71.6 rounding", `{"sensor_id":"a","value":71.6,"ts":1,"unit":"F"}`, `{"sensor_id":"a","ts":1,"value":21.999999999999996}`),
	keep("unit F 70.7", `{"sensor_id":"a","value":70.7,"ts":1,"unit":"F"}`, `{"sensor_id":"a","ts":1,"value":21.5}`),
	keep("unit F escaped", `{"sensor_id":"a","value":50,"ts":1,"unit":"\u0046"}`, `{"sensor_id":"a","ts":1,"value":10}`),
	drop("unit F 212", `{"sensor_id":"a","value":212,"ts":1,"unit":"F"}`),
	drop("unit F -200", `{"sensor_id":"a","value":-200,"ts":1,"unit":"F"}`),

	// numbers
	keep("negative", `{"sensor_id":"a","value":-12.5,"ts":1}`, `{"sensor_id":"a","ts":1,"value":-12.5}`),
	keep("minus zero int", `{"sensor_id":"a","value":-0,"ts":1}`, `{"sensor_id":"a","ts":1,"value":0}`),
	keep("minus zero float", `{"sensor_id":"a","value":-0.0,"ts":1}`, `{"sensor_id":"a","ts":1,"value":-0}`),
	keep("zero", `{"sensor_id":"a","value":0,"ts":1}`, `{"sensor_id":"a","ts":1,"value":0}`),
	keep("trailing zeros", `{"sensor_id":"a","value":20.50,"ts":1}`, `{"sensor_id":"a","ts":1,"value":20.5}`),
	keep("exponent", `{"sensor_id":"a","value":2.153e1,"ts":1}`, `{"sensor_id":"a","ts":1,"value":21.53}`),
	keep("exponent E+", `{"sensor_id":"a","value":1E+1,"ts":1}`, `{"sensor_id":"a","ts":1,"value":10}`),
	keep("small", `{"sensor_id":"a","value":2.5e-7,"ts":1}`, `{"sensor_id":"a","ts":1,"value":2.5e-7}`),
	keep("small 1e-6", `{"sensor_id":"a","value":0.000001,"ts":1}`, `{"sensor_id":"a","ts":1,"value":0.000001}`),
	keep("small 1e-7", `{"sensor_id":"a","value":1e-7,"ts":1}`, `{"sensor_id":"a","ts":1,"value":1e-7}`),
	keep("negative small", `{"sensor_id":"a","value":-1.5e-10,"ts":1}`, `{"sensor_id":"a","ts":1,"value":-1.5e-10}`),
	keep("underflow", `{"sensor_id":"a","value":1e-400,"ts":1}`, `{"sensor_id":"a","ts":1,"value":0}`),
	keep("limit 60", `{"sensor_id":"a","value":60,"ts":1}`, `{"sensor_id":"a","ts":1,"value":60}`),
	keep("limit -90", `{"sensor_id":"a","value":-90,"ts":1}`, `{"sensor_id":"a","ts":1,"value":-90}`),
	keep("60 plus rounding", `{"sensor_id":"a","value":60.000000000000001,"ts":1}`, `{"sensor_id":"a","ts":1,"value":60}`),
	drop("60 plus ulp", `{"sensor_id":"a","value":60.00000000000001,"ts":1}`),
	drop("below -90", `{"sensor_id":"a","value":-90.1,"ts":1}`),
	drop("999.9", `{"sensor_id":"a","value":999.9,"ts":1}`),
	drop("1e21", `{"sensor_id":"a","value":1e21,"ts":1}`),
	drop("huge int", `{"sensor_id":"a","value":123456789012345678901234567890,"ts":1}`),
	drop("max int64", `{"sensor_id":"a","value":9223372036854775807,"ts":1}`),
	drop("overflow +Inf", `{"sensor_id":"a","value":1e400,"ts":1}`),
	drop("overflow -Inf", `{"sensor_id":"a","value":-1e400,"ts":1}`),
	drop("overflow F", `{"sensor_id":"a","value":1.7e308,"ts":1,"unit":"F"}`),
	fail("overflow then bad unit", `{"sensor_id":"a","value":1e400,"ts":1,"unit":"K"}`, "unit: unknown unit"),

	// ts
	keep("ts max int64", `{"sensor_id":"a","value":1,"ts":9223372036854775807}`, `{"sensor_id":"a","ts":9223372036854775807,"value":1}`),
	keep("ts min int64", `{"sensor_id":"a","value":1,"ts":-9223372036854775808}`, `{"sensor_id":"a","ts":-9223372036854775808,"value":1}`),
	keep("ts -0", `{"sensor_id":"a","value":1,"ts":-0}`, `{"sensor_id":"a","ts":0,"value":1}`),
	keep("ts 0", `{"sensor_id":"a","value":1,"ts":0}`, `{"sensor_id":"a","ts":0,"value":1}`),
	fail("ts overflow", `{"sensor_id":"a","value":1,"ts":9223372036854775808}`, "ts: want integer epoch ms, got fraction"),
	fail("ts underflow", `{"sensor_id":"a","value":1,"ts":-9223372036854775809}`, "ts: want integer epoch ms, got fraction"),
	fail("ts 20 digits", `{"sensor_id":"a","value":1,"ts":10000000000000000000}`, "ts: want integer epoch ms, got fraction"),
	fail("ts fraction", `{"sensor_id":"a","value":1,"ts":1700000000123.5}`, "ts: want integer epoch ms, got fraction"),
	fail("ts .0", `{"sensor_id":"a","value":1,"ts":1.0}`, "ts: want integer epoch ms, got fraction"),
	fail("ts exponent", `{"sensor_id":"a","value":1,"ts":1.7e12}`, "ts: want integer epoch ms, got fraction"),
	fail("ts int exponent", `{"sensor_id":"a","value":1,"ts":1e3}`, "ts: want integer epoch ms, got fraction"),
	fail("ts string", `{"sensor_id":"a","value":1,"ts":"1700000000123"}`, "ts: want integer epoch ms, got string"),
	fail("ts bool", `{"sensor_id":"a","value":1,"ts":false}`, "ts: want integer epoch ms, got bool"),
	fail("ts null", `{"sensor_id":"a","value":1,"ts":null}`, "ts: want integer epoch ms, got null"),
	fail("ts object", `{"sensor_id":"a","value":1,"ts":{"ms":1}}`, "ts: want integer epoch ms, got object"),
	fail("ts array", `{"sensor_id":"a","value":1,"ts":[1]}`, "ts: want integer epoch ms, got array"),
	fail("ts missing", `{"sensor_id":"a","value":1}`, "ts: missing"),

	// value
	fail("value missing", `{"sensor_id":"a","ts":1}`, "value: missing"),
	fail("value string", `{"sensor_id":"a","value":"n/a","ts":1}`, "value: want number, got string"),
	fail("value numeric string", `{"sensor_id":"a","value":"21.5","ts":1}`, "value: want number, got string"),
	fail("value bool", `{"sensor_id":"a","value":true,"ts":1}`, "value: want number, got bool"),
	fail("value null", `{"sensor_id":"a","value":null,"ts":1}`, "value: want number, got null"),
	fail("value object", `{"sensor_id":"a","value":{},"ts":1}`, "value: want number, got object"),
	fail("value array", `{"sensor_id":"a","value":[],"ts":1}`, "value: want number, got array"),

	// unit
	fail("unit K", `{"sensor_id":"a",`+okRest+`,"unit":"K"}`, "unit: unknown unit"),
	fail("unit c", `{"sensor_id":"a",`+okRest+`,"unit":"c"}`, "unit: unknown unit"),
	fail("unit empty", `{"sensor_id":"a",`+okRest+`,"unit":""}`, "unit: unknown unit"),
	fail("unit FF", `{"sensor_id":"a",`+okRest+`,"unit":"FF"}`, "unit: unknown unit"),
	fail("unit null", `{"sensor_id":"a",`+okRest+`,"unit":null}`, "unit: unknown unit"),
	fail("unit number", `{"sensor_id":"a",`+okRest+`,"unit":1}`, "unit: unknown unit"),
	fail("unit object", `{"sensor_id":"a",`+okRest+`,"unit":{"u":"C"}}`, "unit: unknown unit"),
	fail("unit array", `{"sensor_id":"a",`+okRest+`,"unit":["C"]}`, "unit: unknown unit"),

	// sensor_id
	fail("sensor_id missing", `{`+okRest+`}`, "sensor_id: missing"),
	fail("sensor_id empty", `{"sensor_id":"",`+okRest+`}`, "sensor_id: empty"),
	fail("sensor_id int", `{"sensor_id":42,`+okRest+`}`, "sensor_id: want string, got number"),
	fail("sensor_id float", `{"sensor_id":4.2,`+okRest+`}`, "sensor_id: want string, got number"),
	fail("sensor_id true", `{"sensor_id":true,`+okRest+`}`, "sensor_id: want string, got bool"),
	fail("sensor_id null", `{"sensor_id":null,`+okRest+`}`, "sensor_id: want string, got null"),
	fail("sensor_id object", `{"sensor_id":{"id":"a"},`+okRest+`}`, "sensor_id: want string, got object"),
	fail("sensor_id array", `{"sensor_id":["a"],`+okRest+`}`, "sensor_id: want string, got array"),
	keep("sensor_id NUL", `{"sensor_id":"\u0000",`+okRest+`}`, `{"sensor_id":"\u0000","ts":2,"value":1}`),
	keep("sensor_id escapes", `{"sensor_id":"s-\u0030\u00e9\"\\\/<>&\t\n\u2028\u2029\ud83d\ude00",`+okRest+`}`,
		`{"sensor_id":"s-0é\"\\/\u003c\u003e\u0026\t\n\u2028\u2029😀","ts":2,"value":1}`),
	keep("sensor_id raw html", `{"sensor_id":"<b>&amp;</b>",`+okRest+`}`, `{"sensor_id":"\u003cb\u003e\u0026amp;\u003c/b\u003e","ts":2,"value":1}`),
	keep("sensor_id control escapes", `{"sensor_id":"\b\f\r\u001f\u007f",`+okRest+`}`, `{"sensor_id":"\b\f\r\u001f`+"\x7f"+`","ts":2,"value":1}`),
	keep("sensor_id lone surrogate", `{"sensor_id":"a\ud800b",`+okRest+`}`, `{"sensor_id":"a`+"\ufffd"+`b","ts":2,"value":1}`),
	keep("sensor_id lone low surrogate", `{"sensor_id":"\udc00\ud800\u0041",`+okRest+`}`, `{"sensor_id":"`+"\ufffd\ufffd"+`A","ts":2,"value":1}`),
	keep("sensor_id invalid utf8", "{\"sensor_id\":\"a\xffb\xc3\",\"value\":1,\"ts\":2}", `{"sensor_id":"a`+"\ufffd"+`b`+"\ufffd"+`","ts":2,"value":1}`),
	keep("sensor_id raw unicode", `{"sensor_id":"Zürich-ø-日本",`+okRest+`}`, `{"sensor_id":"Zürich-ø-日本","ts":2,"value":1}`),
	keep("sensor_id raw U+2028", "{\"sensor_id\":\"a\u2028b\",\"value\":1,\"ts\":2}", `{"sensor_id":"a\u2028b","ts":2,"value":1}`),
	keep("escaped key", `{"sensor\u005fid":"a","v\u0061lue":1,"\u0074s":2}`, `{"sensor_id":"a","ts":2,"value":1}`),

	// duplicate keys: the last one wins (encoding/json)
	keep("dup sensor_id last good", `{"sensor_id":1,"sensor_id":"b",`+okRest+`}`, `{"sensor_id":"b","ts":2,"value":1}`),
	fail("dup sensor_id last bad", `{"sensor_id":"b","sensor_id":1,`+okRest+`}`, "sensor_id: want string, got number"),
	keep("dup value", `{"sensor_id":"a","value":"x","ts":2,"value":3}`, `{"sensor_id":"a","ts":2,"value":3}`),
	keep("dup ts", `{"sensor_id":"a","value":1,"ts":2.5,"ts":7}`, `{"sensor_id":"a","ts":7,"value":1}`),
	fail("dup unit", `{"sensor_id":"a",`+okRest+`,"unit":"F","unit":"X"}`, "unit: unknown unit"),

	// order of checks
	fail("order all bad", `{"sensor_id":1,"value":"x","ts":"y","unit":2}`, "sensor_id: want string, got number"),
	fail("order ts before value", `{"sensor_id":"a","value":"x","ts":"y","unit":2}`, "ts: want integer epoch ms, got string"),
	fail("order value before unit", `{"sensor_id":"a","value":"x","ts":1,"unit":2}`, "value: want number, got string"),
	fail("order unit before drop", `{"sensor_id":"a","value":999,"ts":1,"unit":2}`, "unit: unknown unit"),
	fail("all missing", `{}`, "sensor_id: missing"),

	// whitespace and nesting
	keep("whitespace", " \t{ \"sensor_id\" : \"a\" ,\n\"value\" :\r 1 , \"ts\" : 2 } \r\n", `{"sensor_id":"a","ts":2,"value":1}`),
	keep("nested objects skipped", `{"meta":{"sensor_id":5,"ts":"x","a":[{"value":null},[],{}],"s":"}]\"{"},"sensor_id":"a","value":1,"ts":2,"z":[1,-2.5e3,true,false,null,"x"]}`,
		`{"sensor_id":"a","ts":2,"value":1}`),
	keep("invalid utf8 elsewhere", "{\"x\":\"\xff\xfe\",\"sensor_id\":\"a\",\"value\":1,\"ts\":2}", `{"sensor_id":"a","ts":2,"value":1}`),

	// not a JSON object
	fail("empty line", ``, "not a JSON object"),
	fail("blank line", "  \t", "not a JSON object"),
	fail("array", `["s-0042",21.5,1700000000123]`, "not a JSON object"),
	fail("null", `null`, "not a JSON object"),
	fail("string", `"x"`, "not a JSON object"),
	fail("number", `1`, "not a JSON object"),
	fail("plain text", `sensor s-42 value=21.5`, "not a JSON object"),
	fail("truncated", `{"sensor_id":"s-0042","value":21.5`, "not a JSON object"),
	fail("truncated in string", `{"sensor_id":"s-00`, "not a JSON object"),
	fail("truncated escape", `{"sensor_id":"s-00\`, "not a JSON object"),
	fail("only brace", `{`, "not a JSON object"),
	fail("extra brace", `{"a":1}}`, "not a JSON object"),
	fail("trailing garbage", `{"a":1} x`, "not a JSON object"),
	fail("two objects", `{"a":1}{"b":2}`, "not a JSON object"),
	fail("two objects spaced", `{"a":1} {"b":2}`, "not a JSON object"),
	fail("leading zero", `{"sensor_id":"a","value":01,"ts":2}`, "not a JSON object"),
	fail("bare dot", `{"sensor_id":"a","value":1.,"ts":2}`, "not a JSON object"),
	fail("leading dot", `{"sensor_id":"a","value":.5,"ts":2}`, "not a JSON object"),
	fail("plus sign", `{"sensor_id":"a","value":+1,"ts":2}`, "not a JSON object"),
	fail("bare minus", `{"sensor_id":"a","value":-,"ts":2}`, "not a JSON object"),
	fail("empty exponent", `{"sensor_id":"a","value":1e,"ts":2}`, "not a JSON object"),
	fail("empty exponent sign", `{"sensor_id":"a","value":1e+,"ts":2}`, "not a JSON object"),
	fail("NaN", `{"sensor_id":"a","value":NaN,"ts":2}`, "not a JSON object"),
	fail("Infinity", `{"sensor_id":"a","value":Infinity,"ts":2}`, "not a JSON object"),
	fail("hex", `{"sensor_id":"a","value":0x10,"ts":2}`, "not a JSON object"),
	fail("control char in string", "{\"sensor_id\":\"a\x01\",\"value\":1,\"ts\":2}", "not a JSON object"),
	fail("raw tab in string", "{\"sensor_id\":\"a\tb\",\"value\":1,\"ts\":2}", "not a JSON object"),
	fail("bad escape", `{"sensor_id":"a\q","value":1,"ts":2}`, "not a JSON object"),
	fail("single quote escape", `{"sensor_id":"a\'","value":1,"ts":2}`, "not a JSON object"),
	fail("bad unicode escape", `{"sensor_id":"a\u12g4","value":1,"ts":2}`, "not a JSON object"),
	fail("short unicode escape", `{"sensor_id":"a\u12"}`, "not a JSON object"),
	fail("single quotes", `{'sensor_id':'a'}`, "not a JSON object"),
	fail("unquoted key", `{sensor_id:"a"}`, "not a JSON object"),
	fail("trailing comma", `{"sensor_id":"a","value":1,"ts":2,}`, "not a JSON object"),
	fail("missing colon", `{"sensor_id" "a"}`, "not a JSON object"),
	fail("missing value", `{"sensor_id":}`, "not a JSON object"),
	fail("lonely comma", `{,}`, "not a JSON object"),
	fail("bad literal", `{"sensor_id":"a","value":1,"ts":2,"x":tru}`, "not a JSON object"),
	fail("bad literal suffix", `{"sensor_id":"a","value":1,"ts":2,"x":nulls}`, "not a JSON object"),
	fail("upper literal", `{"sensor_id":"a","value":1,"ts":2,"x":True}`, "not a JSON object"),
	fail("nested trailing comma", `{"sensor_id":"a","value":1,"ts":2,"x":[1,]}`, "not a JSON object"),
	fail("nested missing comma", `{"sensor_id":"a","value":1,"ts":2,"x":[1 2]}`, "not a JSON object"),
	fail("nested bad object", `{"meta":{"a":},"sensor_id":"a","value":1,"ts":2}`, "not a JSON object"),
	fail("nested unclosed", `{"meta":{"a":[1,2}},"sensor_id":"a","value":1,"ts":2}`, "not a JSON object"),
	fail("BOM", "\xef\xbb\xbf{\"sensor_id\":\"a\",\"value\":1,\"ts\":2}", "not a JSON object"),
	fail("NUL after", "{\"sensor_id\":\"a\",\"value\":1,\"ts\":2}\x00", "not a JSON object"),
	fail("vertical tab", "\v{\"sensor_id\":\"a\",\"value\":1,\"ts\":2}", "not a JSON object"),
	fail("comment", `{"sensor_id":"a","value":1,"ts":2} // c`, "not a JSON object"),
	fail("invalid utf8 outside string", "{\"sensor_id\":\"a\",\"value\":1,\"ts\":2}\xff", "not a JSON object"),
}

func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

func init() {
	// encoding/json allows 10000 nesting levels, counting the line's object.
	cases = append(cases,
		keep("depth 10000", `{"sensor_id":"a","value":1,"ts":2,"x":`+nested("[", "]", 9999)+`}`, `{"sensor_id":"a","ts":2,"value":1}`),
		fail("depth 10001", `{"sensor_id":"a","value":1,"ts":2,"x":`+nested("[", "]", 10000)+`}`, "not a JSON object"),
		keep("depth 10000 objects", `{"sensor_id":"a","value":1,"ts":2,"x":`+strings.Repeat(`{"k":`, 9999)+"1"+strings.Repeat("}", 9999)+`}`, `{"sensor_id":"a","ts":2,"value":1}`),
		fail("depth 10001 objects", `{"sensor_id":"a","value":1,"ts":2,"x":`+strings.Repeat(`{"k":`, 10000)+"1"+strings.Repeat("}", 10000)+`}`, "not a JSON object"),
		fail("depth 10001 in field", `{"sensor_id":`+nested("[", "]", 10000)+`,"value":1,"ts":2}`, "not a JSON object"),
	)
}

func TestCleanJSONTable(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("PREFIX")
			out, v, reason := rules.CleanJSON(prefix, []byte(tc.line))
			if v != tc.v || reason != tc.reason {
				t.Fatalf("CleanJSON(%.200q) = %v %q, want %v %q", tc.line, v, reason, tc.v, tc.reason)
			}
			if !bytes.HasPrefix(out, []byte("PREFIX")) {
				t.Fatalf("dst prefix lost: %q", out)
			}
			got := string(out[len("PREFIX"):])
			if got != tc.out {
				t.Fatalf("CleanJSON(%.200q) out\n got %q\nwant %q", tc.line, got, tc.out)
			}
			// The table itself is checked against the encoding/json reference.
			rout, rv, rreason := refClean([]byte(tc.line))
			if rv != tc.v || rreason != tc.reason || rout != tc.out {
				t.Fatalf("reference disagrees with the table: %v %q %q", rv, rreason, rout)
			}
		})
	}
}

func TestCleanFields(t *testing.T) {
	sid := rules.StringField([]byte("s-1"))
	val := rules.FloatField(21.5)
	ts := rules.IntField(1700000000000)
	for _, tc := range []struct {
		name               string
		sid, val, ts, unit rules.Field
		want               string
		v                  rules.Verdict
		reason             string
	}{
		{"keep", sid, val, ts, rules.MissingField(), `{"sensor_id":"s-1","ts":1700000000000,"value":21.5}`, rules.Keep, ""},
		{"int value", sid, rules.IntField(-3), ts, rules.StringField([]byte("C")), `{"sensor_id":"s-1","ts":1700000000000,"value":-3}`, rules.Keep, ""},
		{"F", sid, rules.IntField(50), ts, rules.StringField([]byte("F")), `{"sensor_id":"s-1","ts":1700000000000,"value":10}`, rules.Keep, ""},
		{"raw object text", rules.RawField([]byte(`{"a":1}`)), val, ts, rules.MissingField(), "", rules.Fail, "sensor_id: want string, got object"},
		{"raw array text", rules.RawField([]byte(`[1]`)), val, ts, rules.MissingField(), "", rules.Fail, "sensor_id: want string, got array"},
		{"raw array kind", sid, val, rules.ArrayField(), rules.MissingField(), "", rules.Fail, "ts: want integer epoch ms, got array"},
		{"raw object kind", sid, rules.ObjectField(), ts, rules.MissingField(), "", rules.Fail, "value: want number, got object"},
		{"bool unit", sid, val, ts, rules.BoolField(true), "", rules.Fail, "unit: unknown unit"},
		{"null ts", sid, val, rules.NullField(), rules.MissingField(), "", rules.Fail, "ts: want integer epoch ms, got null"},
		{"NaN dropped", sid, rules.FloatField(math.NaN()), ts, rules.MissingField(), "", rules.Drop, ""},
		{"+Inf dropped", sid, rules.FloatField(math.Inf(1)), ts, rules.StringField([]byte("F")), "", rules.Drop, ""},
	} {
		out, v, reason := rules.Clean(nil, tc.sid, tc.val, tc.ts, tc.unit)
		if string(out) != tc.want || v != tc.v || reason != tc.reason {
			t.Errorf("%s: got %q %v %q, want %q %v %q", tc.name, out, v, reason, tc.want, tc.v, tc.reason)
		}
	}
}

func TestAppendJSONFloat(t *testing.T) {
	check := func(f float64) {
		t.Helper()
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := rules.AppendJSONFloat(nil, f); string(got) != string(want) {
			t.Fatalf("AppendJSONFloat(%v) = %s, want %s", f, got, want)
		}
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 21.53, 1e20, 1e21, -1e21, 1e21 - 65536, 123456789012345678901.0,
		1e-6, 1e-7, 9.99999e-7, 0.000001, -1e-7, 5e-324, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		1e100, 1.5e-300, 36.99999999999999, 1 << 53, 1<<53 + 2, 100, 1e9, 123.456e-10} {
		check(f)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		check(f)
		check(float64(r.IntN(2000000)-1000000) / 100)
		check(r.NormFloat64() * math.Pow(10, float64(r.IntN(50)-25)))
		// The short-decimal fast path: up to 6 fraction digits below 1e8,
		// its edges, and the Fahrenheit conversions of such values.
		for p := 0; p <= 7; p++ {
			d := float64(r.Int64N(2e14)-1e14) / math.Pow(10, float64(p))
			check(d)
			check((d - 32) * 5 / 9)
			check(math.Nextafter(d, 0))
		}
		check(float64(r.IntN(2e9)-1e9) / 10)
		check(0.1 + float64(r.IntN(100))*0.1)
	}
	for _, f := range []float64{99999999.999999, -99999999.999999, 1e8 - 1, 0.000001, 0.0000015, 1e-6 + 1e-12, 0.3, 0.1 + 0.2} {
		check(f)
	}
	if got := string(rules.AppendJSONFloat(nil, math.Inf(-1))); got != "-Inf" {
		t.Fatalf("-Inf: %q", got)
	}
}

func TestAppendJSONString(t *testing.T) {
	check := func(s string) {
		t.Helper()
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := rules.AppendJSONString([]byte("x"), []byte(s)); string(got[1:]) != string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got[1:], want)
		}
	}
	for _, s := range []string{"", "s-0042", `"\/`, "<>&'", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "\u2028\u2029", "é日本😀",
		"\xff", "a\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xef\xbf\xbd"} {
		check(s)
	}
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "Z", "<", ">", "&", "\"", "\\", "\x00", "\x1f", "\x7f", "é", "\u2028", "\u2029", "\xff", "\xc3", "\xe2\x80", "😀", "\t", " "}
	for range 100000 {
		var sb strings.Builder
		for range r.IntN(12) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		check(sb.String())
		b := make([]byte, r.IntN(10))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		check(string(b))
	}
}

// TestCleanJSONAgainstReference runs CleanJSON and the encoding/json
// reference over every line of generated data.
func TestCleanJSONAgainstReference(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		lines := sensorgen.Lines(20000, seed)
		counts := map[rules.Verdict]int{}
		reasons := map[string]int{}
		var buf []byte
		for i, line := range lines {
			var v rules.Verdict
			var reason string
			buf, v, reason = rules.CleanJSON(buf[:0], line)
			rout, rv, rreason := refClean(line)
			if v != rv || reason != rreason || string(buf) != rout {
				t.Fatalf("seed %d line %d %q:\n CleanJSON %v %q %q\n reference %v %q %q", seed, i, line, v, reason, buf, rv, rreason, rout)
			}
			counts[v]++
			reasons[reason]++
		}
		t.Logf("seed %d: keep %d, fail %d, drop %d; reasons %v", seed, counts[rules.Keep], counts[rules.Fail], counts[rules.Drop], reasons)
		// The generated data must exercise every verdict and failure kind.
		if counts[rules.Keep] < 18000 || counts[rules.Fail] < 200 || counts[rules.Drop] < 50 {
			t.Fatalf("unexpected mix: %v", counts)
		}
		for _, r := range []string{
			"not a JSON object", "sensor_id: missing", "sensor_id: empty", "sensor_id: want string, got number",
			"sensor_id: want string, got null", "sensor_id: want string, got object", "ts: missing",
			"ts: want integer epoch ms, got string", "ts: want integer epoch ms, got fraction", "value: missing",
			"value: want number, got string", "value: want number, got null", "value: want number, got bool",
			"unit: unknown unit",
		} {
			if reasons[r] == 0 {
				t.Errorf("seed %d: no line failed with %q", seed, r)
			}
		}
	}
}

func TestCleanJSONNoAllocs(t *testing.T) {
	lines := [][]byte{
		[]byte(`{"sensor_id":"s-0042","value":21.53,"ts":1700000000123}`),
		[]byte(`{"sensor_id":"s-0042","value":71.5,"ts":1700000000123,"unit":"F"}`),
		[]byte(`{"sensor_id":"s-0042","meta":{"a":[1,2,{"b":null}]},"value":2.153e1,"ts":1700000000123}`),
		[]byte(`{"sensor_id":"s-0042","value":999.9,"ts":1700000000123}`),
		[]byte(`{"sensor_id":"s-0042","value":"n/a","ts":1700000000123}`),
		[]byte(`{"sensor_id":"s-0042","value":21.5`),
	}
	dst := make([]byte, 0, 256)
	for _, line := range lines {
		allocs := testing.AllocsPerRun(100, func() {
			rules.CleanJSON(dst[:0], line)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per line", line, allocs)
		}
	}
}

func FuzzCleanJSON(f *testing.F) {
	for _, tc := range cases {
		if len(tc.line) < 1000 {
			f.Add([]byte(tc.line))
		}
	}
	for _, l := range sensorgen.Lines(200, 7) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		out, v, reason := rules.CleanJSON(nil, line)
		rout, rv, rreason := refClean(line)
		if v != rv || reason != rreason || string(out) != rout {
			t.Fatalf("%q:\n CleanJSON %v %q %q\n reference %v %q %q", line, v, reason, out, rv, rreason, rout)
		}
	})
}

// BenchmarkCleanJSON measures the native baseline over generated data
// (about 2% failures and 0.5% drops, like the bundled file).
func BenchmarkCleanJSON(b *testing.B) {
	lines := sensorgen.Lines(100000, 1)
	var size int64
	for _, l := range lines {
		size += int64(len(l)) + 1
	}
	b.SetBytes(size / int64(len(lines)))
	b.ReportAllocs()
	dst := make([]byte, 0, 256)
	n := 0
	for b.Loop() {
		dst, _, _ = rules.CleanJSON(dst[:0], lines[n%len(lines)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
