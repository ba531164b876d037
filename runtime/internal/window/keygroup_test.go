package window

import (
	"fmt"
	"testing"
)

// TestGroupRanges: for every worker count, the ranges partition the groups
// and agree with WorkerOf, so a key's owner is the same either way.
func TestGroupRanges(t *testing.T) {
	for _, maxPar := range []int{1, 7, 128, 1000} {
		for workers := 1; workers <= min(maxPar, 40); workers++ {
			if err := ValidateParallelism(workers, maxPar); err != nil {
				t.Fatal(err)
			}
			next := 0
			for w := 0; w < workers; w++ {
				s, e := GroupRange(w, workers, maxPar)
				if s != next || e < s {
					t.Fatalf("max %d, %d workers: worker %d has [%d,%d), want start %d", maxPar, workers, w, s, e, next)
				}
				for g := s; g < e; g++ {
					if WorkerOf(g, maxPar, workers) != w {
						t.Fatalf("group %d: WorkerOf = %d, range says %d", g, WorkerOf(g, maxPar, workers), w)
					}
				}
				next = e
			}
			if next != maxPar {
				t.Fatalf("ranges end at %d, want %d", next, maxPar)
			}
		}
	}
	if ValidateParallelism(0, 128) == nil || ValidateParallelism(129, 128) == nil || ValidateParallelism(1, 0) == nil {
		t.Error("bad parallelism accepted")
	}
}

// TestKeyGroupSpread: 10,000 sensor ids spread over 128 groups within 30 %
// of even, and the hash is stable (it is part of the state format).
func TestKeyGroupSpread(t *testing.T) {
	counts := make([]int, DefaultMaxParallelism)
	for i := 0; i < 10000; i++ {
		counts[KeyGroup([]byte(fmt.Sprintf("s-%04d", i)), DefaultMaxParallelism)]++
	}
	even := 10000 / DefaultMaxParallelism
	for g, c := range counts {
		if c < even*7/10 || c > even*13/10 {
			t.Errorf("group %d holds %d keys, even is %d", g, c, even)
		}
	}
	// Pinned: the hash decides where state lives; a change must be a
	// deliberate state-format change, not an accident.
	if got := KeyHash([]byte("s-0042")); got != 0xd8d76c33b5a6b8ae || KeyGroup([]byte("s-0042"), 128) != 46 {
		t.Errorf("KeyHash(s-0042) = %#x, group %d; the state format changed", got, KeyGroup([]byte("s-0042"), 128))
	}
}
