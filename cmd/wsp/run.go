package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	wsp "github.com/wsp-project/wsp/runtime"
)

// settings are the runtime settings of `wsp run`.
type settings struct {
	LogLevel          string
	Workers           int
	BatchSize         int
	MaxInFlight       int
	CacheDir          string
	StateDir          string
	CheckpointEvery   time.Duration
	FromSavepoint     string
	ResetState        []string
	StateBackend      string
	HTTPAddr          string
	BenthosConnectors bool
	CPUProfile        string
}

// loadSettings resolves flags > WSP_* env > config file > defaults.
func loadSettings(args []string, stderr io.Writer) (settings, []string, error) {
	fs := pflag.NewFlagSet("wsp run", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "runtime settings file (YAML, TOML or JSON; env WSP_CONFIG)")
	fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Int("workers", 0, "worker goroutines, each with its own Wasm instances (default: number of CPUs)")
	fs.Int("batch-size", 1024, "records per batch from wsp's own inputs")
	fs.Int("max-in-flight", 0, "input batches between read and acknowledgement (default: 4 x workers)")
	fs.String("cache-dir", "", "compiled module and Go plugin build cache (default: $XDG_CACHE_HOME/wsp)")
	fs.String("state-dir", "", "checkpoints of windows, watermarks and input positions; a restart resumes from the newest (default: none)")
	fs.Duration("checkpoint-interval", time.Second, "how often to checkpoint, with --state-dir")
	fs.String("state-backend", "", "where checkpoints go in --state-dir: pebble (writes only what changed) or files (default: what the folder holds, else pebble)")
	fs.String("from-savepoint", "", "start from this savepoint folder (wsp savepoint) instead of the newest checkpoint; needs --state-dir")
	fs.StringSlice("reset-state", nil, "keyed steps whose stored state is dropped once (a removed step's is left behind); restarts with the same flag keep the state built since; needs --state-dir")
	fs.String("http-addr", "127.0.0.1:4195", "address for /ready, /health, /metrics and /stats (\"\" or \"off\" disables)")
	fs.String("cpu-profile", "", "write a Go CPU profile of the run to this file")
	fs.Bool("benthos-connectors", false, "run every input and output through Benthos, also file/stdin/stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wsp run [flags] <pipeline.yaml>\n\nflags (each also as WSP_<NAME> in the environment, or in --config):")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return settings{}, nil, err
	}
	v := viper.New()
	v.SetEnvPrefix("WSP")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(fs); err != nil {
		return settings{}, nil, err
	}
	if cf := v.GetString("config"); cf != "" {
		v.SetConfigFile(cf)
		if err := v.ReadInConfig(); err != nil {
			return settings{}, nil, fmt.Errorf("config file %s: %w", cf, err)
		}
	}
	s := settings{
		LogLevel:          v.GetString("log-level"),
		Workers:           v.GetInt("workers"),
		BatchSize:         v.GetInt("batch-size"),
		MaxInFlight:       v.GetInt("max-in-flight"),
		CacheDir:          v.GetString("cache-dir"),
		StateDir:          v.GetString("state-dir"),
		CheckpointEvery:   v.GetDuration("checkpoint-interval"),
		FromSavepoint:     v.GetString("from-savepoint"),
		ResetState:        commaList(v.GetStringSlice("reset-state")),
		StateBackend:      v.GetString("state-backend"),
		HTTPAddr:          v.GetString("http-addr"),
		BenthosConnectors: v.GetBool("benthos-connectors"),
		CPUProfile:        v.GetString("cpu-profile"),
	}
	return s, fs.Args(), s.validate()
}

func (s settings) validate() error {
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level %q: want debug, info, warn or error", s.LogLevel)
	}
	if s.Workers < 0 || s.BatchSize <= 0 || s.MaxInFlight < 0 {
		return errors.New("workers, batch-size and max-in-flight must not be negative (batch-size > 0)")
	}
	if s.CheckpointEvery <= 0 {
		return fmt.Errorf("checkpoint-interval %s: want a positive duration such as 1s", s.CheckpointEvery)
	}
	return nil
}

