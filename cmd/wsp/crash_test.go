package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
)

// TestCrashRecovery runs a sensor pipeline as a separate wsp process with
// checkpoints, kills it with SIGKILL at random points, restarts it each
// time, and lets the last run finish. The first stop is a SIGTERM, which
// must exit 0 after a last checkpoint. Every result written over all the
// runs must be one of an uninterrupted run's, and every one of those must
// be there: no record lost, none counted twice. Results written after the
// last checkpoint may repeat (the output is at-least-once), and a kill
// during a write may leave a cut line, which the next run's lines follow.
//
//   - windows: examples/sensors/pipeline.yaml (the Wasm cleaner, 5 s
//     tumbling windows per sensor); counts equal, floats within 1e-9
//     relative.
//   - keyed state: examples/sensors/watchdog.yaml (a Wasm function with a
//     per-sensor baseline in keyed state and an event-time timer per
//     sensor); the alerts equal byte for byte. Each sensor's last alert
//     carries its count of readings and their mean, so a reading lost or
//     counted twice changes it.
//
// Short form: 200,000 readings, 3 stops. WSP_TEST_LONG: 1,000,000 readings,
// a SIGTERM and 10 SIGKILLs (issue "state").
func TestCrashRecovery(t *testing.T) {
	n, kills := 200_000, 3
	if os.Getenv("WSP_TEST_LONG") != "" {
		n, kills = 1_000_000, 11 // a SIGTERM, then 10 SIGKILLs
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "wsp")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	input := filepath.Join(dir, "readings.jsonl")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(f, n, 11); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Run("windows", func(t *testing.T) {
		crashLoop(t, bin, input, "examples/sensors/pipeline.yaml", "windows.jsonl", n, kills, func(ref, got []string) (int, int) {
			want := windowResults(t, ref, nil)
			cut := 0
			have := windowResults(t, got, &cut)
			for k, w := range have {
				r, ok := want[k]
				if !ok || r.Count != w.Count || !close(r.Mean, w.Mean) || !close(r.Variance, w.Variance) {
					t.Fatalf("window %v: got %+v, an uninterrupted run gives %+v (ok %v)", k, w, r, ok)
				}
			}
			if len(have) != len(want) {
				t.Fatalf("%d of %d windows", len(have), len(want))
			}
			return len(want), cut
		})
	})
	t.Run("keyed state", func(t *testing.T) {
		crashLoop(t, bin, input, "examples/sensors/watchdog.yaml", "alerts.jsonl", n, kills, func(ref, got []string) (int, int) {
			want := map[string]bool{}
			sensors := map[string]bool{}
			for _, l := range ref {
				var a struct {
					SensorID string `json:"sensor_id"`
					Alert    string `json:"alert"`
				}
				if err := json.Unmarshal([]byte(l), &a); err != nil || a.SensorID == "" || a.Alert == "" {
					t.Fatalf("reference alert %q: %v", l, err)
				}
				want[l] = true
				sensors[a.SensorID] = true
			}
			cut := 0
			have := map[string]bool{}
			for _, l := range got {
				if !json.Valid([]byte(l)) {
					cut++ // a line cut by a kill
					continue
				}
				if !want[l] {
					t.Fatalf("alert %s: not one of an uninterrupted run's", l)
				}
				have[l] = true
			}
			if len(have) != len(want) || len(sensors) < 100 {
				t.Fatalf("%d of %d alerts (%d sensors)", len(have), len(want), len(sensors))
			}
			return len(want), cut
		})
	})
}

