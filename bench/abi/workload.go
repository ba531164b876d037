// Package main measures the cost of the Wasm boundary: records per second
// through plugin.Instance.Call for no-op guests and the sensor cleaner, at
// batch sizes 1, 64 and 1024, against native Go functions doing the same
// work in the same run. Run it with `make bench-abi`; abi_test.go is its
// test twin (every workload's output is checked there).
package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
	"github.com/wsp-project/wsp/examples/sensors/rules"
	"github.com/wsp-project/wsp/runtime/plugin"
	"github.com/wsp-project/wsp/runtime/record"
)

// processor is one side of a comparison: a Wasm instance or a native function.
type processor interface {
	Process(b *record.Batch, res *plugin.Result) error
}

type wasmProc struct{ in *plugin.Instance }

func (w wasmProc) Process(b *record.Batch, res *plugin.Result) error {
	return w.in.Call(context.Background(), b, res)
}

// nativeKeep visits every record and emits it unchanged: what a no-op map
// costs in plain Go (the same materialisation the host does for `same_*`).
type nativeKeep struct{}

func (nativeKeep) Process(b *record.Batch, res *plugin.Result) error {
	resetResult(res, b)
	out := &res.Ports[0]
	for i := range b.Records {
		out.Records = append(out.Records, b.Records[i])
	}
	return nil
}

// nativeCopy also copies each value, as the copying no-op guests do.
type nativeCopy struct{}

func (nativeCopy) Process(b *record.Batch, res *plugin.Result) error {
	resetResult(res, b)
	out := &res.Ports[0]
	for i := range b.Records {
		r := b.Records[i]
		r.Value = out.CopyBytes(r.Value)
		out.Records = append(out.Records, r)
	}
	return nil
}

// nativeSensor applies the cleaning rules in plain Go (hand-written JSON
// scan, no Wasm): the physical limit for the sensor step.
type nativeSensor struct{}

func (nativeSensor) Process(b *record.Batch, res *plugin.Result) error {
	resetResult(res, b)
	out := &res.Ports[0]
	var buf []byte
	for i := range b.Records {
		r := b.Records[i]
		var v rules.Verdict
		var reason string
		start := len(buf)
		buf, v, reason = rules.CleanJSON(buf, r.Value)
		switch v {
		case rules.Keep:
			r.Value = out.CopyBytes(buf[start:])
			out.Records = append(out.Records, r)
		case rules.Fail:
			res.Failed = append(res.Failed, plugin.Failure{Index: i, Reason: reason})
		default:
			res.Dropped++
		}
	}
	return nil
}

func resetResult(res *plugin.Result, b *record.Batch) {
	if len(res.Ports) == 0 {
		res.Ports = make([]record.Batch, 1)
	}
	res.Ports[0].Reset()
	res.Ports[0].Source = b.Source
	res.Failed = res.Failed[:0]
	res.Dropped = 0
}

// records100 makes n records whose values are 100 bytes.
func records100(n int) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		v := []byte(fmt.Sprintf(`{"id":%08d,"payload":"`, i))
		v = append(v, bytes.Repeat([]byte{'x'}, 100-len(v)-2)...)
		v = append(v, '"', '}')
		out[i] = record.Record{Value: v, Time: int64(i), Flags: record.HasTime, Pos: int64(i + 1)}
	}
	return out
}

// sensorRecords makes n sensor readings from the example's generator.
func sensorRecords(n int) []record.Record {
	var buf bytes.Buffer
	if err := sensorgen.Write(&buf, n, 1); err != nil {
		panic(err)
	}
	lines := bytes.Split(bytes.TrimRight(buf.Bytes(), "\n"), []byte{'\n'})
	out := make([]record.Record, len(lines))
	for i, l := range lines {
		out[i] = record.Record{Value: l, Pos: int64(i + 1)}
	}
	return out
}

// batches cuts recs into batches of size n.
func batches(recs []record.Record, n int) []*record.Batch {
	var out []*record.Batch
	for i := 0; i < len(recs); i += n {
		end := min(i+n, len(recs))
		out = append(out, &record.Batch{Source: record.Source{Input: "bench"}, Records: recs[i:end]})
	}
	return out
}

// repo finds the repository root from this package's folder.
func repo(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// guests used by the benchmark, by name.
type guestSpec struct {
	name   string // label in the table
	path   string // .wasm, or a Go source folder built on the fly
	native processor
	data   string // "100B" or "sensor"
}

func guestSpecs(root string) []guestSpec {
	w := func(n string) string { return filepath.Join(root, "plugins", "testdata", "wasm", n+".wasm") }
	return []guestSpec{
		{"noop keep (WAT)", w("noop_keep"), nativeKeep{}, "100B"},
		{"noop copy (WAT)", w("noop_copy"), nativeCopy{}, "100B"},
		{"noop keep (Go SDK)", w("go_noop"), nativeKeep{}, "100B"},
		{"noop keep (Go SDK, batch form)", w("go_noopbatch"), nativeKeep{}, "100B"},
		{"noop copy (Go SDK)", w("go_noopcopy"), nativeCopy{}, "100B"},
		{"sensor cleaner (Go SDK)", filepath.Join(root, "examples", "sensors", "cleaner"), nativeSensor{}, "sensor"},
	}
}
