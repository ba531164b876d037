package window

import "fmt"

// Key groups (semantics.md, "Keyed state"): a key maps to one of a fixed
// number of key groups, hash(key) mod MaxParallelism, fixed for the life of
// the state; a worker owns a contiguous range of groups. State moves between
// runs with different worker counts by whole groups.

// DefaultMaxParallelism is the number of key groups when a pipeline sets none.
const DefaultMaxParallelism = 128

// KeyHash is the stable 64-bit hash of a key: FNV-1a followed by a
// splitmix64 finalizer (FNV-1a alone spreads short, similar keys poorly).
// It is part of the state format: changing it moves every key.
func KeyHash(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// KeyGroup is the group of key among maxParallelism groups.
func KeyGroup(key []byte, maxParallelism int) int {
	return int(KeyHash(key) % uint64(maxParallelism))
}

// WorkerOf is the worker (of workers) that owns group.
func WorkerOf(group, maxParallelism, workers int) int {
	return group * workers / maxParallelism
}

// GroupRange is the contiguous range [start, end) of groups worker owns.
func GroupRange(worker, workers, maxParallelism int) (start, end int) {
	start = (worker*maxParallelism + workers - 1) / workers
	end = ((worker+1)*maxParallelism + workers - 1) / workers
	return start, end
}

// ValidateParallelism checks a worker count against the number of groups.
func ValidateParallelism(workers, maxParallelism int) error {
	if maxParallelism < 1 || maxParallelism > 1<<15 {
		return fmt.Errorf("window: max parallelism %d out of range [1, 32768]", maxParallelism)
	}
	if workers < 1 || workers > maxParallelism {
		return fmt.Errorf("window: %d workers for %d key groups: want 1..%d", workers, maxParallelism, maxParallelism)
	}
	return nil
}