func (s settings) logger(w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s.LogLevel))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	s, rest, err := loadSettings(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsp run:", err)
		return exitUsage
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "usage: wsp run [flags] <pipeline.yaml>")
		return exitUsage
	}
	log := s.logger(stderr)
	p, err := wsp.Load(rest[0])
	if err != nil {
		fmt.Fprintln(stderr, "wsp run:", err)
		return exitUsage
	}

	// First SIGINT/SIGTERM: stop reading and drain. Second: abandon retries.
	ctx, stop := context.WithCancel(context.Background())
	hard, hardStop := context.WithCancel(context.Background())
	defer stop()
	defer hardStop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		log.Info("stopping: draining in-flight records (signal again to abandon retries)")
		stop()
		if _, ok := <-sigs; ok {
			hardStop()
		}
	}()

	if s.CPUProfile != "" {
		f, err := os.Create(s.CPUProfile)
		if err != nil {
			fmt.Fprintln(stderr, "wsp run:", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "wsp run:", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	metrics := wsp.NewMetrics()
	if s.HTTPAddr != "" && s.HTTPAddr != "off" {
		srv, _, err := serveHTTP(s.HTTPAddr, metrics, s.StateDir)
		if err != nil {
			log.Warn("http server not started", "addr", s.HTTPAddr, "error", err)
		} else {
			defer srv.Close()
		}
	}
	sum, err := p.Run(ctx, wsp.Options{
		Workers:            s.Workers,
		BatchSize:          s.BatchSize,
		MaxInFlight:        s.MaxInFlight,
		CacheDir:           s.CacheDir,
		StateDir:           s.StateDir,
		CheckpointInterval: s.CheckpointEvery,
		FromSavepoint:      s.FromSavepoint,
		ResetState:         s.ResetState,
		StateBackend:       s.StateBackend,
		BenthosConnectors:  s.BenthosConnectors,
		Logger:             log,
		Metrics:            metrics,
		HardStop:           hard,
	})
	printSummary(stderr, sum)
	if err != nil {
		fmt.Fprintln(stderr, "wsp run: failed:", err)
		return exitFailed
	}
	if sum.InputErrors > 0 {
		fmt.Fprintf(stderr, "wsp run: the input reported %d errors (see the log): some input may not have been read\n", sum.InputErrors)
		return exitFailed
	}
	for _, o := range sum.Outputs {
		if o.Abandoned > 0 {
			fmt.Fprintf(stderr, "wsp run: output %s abandoned %d records at the hard stop (their input was not acknowledged)\n", o.Name, o.Abandoned)
			return exitFailed
		}
	}
	return exitOK
}

func printSummary(w io.Writer, s wsp.Summary) {
	fmt.Fprintf(w, "wsp: %d records in, %.3fs, %.0f records/s, %d input errors\n", s.InputRecords, s.Elapsed, s.Rate, s.InputErrors)
	if s.Unreadable > 0 {
		fmt.Fprintf(w, "wsp: %d input messages could not be read and went to the error output\n", s.Unreadable)
	}
	for _, st := range s.Steps {
		fmt.Fprintf(w, "  step %-16s in %d, out %d, routed %d, to error output %d, dropped %d\n",
			st.Name, st.In, st.Out, st.Routed, st.Failed, st.Dropped)
	}
	for _, o := range s.Outputs {
		fmt.Fprintf(w, "  output %-14s %d records written, %d retries\n", o.Name, o.Written, o.Retries)
	}
}

// serveHTTP starts the health and metrics endpoints (and, with a state
// folder, POST /savepoint?name=NAME) and returns the address it listens on.
func serveHTTP(addr string, m *wsp.Metrics, stateDir string) (*http.Server, net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !m.Ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, m.Snapshot())
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writePrometheus(w, m.Snapshot())
	})
	mux.HandleFunc("/savepoint", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST /savepoint?name=NAME", http.StatusMethodNotAllowed)
			return
		}
		dir, err := wsp.SavepointDir(stateDir, r.URL.Query().Get("name"))
		if stateDir == "" || err != nil {
			http.Error(w, "a savepoint needs --state-dir and a plain name: POST /savepoint?name=NAME", http.StatusBadRequest)
			return
		}
		id, err := wsp.Savepoint(stateDir, dir)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, map[string]any{"savepoint": dir, "checkpoint": id})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr(), nil
}

// commaList splits each item on commas: a list set as one string (an
// environment variable, WSP_RESET_STATE=a,b) reaches viper whole, where
// the flag's own parsing would have split it.
func commaList(items []string) []string {
	var out []string
	for _, it := range items {
		for _, p := range strings.Split(it, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
