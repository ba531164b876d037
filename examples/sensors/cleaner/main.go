// Command cleaner is the sensor example's Wasm plugin: it validates raw
// readings, converts Fahrenheit to Celsius, drops implausible values and
// emits clean JSON lines. The host extracts the four fields it declares, so
// the plugin never parses JSON; the rules live in examples/sensors/rules,
// shared with the native baseline and checked against the Bloblang twin.
//
// Build: wsp builds it from this folder when a pipeline names it, or by hand:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o cleaner.wasm .
package main

import (
	"encoding/json"
	"fmt"

	"github.com/wsp-project/wsp/examples/sensors/rules"
	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

func init() {
	wsp.Fields("sensor_id", "value", "ts", "unit")
	wsp.OnInit(configure)
	wsp.Process(clean)
}

func main() {}

// failImplausible sends implausible readings to the error output instead of
// dropping them (config `implausible: fail`; default `drop`).
var failImplausible bool

const reasonImplausible = "value: implausible (outside -90..60 °C)"

func configure(cfg []byte) error {
	if len(cfg) == 0 {
		return nil
	}
	var c struct {
		Implausible string `json:"implausible"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	switch c.Implausible {
	case "", "drop":
	case "fail":
		failImplausible = true
	default:
		return fmt.Errorf("config: implausible: want drop or fail, got %q", c.Implausible)
	}
	return nil
}

// buf is reused for every output line; Emit copies it into the output.
var buf []byte

func clean(r *wsp.Record, out *wsp.Output) {
	if r.NotJSON() {
		out.Fail(r, rules.ReasonNotObject)
		return
	}
	var v rules.Verdict
	var reason string
	buf, v, reason = rules.Clean(buf[:0], field(r.Field(0)), field(r.Field(1)), field(r.Field(2)), field(r.Field(3)))
	switch v {
	case rules.Keep:
		out.Emit(r, buf)
	case rules.Fail:
		out.Fail(r, reason)
	case rules.Drop:
		if failImplausible {
			out.Fail(r, reasonImplausible)
		}
		// else: emit nothing; the host counts the record as dropped.
	}
}

// field converts an SDK field to the rules' field type.
func field(f wsp.Field) rules.Field {
	switch f.Kind() {
	case wsp.Null:
		return rules.NullField()
	case wsp.Bool:
		b, _ := f.Bool()
		return rules.BoolField(b)
	case wsp.Int:
		i, _ := f.Int()
		return rules.IntField(i)
	case wsp.Float:
		x, _ := f.Float()
		return rules.FloatField(x)
	case wsp.String:
		s, _ := f.Str()
		return rules.StringField(s)
	case wsp.Raw:
		t, _ := f.Raw()
		return rules.RawField(t)
	}
	return rules.MissingField()
}