// crashLoop is one case of TestCrashRecovery: the reference run, the runs
// stopped at random points, and the last run; check compares the result
// lines (reference, all runs') and returns the number of results and of
// lines cut by a kill.
func crashLoop(t *testing.T, bin, input, pipelineFile, results string, n, kills int, check func(ref, got []string) (results, cut int)) {
	dir := t.TempDir()
	pipeline, _ := filepath.Abs(repoPath(pipelineFile))
	run := func(out, stateDir string) *exec.Cmd {
		args := []string{"run", "--http-addr", "off", "--cache-dir", cacheDir, "--workers", "2", "--log-level", "info"}
		if stateDir != "" {
			args = append(args, "--state-dir", stateDir, "--checkpoint-interval", "20ms")
		}
		cmd := exec.Command(bin, append(args, pipeline)...)
		// Watchdog settings that raise many alerts: silences end by timers
		// and by readings, anomalies come from the baselines.
		cmd.Env = append(os.Environ(), "SENSORS_INPUT="+input, "SENSORS_OUT="+out, "WATCHDOG_SILENCE=3s", "WATCHDOG_SIGMA=2.5")
		return cmd
	}
	// The reference: one uninterrupted run.
	refOut := filepath.Join(dir, "ref")
	if out, err := run(refOut, "").CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	ref := readLines(t, filepath.Join(refOut, results))
	if len(ref) < 100 {
		t.Fatalf("only %d reference results", len(ref))
	}
	refSize := must(os.Stat(filepath.Join(refOut, results))).Size()
	size := func(p string) int64 {
		if fi, err := os.Stat(p); err == nil {
			return fi.Size()
		}
		return 0
	}
	// Crash and restart.
	out, stateDir := filepath.Join(dir, "crash"), filepath.Join(dir, "state")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	killed, restores := 0, 0
	for runs := 0; runs < kills; runs++ {
		cmd := run(out, stateDir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// A random point of the run, by its progress (the results it has
		// written), not by the clock: each run writes 5-100 % of a
		// (kills+1)-th of the reference's results before its stop, whatever
		// the machine's speed. Together the steps stay below the whole, so
		// every run is stopped.
		target := size(filepath.Join(out, results)) + 1 + int64((0.05+0.95*rng.Float64())*float64(refSize)/float64(kills+1))
		progressed := make(chan struct{}, 1)
		stopPoll := make(chan struct{}, 1)
		go func() {
			for size(filepath.Join(out, results)) < target {
				select {
				case <-stopPoll:
					return
				case <-time.After(time.Millisecond):
				}
			}
			progressed <- struct{}{}
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: %v\n%s", runs+1, err, stderr.String())
			}
			t.Fatalf("run %d finished before its stop: fewer than %d stops", runs+1, kills)
		case <-time.After(10 * time.Minute): // a guard against a hang, not a measurement
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("run %d wrote no more results for 10 min\n%s", runs+1, stderr.String())
		case <-progressed:
			if runs == 0 {
				// The first stop is polite: SIGTERM drains, takes a last
				// checkpoint and exits 0.
				_ = cmd.Process.Signal(syscall.SIGTERM)
				if err := <-done; err != nil {
					t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
				}
				killed++
				break
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
		}
		stopPoll <- struct{}{}
		restores += strings.Count(stderr.String(), "restored checkpoint")
	}
	final := run(out, stateDir)
	b, err := final.CombinedOutput()
	if err != nil {
		t.Fatalf("the last run: %v\n%s", err, b)
	}
	restores += strings.Count(string(b), "restored checkpoint")
	// The runs resumed from checkpoints (not only started over): with
	// every run restoring nothing, the results would be right but nothing
	// of recovery tested.
	if restores == 0 || killed == 0 {
		t.Fatalf("no run restored a checkpoint in %d kills", killed)
	}
	lines := readLines(t, filepath.Join(out, results))
	nres, cut := check(ref, lines)
	if cut > killed {
		t.Fatalf("%d unreadable lines for %d kills", cut, killed)
	}
	t.Logf("%d readings, %d kills, %d restores, %d results, %d result lines (%d cut by a kill)",
		n, killed, restores, nres, len(lines), cut)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type sensorWindow struct {
	SensorID    string  `json:"sensor_id"`
	WindowStart int64   `json:"window_start"`
	Count       int     `json:"count"`
	Mean        float64 `json:"mean"`
	Variance    float64 `json:"variance"`
	Update      bool    `json:"update"`
}

// windowResults indexes results by (sensor, window start); a repeat must be
// the same result. With cut set, unreadable lines (cut by a kill) are
// counted there instead of failing.
func windowResults(t *testing.T, lines []string, cut *int) map[string]sensorWindow {
	t.Helper()
	m := map[string]sensorWindow{}
	for _, l := range lines {
		var w sensorWindow
		if err := json.Unmarshal([]byte(l), &w); err != nil || w.SensorID == "" {
			if cut == nil {
				t.Fatalf("%q: %v", l, err)
			}
			*cut++
			continue
		}
		k := fmt.Sprint(w.SensorID, "@", w.WindowStart)
		if p, ok := m[k]; ok && (p.Count != w.Count || !close(p.Mean, w.Mean)) {
			t.Fatalf("window %s twice, with different results: %+v and %+v", k, p, w)
		}
		m[k] = w
	}
	return m
}

// TestSavepoint: a run stopped by SIGTERM, a savepoint of its state, and a
// run from that savepoint with another worker count (and a fresh state
// folder) give, together, exactly an uninterrupted run's windows.
func TestSavepoint(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wsp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	input := filepath.Join(dir, "readings.jsonl")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	if err := sensorgen.Write(f, 200_000, 5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pipeline, _ := filepath.Abs(repoPath("examples/sensors/pipeline.yaml"))
	cmd := func(out string, args ...string) *exec.Cmd {
		c := exec.Command(bin, append(append([]string{"run", "--http-addr", "off", "--cache-dir", cacheDir}, args...), pipeline)...)
		c.Env = append(os.Environ(), "SENSORS_INPUT="+input, "SENSORS_OUT="+out)
		return c
	}
	ref := filepath.Join(dir, "ref")
	if b, err := cmd(ref, "--workers", "2").CombinedOutput(); err != nil {
		t.Fatalf("reference: %v\n%s", err, b)
	}
	out, state1, state2 := filepath.Join(dir, "out"), filepath.Join(dir, "s1"), filepath.Join(dir, "s2")
	first := cmd(out, "--workers", "2", "--state-dir", state1, "--checkpoint-interval", "20ms")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop it once it has written some windows (a point mid-run; any
	// point must do).
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(out, "windows.jsonl")); err == nil && fi.Size() > 50_000 {
			break
		}
	}
	_ = first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	before := len(readLines(t, filepath.Join(out, "windows.jsonl")))
	var so, se strings.Builder
	if code := Main([]string{"savepoint", "--state-dir", state1, "mid"}, &so, &se); code != 0 || !strings.Contains(so.String(), "savepoint ") {
		t.Fatalf("wsp savepoint: exit %d: %s%s", code, so.String(), se.String())
	}
	if code := Main([]string{"savepoint", "--state-dir", state1, "mid"}, &so, &se); code == 0 {
		t.Fatal("a savepoint overwritten")
	}
	b, err := cmd(out, "--workers", "1", "--state-dir", state2, "--from-savepoint", filepath.Join(state1, "savepoints", "mid"), "--log-level", "info").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "restored checkpoint") {
		t.Fatalf("run from the savepoint: %v\n%s", err, b)
	}
	want := windowResults(t, readLines(t, filepath.Join(ref, "windows.jsonl")), nil)
	got := windowResults(t, readLines(t, filepath.Join(out, "windows.jsonl")), nil)
	for k, w := range got {
		r, ok := want[k]
		if !ok || r.Count != w.Count || !close(r.Mean, w.Mean) || !close(r.Variance, w.Variance) {
			t.Fatalf("window %v: got %+v, an uninterrupted run gives %+v", k, w, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d of %d windows", len(got), len(want))
	}
	if before == 0 || before >= len(want) {
		t.Fatalf("the first run wrote %d of %d windows: it was not stopped mid-run", before, len(want))
	}
	t.Logf("%d windows before the savepoint, %d in all", before, len(want))
}
