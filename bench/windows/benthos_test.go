package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestBenthosTumbling checks the Benthos case on a small run with windows
// short enough to close during it: every record is counted exactly once
// (the last, partial window is flushed before the stream ends) and the sums
// agree.
func TestBenthosTumbling(t *testing.T) {
	const n, keys = 20_000, 1000
	size := time.Second // long enough that one window is never slower to process than to fill
	m, tot, err := benthosRun(n, keys, size)
	if err != nil {
		t.Fatal(err)
	}
	if tot.count != n || tot.sum != sumV(n) {
		t.Fatalf("counts %d (want %d), sums %d (want %d)", tot.count, n, tot.sum, sumV(n))
	}
	if len(tot.windows) == 0 || tot.results < keys/2 {
		t.Fatalf("%d results in %d windows", tot.results, len(tot.windows))
	}
	for w, c := range tot.windows {
		if w == "" || c > keys {
			t.Fatalf("window %q has %d results", w, c)
		}
	}
	t.Logf("%d results in %d windows, wall %v, CPU %v", tot.results, len(tot.windows), m.wall, m.cpu)
	if _, err := benthosTumbling(n, keys, size); err != nil {
		t.Fatal(err)
	}
}

// TestBenthosTumblingBench is the measurement, run on demand:
//
//	WSP_BENCH_BENTHOS_N=1000000 go test ./bench/windows -run BenthosTumblingBench -v
func TestBenthosTumblingBench(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("WSP_BENCH_BENTHOS_N"))
	if n <= 0 {
		t.Skip("set WSP_BENCH_BENTHOS_N")
	}
	m, tot, err := benthosRun(n, 10_000, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if tot.count != int64(n) || tot.sum != sumV(n) {
		t.Fatalf("counts %d (want %d), sums %d (want %d)", tot.count, n, tot.sum, sumV(n))
	}
	t.Logf("benthos system_window tumbling 10 s count+sum: %d records, wall %.2f s, CPU %.2f s, %.0f records per CPU-second, %d results in %d windows",
		n, m.wall.Seconds(), m.cpu.Seconds(), float64(n)/m.cpu.Seconds(), tot.results, len(tot.windows))
}
