package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	wsp "github.com/wsp-project/wsp/runtime"
)

// The checkpoint figures of issue "state": a tumbling count+sum window over
// 1 M distinct keys (windows of 1 h, so each holds most keys: about 1 M
// (key, window) states), with and without checkpoints every second, and
// the time to restore from the last checkpoint, for both backends.
//
//	go run ./bench/windows -only checkpoint -n 10000000

const bigWindow = `
pipeline:
  - window:
      tumbling: { size: 1h }
      aggregates: { sum: sum(v) }
`

func init() {
	prev := extraCases
	extraCases = func(n, keys int, want func(string) bool) []*benchCase {
		cs := prev(n, keys, want)
		const bigKeys = 1_000_000
		if name := "wsp tumbling 1 h count+sum, 1 M keys, no checkpoints"; want(name) {
			cs = append(cs, &benchCase{name: name, workers: 1, n: n,
				run: func() (measured, error) { m, _, err := runCheckpointed(n, bigKeys, "", "", 0); return m, err }})
		}
		for _, backend := range []string{wsp.BackendFiles, wsp.BackendPebble} {
			name := "wsp tumbling 1 h count+sum, 1 M keys, checkpoints every 1 s, " + backend + " backend"
			if !want(name) {
				continue
			}
			cs = append(cs, &benchCase{name: name, workers: 1, n: n, run: func() (measured, error) {
				dir, err := os.MkdirTemp("", "wsp-bench-state")
				if err != nil {
					return measured{}, err
				}
				defer os.RemoveAll(dir)
				m, sum, err := runCheckpointed(n, bigKeys, dir, backend, 0)
				if err == nil && sum.Checkpoints != nil {
					c := sum.Checkpoints
					fmt.Fprintf(os.Stderr, "%s: checkpoints: %d completed, %d failed, longest pause %.1f ms, last %.1f ms barrier to durable, %.0f MB checkpointed, %.0f MB written\n",
						backend, c.Completed, c.Failed, c.MaxPauseMs, c.LastDurationMs, float64(c.CheckpointedBytes)/1e6, float64(c.WrittenBytes)/1e6)
				}
				if err != nil {
					return m, err
				}
				// Recovery: a run stopped at 2,700,000 records (before the
				// first 1 h window, which ends at 2,800,000, fires) leaves a
				// last checkpoint holding that window's 930,000 or so keys; a
				// new run restores it.
				rdir, _ := os.MkdirTemp("", "wsp-bench-restore")
				defer os.RemoveAll(rdir)
				if _, _, err := runCheckpointed(n, bigKeys, rdir, backend, min(n, 2_700_000)); err != nil {
					return m, err
				}
				_, s2, err := runCheckpointed(1, bigKeys, rdir, backend, 0)
				if err == nil && s2.Checkpoints != nil {
					fmt.Fprintf(os.Stderr, "%s: recovery: checkpoint %d restored in %.0f ms\n", backend, s2.Checkpoints.Restored, s2.Checkpoints.RestoreMs)
				}
				return m, err
			}})
		}
		// Keyed state in Wasm over 1 M keys: the state step's snapshot is
		// encoded by the worker itself (no copy-then-encode), so this
		// shows its pause.
		for _, ck := range []bool{false, true} {
			name := "wsp Wasm keyed state, 1 M keys, no checkpoints"
			if ck {
				name = "wsp Wasm keyed state, 1 M keys, checkpoints every 1 s, pebble backend"
			}
			if !want(name) {
				continue
			}
			cs = append(cs, &benchCase{name: name, workers: 1, n: n, run: func() (measured, error) {
				dir := ""
				if ck {
					d, err := os.MkdirTemp("", "wsp-bench-state")
					if err != nil {
						return measured{}, err
					}
					defer os.RemoveAll(d)
					dir = d
				}
				m, sum, err := runYAML(wasmState(), n, bigKeys, dir, wsp.BackendPebble, 0)
				if err == nil && sum.Checkpoints != nil {
					c := sum.Checkpoints
					fmt.Fprintf(os.Stderr, "keyed state: checkpoints: %d completed, %d failed, longest pause %.1f ms, last %.1f ms barrier to durable, %.0f MB checkpointed\n",
						c.Completed, c.Failed, c.MaxPauseMs, c.LastDurationMs, float64(c.CheckpointedBytes)/1e6)
				}
				return m, err
			}})
		}
		return cs
	}
}

// runCheckpointed runs the big window, with checkpoints into stateDir when
// set, stopping after stopAt records when > 0.
func runCheckpointed(n, keys int, stateDir, backend string, stopAt int) (measured, wsp.Summary, error) {
	return runYAML(bigWindow, n, keys, stateDir, backend, stopAt)
}

// runYAML runs pipeline yaml as runCheckpointed runs the big window.
func runYAML(yaml string, n, keys int, stateDir, backend string, stopAt int) (measured, wsp.Summary, error) {
	p, err := wsp.Parse([]byte(yaml), ".")
	if err != nil {
		return measured{}, wsp.Summary{}, err
	}
	g := newGen(n, keys)
	ctx := context.Background()
	if stopAt > 0 {
		// A stop (as by SIGTERM) once stopAt records are read: the last
		// checkpoint then holds the windows still open.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		g.stopAt, g.stop = stopAt, cancel
	}
	out := &sink{}
	runtime.GC()
	start, cpu0 := time.Now(), cpuNow()
	sum, err := p.Run(ctx, wsp.Options{Workers: 1, Input: g, Output: out, StateDir: stateDir, StateBackend: backend,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	m := measured{wall: time.Since(start), cpu: cpuNow() - cpu0, results: out.n.Load()}
	return m, sum, err
}
