package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/wsp-project/wsp/hostabi"

	wsp "github.com/wsp-project/wsp/runtime"
	"github.com/wsp-project/wsp/runtime/plugin"
)

func cmdInspect(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: wsp plugin inspect <module.wasm | go-source-folder>")
		return exitUsage
	}
	ctx := context.Background()
	path := args[0]
	if wsp.IsGoSource(path) {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		built, err := wsp.BuildGoPlugin(ctx, path, filepath.Join(cache, "wsp"))
		if err != nil {
			fmt.Fprintln(stderr, "wsp plugin inspect:", err)
			return exitInspect
		}
		path = built
	}
	eng, err := plugin.NewEngine("")
	if err != nil {
		fmt.Fprintln(stderr, "wsp plugin inspect:", err)
		return exitFailed
	}
	defer eng.Close(ctx)
	m, err := eng.LoadFile(ctx, path, plugin.Options{})
	if err != nil {
		fmt.Fprintln(stderr, "wsp plugin inspect:", err)
		return exitInspect
	}
	defer m.Close(ctx)
	exports := m.Exports()
	sort.Strings(exports)
	fmt.Fprintf(stdout, "module:    %s\n", path)
	fmt.Fprintf(stdout, "sha256:    %s\n", m.Hash())
	fmt.Fprintf(stdout, "abi:       %d\n", hostabi.Version)
	feats := m.Features().Names()
	if len(feats) == 0 {
		feats = []string{"(none)"}
	}
	fmt.Fprintf(stdout, "features:  %s\n", strings.Join(feats, ", "))
	fmt.Fprintf(stdout, "exports:   %s\n", strings.Join(exports, ", "))
	if f := m.Fields(); len(f) > 0 {
		fmt.Fprintf(stdout, "fields:    %s\n", strings.Join(f, ", "))
	}
	if p := m.Ports(); len(p) > 0 {
		fmt.Fprintf(stdout, "ports:     %s\n", strings.Join(p, ", "))
	}
	if m.Features()&hostabi.FeatureState != 0 {
		fmt.Fprintf(stdout, "state:     layout version %d\n", m.StateVersion())
	}
	return exitOK
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writePrometheus renders the counters in the Prometheus text format.
func writePrometheus(w io.Writer, s wsp.Summary) {
	counter := func(name, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	}
	counter("wsp_input_records_total", "Records read from the input.")
	fmt.Fprintf(w, "wsp_input_records_total %d\n", s.InputRecords)
	counter("wsp_input_batches_total", "Batches read from the input.")
	fmt.Fprintf(w, "wsp_input_batches_total %d\n", s.InputBatches)
	counter("wsp_step_records_total", "Records per step and outcome.")
	for _, st := range s.Steps {
		n := strconv.Quote(st.Name)
		fmt.Fprintf(w, "wsp_step_records_total{step=%s,outcome=\"in\"} %d\n", n, st.In)
		fmt.Fprintf(w, "wsp_step_records_total{step=%s,outcome=\"out\"} %d\n", n, st.Out)
		fmt.Fprintf(w, "wsp_step_records_total{step=%s,outcome=\"routed\"} %d\n", n, st.Routed)
		fmt.Fprintf(w, "wsp_step_records_total{step=%s,outcome=\"failed\"} %d\n", n, st.Failed)
		fmt.Fprintf(w, "wsp_step_records_total{step=%s,outcome=\"dropped\"} %d\n", n, st.Dropped)
	}
	counter("wsp_output_records_total", "Records accepted per output.")
	for _, o := range s.Outputs {
		fmt.Fprintf(w, "wsp_output_records_total{output=%s} %d\n", strconv.Quote(o.Name), o.Written)
	}
	counter("wsp_output_retries_total", "Failed output writes that were retried.")
	for _, o := range s.Outputs {
		fmt.Fprintf(w, "wsp_output_retries_total{output=%s} %d\n", strconv.Quote(o.Name), o.Retries)
	}
}
