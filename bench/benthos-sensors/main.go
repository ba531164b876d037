// Command benthos-sensors runs a Benthos v4 stream config with the Benthos Go
// library (the baseline the wsp runtime is compared against) until its bounded
// input ends, then prints a one-line JSON summary to stderr.
//
//	INPUT=/tmp/sensors-1m.jsonl OUTPUT=/tmp/benthos-out.jsonl \
//	  go run ./bench/benthos-sensors -c examples/sensors/benthos/pipeline.yaml
//
// Environment variables in the config are expanded by Benthos itself
// (StreamBuilder.SetYAML expands ${VAR} and ${VAR:default} and leaves ${!...}
// interpolations alone); a ${VAR} without default that is not set is an error
// here, where Benthos would silently substitute an empty string.
//
// Relative Bloblang imports (`from "clean.blobl"`) are resolved against the
// config file's directory, then against the working directory.
//
// Record counts come from Benthos' own metrics (input_received, output_sent
// of each switch case, processor_error), captured by an in-process metrics
// exporter.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	confPath := flag.String("c", "", "Benthos YAML config file (required)")
	logLevel := flag.String("log", "none", "log level: none, error, warn, info, debug, trace (the mapping processor logs every failed record at error level)")
	dumpMetrics := flag.Bool("metrics", false, "also print all captured counters to stderr")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *confPath == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: benthos-sensors -c config.yaml [-log level] [-metrics] [-cpuprofile file]")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benthos-sensors:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "benthos-sensors:", err)
			os.Exit(1)
		}
	}
	sum, counters, err := run(*confPath, *logLevel)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benthos-sensors:", err)
		os.Exit(1)
	}
	if *dumpMetrics {
		keys := make([]string, 0, len(counters))
		for k := range counters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(os.Stderr, "%s %d\n", k, counters[k])
		}
	}
	line, _ := json.Marshal(sum)
	fmt.Fprintln(os.Stderr, string(line))
}

type summary struct {
	Config      string  `json:"config"`
	RecordsIn   int64   `json:"records_in"`
	RecordsOut  int64   `json:"records_out"`
	Errored     int64   `json:"records_errored"`
	Dropped     int64   `json:"records_dropped"`
	ElapsedSec  float64 `json:"elapsed_s"`
	RecordsPerS float64 `json:"records_per_s"`
}

func run(confPath, logLevel string) (summary, map[string]int64, error) {
	raw, err := os.ReadFile(confPath)
	if err != nil {
		return summary{}, nil, err
	}
	if missing := missingEnvVars(string(raw), os.LookupEnv); len(missing) > 0 {
		return summary{}, nil, fmt.Errorf("%s: environment variables not set: %s", confPath, strings.Join(missing, ", "))
	}

	env := service.NewEnvironment()
	env.UseBloblangEnvironment(bloblang.GlobalEnvironment().WithCustomImporter(relativeImporter(filepath.Dir(confPath))))
	counters := &counterExporter{}
	if err := env.RegisterMetricsExporter("wsp_counters", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) { return counters, nil }); err != nil {
		return summary{}, nil, err
	}

	b := env.NewStreamBuilder()
	if err := b.SetYAML(string(raw)); err != nil {
		return summary{}, nil, fmt.Errorf("%s: %w", confPath, err)
	}
	if err := b.SetLoggerYAML("level: " + logLevel); err != nil {
		return summary{}, nil, err
	}
	if err := b.SetMetricsYAML("wsp_counters: {}"); err != nil {
		return summary{}, nil, err
	}
	stream, err := b.Build()
	if err != nil {
		return summary{}, nil, err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	err = stream.Run(ctx)
	elapsed := time.Since(start)
	if err != nil && !errors.Is(err, context.Canceled) {
		return summary{}, nil, err
	}

	snap := counters.snapshot()
	s := summary{Config: confPath, ElapsedSec: elapsed.Seconds()}
	s.RecordsIn = sumCounters(snap, "input_received", "root.input")
	// With a switch output the kept and errored records are the output_sent
	// of its cases; otherwise the top-level output_sent.
	s.Errored = sumCounters(snap, "output_sent", "root.output.switch.cases.0.output")
	s.RecordsOut = sumCounters(snap, "output_sent", "root.output.switch.cases.1.output")
	if s.Errored == 0 && s.RecordsOut == 0 {
		s.RecordsOut = sumCounters(snap, "output_sent", "root.output")
	}
	s.Dropped = s.RecordsIn - s.RecordsOut - s.Errored
	if s.ElapsedSec > 0 {
		s.RecordsPerS = float64(s.RecordsIn) / s.ElapsedSec
	}
	return s, snap, err
}

