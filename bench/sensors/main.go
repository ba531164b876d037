// Command sensors measures the sensor pipeline end to end, wsp against
// Benthos v4.80.0, on the same data in one run: the 1 M-reading file in, the
// cleaning step (a Go Wasm plugin in wsp, the Bloblang twin of the same rules
// in Benthos, pipeline.threads 2), file out. Both processes run one after the
// other on the same machine; their wall time and CPU time (user + system,
// from the kernel's rusage of the child) are reported, and both outputs are
// checked to hold the same records (as sorted multisets: Benthos's 2 threads
// may reorder) and the same number of failures.
//
//	go run ./bench/sensors -n 1000000
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
)

type result struct {
	name      string
	wall, cpu time.Duration
	clean     []string
	errors    int
}

func main() {
	n := flag.Int("n", 1000000, "readings")
	root := flag.String("root", ".", "repository root")
	rounds := flag.Int("rounds", 1, "runs of each system (the best wall time is reported)")
	wspFlags := flag.String("wsp-flags", "", "extra flags for wsp run")
	timeout := flag.String("timeout", "10s", "the cleaner's time limit (SENSORS_TIMEOUT): a duration, or none")
	flag.Parse()
	os.Setenv("SENSORS_TIMEOUT", *timeout)
	if err := run(*root, *n, *rounds, strings.Fields(*wspFlags)); err != nil {
		fmt.Fprintln(os.Stderr, "bench-sensors:", err)
		os.Exit(1)
	}
}

func run(root string, n, rounds int, wspFlags []string) error {
	work, err := os.MkdirTemp("", "wsp-bench-sensors")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	input := filepath.Join(work, "readings.jsonl")
	f, err := os.Create(input)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := sensorgen.Write(w, n, 1); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()
	wspBin, benthosBin := filepath.Join(work, "wsp"), filepath.Join(work, "benthos-sensors")
	for bin, pkg := range map[string]string{wspBin: "./cmd/wsp", benthosBin: "./bench/benthos-sensors"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir, cmd.Stderr = root, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	cache := filepath.Join(work, "cache")
	// Build and compile the plugin once so the measured runs start warm,
	// as a deployed pipeline does.
	warm := filepath.Join(work, "warm")
	if _, err := runWSP(root, wspBin, cache, input, warm, wspFlags); err != nil {
		return err
	}
	var ws, bs result
	for r := 0; r < rounds; r++ {
		out := filepath.Join(work, fmt.Sprintf("wsp%d", r))
		res, err := runWSP(root, wspBin, cache, input, out, wspFlags)
		if err != nil {
			return err
		}
		if ws.wall == 0 || res.wall < ws.wall {
			ws = res
		}
		out = filepath.Join(work, fmt.Sprintf("benthos%d", r))
		res, err = runBenthos(root, benthosBin, input, out)
		if err != nil {
			return err
		}
		if bs.wall == 0 || res.wall < bs.wall {
			bs = res
		}
	}
	same := equal(ws.clean, bs.clean)
	fmt.Printf("# sensor pipeline, %d readings, %s, %d CPUs, best of %d, wsp plugin timeout %s\n\n",
		n, runtime.Version(), runtime.NumCPU(), rounds, os.Getenv("SENSORS_TIMEOUT"))
	fmt.Println("| system | wall s | CPU s (user+sys) | records/s (wall) | records per CPU-second | clean | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range []result{ws, bs} {
		fmt.Printf("| %s | %.3f | %.3f | %.0f | %.0f | %d | %d |\n", r.name, r.wall.Seconds(), r.cpu.Seconds(),
			float64(n)/r.wall.Seconds(), float64(n)/r.cpu.Seconds(), len(r.clean), r.errors)
	}
	fmt.Printf("\nwsp / Benthos: %.1fx wall-clock throughput, %.1fx per CPU-second; outputs hold the same records: %v; same error count: %v\n",
		bs.wall.Seconds()/ws.wall.Seconds(), bs.cpu.Seconds()/ws.cpu.Seconds(), same, ws.errors == bs.errors)
	if !same || ws.errors != bs.errors {
		return fmt.Errorf("outputs differ: wsp %d clean / %d errors, Benthos %d / %d", len(ws.clean), ws.errors, len(bs.clean), bs.errors)
	}
	return nil
}

func timed(cmd *exec.Cmd) (time.Duration, time.Duration, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w\n%s", cmd.Path, err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return wall, cpu, nil
}

func runWSP(root, bin, cache, input, out string, flags []string) (result, error) {
	args := append([]string{"run", "--http-addr", "off", "--cache-dir", cache}, flags...)
	args = append(args, filepath.Join(root, "examples/sensors/clean.yaml"))
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SENSORS_INPUT="+input, "SENSORS_OUT="+out)
	wall, cpu, err := timed(cmd)
	if err != nil {
		return result{}, err
	}
	clean, err := lines(filepath.Join(out, "clean.jsonl"))
	if err != nil {
		return result{}, err
	}
	errs, err := lines(filepath.Join(out, "errors.jsonl"))
	return result{name: "wsp (Go Wasm cleaner)", wall: wall, cpu: cpu, clean: clean, errors: len(errs)}, err
}

func runBenthos(root, bin, input, out string) (result, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, "-c", filepath.Join(root, "examples/sensors/benthos/pipeline.yaml"))
	cmd.Dir = root
	outFile := filepath.Join(out, "clean.jsonl")
	cmd.Env = append(os.Environ(), "INPUT="+input, "OUTPUT="+outFile)
	wall, cpu, err := timed(cmd)
	if err != nil {
		return result{}, err
	}
	clean, err := lines(outFile)
	if err != nil {
		return result{}, err
	}
	errs, err := lines(outFile + ".errors")
	return result{name: "Benthos v4.80.0 (Bloblang, 2 threads)", wall: wall, cpu: cpu, clean: clean, errors: len(errs)}, err
}

func lines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) == 1 && s[0] == "" {
		return nil, nil
	}
	return s, nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