// envVarRe matches the interpolations Benthos expands (see
// internal/config/env_vars.go): ${NAME}, ${NAME:default}, ${NAME|func}.
var envVarRe = regexp.MustCompile(`\${([0-9A-Za-z_.]+)(:((\${[^}]+})|[^}])*)?(?:\|[0-9A-Za-z]+)?}`)

// missingEnvVars lists the ${NAME} references without default whose variable
// is not set. ${!...} (Bloblang interpolation) and the ${{NAME}} escape do
// not match the pattern.
func missingEnvVars(conf string, lookup func(string) (string, bool)) []string {
	var missing []string
	seen := map[string]bool{}
	for _, m := range envVarRe.FindAllStringSubmatchIndex(conf, -1) {
		if m[4] >= 0 { // has a default
			continue
		}
		name := conf[m[2]:m[3]]
		if _, ok := lookup(name); !ok && !seen[name] {
			seen[name] = true
			missing = append(missing, name)
		}
	}
	return missing
}

// relativeImporter resolves Bloblang imports against dir first, then as given.
func relativeImporter(dir string) func(name string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				return b, nil
			}
		}
		return os.ReadFile(name)
	}
}

func sumCounters(snap map[string]int64, name, path string) int64 {
	var n int64
	for k, v := range snap {
		if strings.HasPrefix(k, name+"{") && strings.Contains(k, `path="`+path+`"`) {
			n += v
		}
	}
	return n
}

// counterExporter is a Benthos metrics exporter that keeps counters in memory
// (keyed `name{k="v",...}`) and ignores timers and gauges.
type counterExporter struct {
	mu sync.Mutex
	m  map[string]*atomic.Int64
}

type counter struct{ v *atomic.Int64 }

func (c counter) Incr(n int64) { c.v.Add(n) }

type nopMetric struct{}

func (nopMetric) Timing(int64) {}
func (nopMetric) Set(int64)    {}

func (e *counterExporter) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	return func(labelValues ...string) service.MetricsExporterCounter {
		var sb strings.Builder
		sb.WriteString(name)
		sb.WriteByte('{')
		for i, k := range labelKeys {
			if i > 0 {
				sb.WriteByte(',')
			}
			v := ""
			if i < len(labelValues) {
				v = labelValues[i]
			}
			fmt.Fprintf(&sb, "%s=%q", k, v)
		}
		sb.WriteByte('}')
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.m == nil {
			e.m = map[string]*atomic.Int64{}
		}
		c, ok := e.m[sb.String()]
		if !ok {
			c = new(atomic.Int64)
			e.m[sb.String()] = c
		}
		return counter{c}
	}
}

func (e *counterExporter) NewTimerCtor(string, ...string) service.MetricsExporterTimerCtor {
	return func(...string) service.MetricsExporterTimer { return nopMetric{} }
}

func (e *counterExporter) NewGaugeCtor(string, ...string) service.MetricsExporterGaugeCtor {
	return func(...string) service.MetricsExporterGauge { return nopMetric{} }
}

func (e *counterExporter) Close(context.Context) error { return nil }

func (e *counterExporter) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v.Load()
	}
	return out
}
