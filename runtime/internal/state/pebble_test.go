package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// random returns n pseudo-random bytes, the same for the same seed.
func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func openPebble(t testing.TB, dir string, opts PebbleOptions) *PebbleStore {
	t.Helper()
	s, err := OpenPebble(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustWrite(t testing.TB, s Backend, c *Checkpoint) {
	t.Helper()
	if err := s.Write(c); err != nil {
		t.Fatal(err)
	}
}

// keys counts the database's keys with prefix ("c/" chunks, "m/" manifests).
func keys(t *testing.T, s *PebbleStore, prefix string) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: []byte{prefix[0], prefix[1] + 1}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// manifestOf reads and decodes checkpoint id's manifest from the database.
func manifestOf(t *testing.T, s *PebbleStore, id uint64) *pebbleManifest {
	t.Helper()
	v, closer, err := s.db.Get(manKey(id))
	if err != nil {
		t.Fatalf("manifest %d: %v", id, err)
	}
	defer closer.Close()
	m, err := decodeManifest(id, bytes.Clone(v))
	if err != nil {
		t.Fatalf("manifest %d: %v", id, err)
	}
	return m
}

func latestIs(t *testing.T, s Backend, want *Checkpoint, skips int) []error {
	t.Helper()
	got, skipped, err := s.Latest()
	if err != nil || len(skipped) != skips {
		t.Fatalf("latest: %v, skipped %v (want %d skipped)", err, skipped, skips)
	}
	if want == nil {
		if got != nil {
			t.Fatalf("got checkpoint %d, want none", got.ID)
		}
		return skipped
	}
	sameCkpt(t, got, want)
	return skipped
}

// pckpt is a checkpoint of several parts: a big one of its own, one shared
// by every checkpoint, an empty one, and a small one.
func pckpt(id uint64) *Checkpoint {
	return &Checkpoint{ID: id, Meta: fmt.Appendf(nil, "meta %d", id), Parts: map[string][]byte{
		"w0.s1": random(id, 300<<10),
		"w1.s1": random(1000, 200<<10),
		"w2.s1": {},
		"w3.s1": fmt.Appendf(nil, "worker three, checkpoint %d", id),
	}}
}

// TestPebbleRoundTrip: every checkpoint written comes back whole as the
// latest, empty parts and meta included, whatever the chunk size; only Keep
// manifests stay.
func TestPebbleRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		opts PebbleOptions
		kept int
	}{
		{"defaults", PebbleOptions{}, 2},
		{"small chunks, keep 3", PebbleOptions{ChunkTarget: 4 << 10, Keep: 3}, 3},
		{"keep 1", PebbleOptions{Keep: 1, ChunkTarget: 100 << 10}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openPebble(t, t.TempDir(), c.opts)
			latestIs(t, s, nil, 0)
			if id, err := s.NextID(); id != 1 || err != nil {
				t.Fatalf("next id of an empty store: %d, %v", id, err)
			}
			for id := uint64(1); id <= 5; id++ {
				mustWrite(t, s, pckpt(id))
				latestIs(t, s, pckpt(id), 0)
			}
			if n := keys(t, s, "m/"); n != c.kept {
				t.Fatalf("%d manifests kept, want %d", n, c.kept)
			}
			if id, err := s.NextID(); id != 6 || err != nil {
				t.Fatalf("next id %d, %v; want 6", id, err)
			}
			if s.Name() != "pebble" || (&Store{}).Name() != "files" {
				t.Fatal("names")
			}
		})
	}
}

// TestPebbleBadPartName: a part name a savepoint's folder cannot hold is
// refused, as Store refuses it.
func TestPebbleBadPartName(t *testing.T) {
	s := openPebble(t, t.TempDir(), PebbleOptions{})
	for _, n := range []string{"", "a/b", "..", manifestName} {
		if err := s.Write(&Checkpoint{ID: 1, Parts: map[string][]byte{n: {1}}}); err == nil || !strings.Contains(err.Error(), "bad part name") {
			t.Fatalf("part %q: %v", n, err)
		}
	}
	latestIs(t, s, nil, 0)
}

// TestPebbleIncremental: a checkpoint that differs a little from the last
// writes a little (an insertion shifts the bytes after it but the cuts
// follow the content); one that differs in everything writes everything.
func TestPebbleIncremental(t *testing.T) {
	base := random(1, 8<<20)
	for _, c := range []struct {
		name     string
		edit     func([]byte) []byte
		min, max float64 // of the new bytes, as a share of the total
	}{
		{"unchanged", func(b []byte) []byte { return b }, 0, 0},
		{"1000 bytes overwritten", func(b []byte) []byte { copy(b[3<<20:], random(2, 1000)); return b }, 0.001, 0.25},
		{"two regions overwritten", func(b []byte) []byte {
			copy(b[1<<20:], random(2, 5000))
			copy(b[6<<20:], random(3, 5000))
			return b
		}, 0.001, 0.25},
		{"100 bytes inserted in the middle", func(b []byte) []byte { return slices.Insert(b, 4<<20, random(4, 100)...) }, 0.001, 0.25},
		{"100 bytes removed from the middle", func(b []byte) []byte { return slices.Delete(b, 4<<20, 4<<20+100) }, 0.001, 0.25},
		{"appended", func(b []byte) []byte { return append(b, random(5, 100<<10)...) }, 0.001, 0.25},
		{"all new", func([]byte) []byte { return random(6, 8<<20) }, 8.0 / 9, 8.0 / 9}, // w1.s is the same
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openPebble(t, t.TempDir(), PebbleOptions{})
			mk := func(id uint64, b []byte) *Checkpoint {
				return &Checkpoint{ID: id, Meta: []byte("m"), Parts: map[string][]byte{"w0.s": b, "w1.s": random(9, 1<<20)}}
			}
			mustWrite(t, s, mk(1, base))
			if n, total := s.LastWrite(); n != total || total != 9<<20 {
				t.Fatalf("first write: %d new of %d, want all of %d", n, total, 9<<20)
			}
			second := mk(2, c.edit(bytes.Clone(base)))
			mustWrite(t, s, second)
			n, total := s.LastWrite()
			t.Logf("%d new bytes of %d (%.1f%%)", n, total, 100*float64(n)/float64(total))
			if total != int64(len(second.Parts["w0.s"])+1<<20) {
				t.Fatalf("total %d", total)
			}
			if share := float64(n) / float64(total); share < c.min || share > c.max {
				t.Fatalf("%d new bytes of %d, want a share in [%g, %g]", n, total, c.min, c.max)
			}
			latestIs(t, s, second, 0)
		})
	}
}

// TestChunkCuts: chunks are within the bounds and about the target on
// average, and the cuts after an edit fall where they fell before.
func TestChunkCuts(t *testing.T) {
	for _, target := range []int{4 << 10, 256 << 10} {
		t.Run(fmt.Sprint(target), func(t *testing.T) {
			s, err := OpenPebble(t.TempDir(), PebbleOptions{ChunkTarget: target + 1}) // rounded down
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			cuts := func(b []byte) (ls []int) {
				for len(b) > 0 {
					l := s.cut(b)
					ls = append(ls, l)
					b = b[l:]
				}
				return ls
			}
			b := random(7, 400*target)
			ls := cuts(b)
			for i, l := range ls[:len(ls)-1] {
				if l < target/4 || l > 4*target {
					t.Fatalf("chunk %d: %d bytes, want %d to %d", i, l, target/4, 4*target)
				}
			}
			if avg := len(b) / len(ls); avg < target/2 || avg > 2*target {
				t.Fatalf("average chunk %d bytes, target %d", avg, target)
			}
			// the same cuts after an insertion early on: the ends of the
			// chunks, counted from the end, are mostly the same
			ends := func(ls []int, n int) map[int]bool {
				m := map[int]bool{}
				for _, l := range ls {
					m[n] = true
					n -= l
				}
				return m
			}
			edited := slices.Insert(bytes.Clone(b), 10*target, 1, 2, 3)
			before, after := ends(ls, len(b)), ends(cuts(edited), len(edited))
			same := 0
			for e := range before {
				if after[e] {
					same++
				}
			}
			if same < len(before)*9/10 {
				t.Fatalf("%d cuts of %d are the same after an insertion", same, len(before))
			}
		})
	}
}

// TestPebblePrune: the manifests beyond Keep go, and with them the chunks
// no kept one holds; shared chunks stay.
func TestPebblePrune(t *testing.T) {
	for _, keep := range []int{1, 2, 3} {
		t.Run(fmt.Sprint("keep ", keep), func(t *testing.T) {
			dir := t.TempDir()
			s := openPebble(t, dir, PebbleOptions{Keep: keep, ChunkTarget: 16 << 10})
			for id := uint64(1); id <= 6; id++ {
				mustWrite(t, s, pckpt(id))
			}
			check := func(s *PebbleStore) {
				if n := keys(t, s, "m/"); n != keep {
					t.Fatalf("%d manifests, want %d", n, keep)
				}
				held := map[chunkRef]bool{}
				for id := uint64(6 - keep + 1); id <= 6; id++ {
					for _, p := range manifestOf(t, s, id).parts {
						for _, h := range p.chunks {
							held[h] = true
						}
					}
				}
				if n := keys(t, s, "c/"); n != len(held) {
					t.Fatalf("%d chunks stored, the kept checkpoints hold %d", n, len(held))
				}
				for h := range held {
					if _, closer, err := s.db.Get(chunkKey(h)); err != nil {
						t.Fatalf("chunk %x: %v", h, err)
					} else {
						closer.Close()
					}
				}
				latestIs(t, s, pckpt(6), 0)
			}
			check(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check(openPebble(t, dir, PebbleOptions{Keep: keep}))
		})
	}
}

// TestPebbleReopen: a reopened store has the same latest checkpoint and
// next id, and knows which chunks it holds (rewriting the same checkpoint
// stores nothing new). A closed store refuses calls.
func TestPebbleReopen(t *testing.T) {
	dir := t.TempDir()
	s := openPebble(t, dir, PebbleOptions{})
	for id := uint64(1); id <= 3; id++ {
		mustWrite(t, s, pckpt(id))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("closing twice: %v", err)
	}
	if _, _, err := s.Latest(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("latest after close: %v", err)
	}
	s = openPebble(t, dir, PebbleOptions{})
	latestIs(t, s, pckpt(3), 0)
	if id, err := s.NextID(); id != 4 || err != nil {
		t.Fatalf("next id %d, %v; want 4", id, err)
	}
	c := pckpt(3)
	c.ID = 4
	mustWrite(t, s, c)
	if n, total := s.LastWrite(); n != 0 || total == 0 {
		t.Fatalf("rewriting checkpoint 3 as 4 stored %d new bytes of %d", n, total)
	}
	latestIs(t, s, c, 0)
}

// TestPebbleSkipsDamaged: a missing or corrupt chunk, or a corrupt, foreign
// or future manifest, makes Latest skip the checkpoint with the reason and
// use the one before; the next checkpoint holding a damaged chunk stores it
// again.
func TestPebbleSkipsDamaged(t *testing.T) {
	// w0.s1 is checkpoint 2's own; w1.s1 is shared with checkpoint 1
	own := func(s *PebbleStore) chunkRef { return manifestOf(t, s, 2).parts[0].chunks[1] }
	shared := func(s *PebbleStore) chunkRef { return manifestOf(t, s, 2).parts[1].chunks[0] }
	set := func(s *PebbleStore, k, v []byte) {
		if err := s.db.Set(k, v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	chunkValue := func(b []byte) []byte { return binary.LittleEndian.AppendUint32(bytes.Clone(b), crc32c(b)) }
	cases := []struct {
		name   string
		damage func(s *PebbleStore) string // returns the reason, after "checkpoint 2 skipped: "
		both   bool                        // checkpoint 1 is damaged too
	}{
		{"missing chunk", func(s *PebbleStore) string {
			h := own(s)
			if err := s.db.Delete(chunkKey(h), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("part w0.s1: chunk %x missing", h.h)
		}, false},
		{"flipped chunk", func(s *PebbleStore) string {
			h := own(s)
			v, closer, _ := s.db.Get(chunkKey(h))
			v = bytes.Clone(v)
			closer.Close()
			v[100] ^= 1
			set(s, chunkKey(h), v)
			return fmt.Sprintf("part w0.s1: chunk %x is corrupt: its checksum does not match", h.h)
		}, false},
		{"other bytes with their checksum", func(s *PebbleStore) string {
			h := own(s)
			set(s, chunkKey(h), chunkValue([]byte("other bytes")))
			return fmt.Sprintf("part w0.s1: chunk %x is corrupt: its hash does not match", h.h)
		}, false},
		{"missing shared chunk", func(s *PebbleStore) string {
			h := shared(s)
			if err := s.db.Delete(chunkKey(h), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("part w1.s1: chunk %x missing", h.h)
		}, true},
		{"corrupt manifest", func(s *PebbleStore) string {
			raw, closer, _ := s.db.Get(manKey(2))
			raw = bytes.Clone(raw)
			closer.Close()
			raw[20] ^= 0x40
			set(s, manKey(2), raw)
			return "the manifest's checksum does not match"
		}, false},
		{"foreign manifest", func(s *PebbleStore) string {
			set(s, manKey(2), []byte("not a manifest at all, no"))
			return "the manifest is not a wsp checkpoint manifest"
		}, false},
		{"future format", func(s *PebbleStore) string {
			raw, closer, _ := s.db.Get(manKey(2))
			raw = bytes.Clone(raw[:len(raw)-4])
			closer.Close()
			binary.LittleEndian.PutUint16(raw[4:], 9)
			set(s, manKey(2), binary.LittleEndian.AppendUint32(raw, crc32c(raw)))
			return "checkpoint format version 9; this wsp reads version 1"
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openPebble(t, t.TempDir(), PebbleOptions{ChunkTarget: 16 << 10})
			mustWrite(t, s, pckpt(1))
			mustWrite(t, s, pckpt(2))
			reason := c.damage(s)
			var skipped []error
			if c.both {
				skipped = latestIs(t, s, nil, 2)
			} else {
				skipped = latestIs(t, s, pckpt(1), 1)
			}
			if !strings.Contains(skipped[0].Error(), "checkpoint 2 skipped: "+reason) {
				t.Fatalf("skipped %v, want the reason %q", skipped, reason)
			}
			// checkpoint 3 holds the same bytes as 2: it stores the damaged
			// chunk again and reads back
			c3 := pckpt(2)
			c3.ID = 3
			mustWrite(t, s, c3)
			latestIs(t, s, c3, 0)
		})
	}
}

// TestPebblePruneKeepsIntact: a checkpoint whose manifest is corrupt does
// not count among the Keep newest, so the last intact older one is kept to
// fall back on.
func TestPebblePruneKeepsIntact(t *testing.T) {
	s := openPebble(t, t.TempDir(), PebbleOptions{ChunkTarget: 16 << 10})
	mustWrite(t, s, pckpt(1))
	mustWrite(t, s, pckpt(2))
	if err := s.db.Set(manKey(2), []byte("junk"), pebble.Sync); err != nil { // 2 is corrupt
		t.Fatal(err)
	}
	mustWrite(t, s, pckpt(3))
	h := manifestOf(t, s, 3).parts[0].chunks[0] // and now 3 too
	if err := s.db.Delete(chunkKey(h), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	latestIs(t, s, pckpt(1), 1)
	if _, closer, err := s.db.Get(manKey(2)); !errors.Is(err, pebble.ErrNotFound) {
		closer.Close()
		t.Fatalf("the corrupt checkpoint 2 was kept: %v", err)
	}
	if id, _ := s.NextID(); id != 4 {
		t.Fatalf("next id %d, want 4", id)
	}
}

// diskFS is a file system with room for only room more bytes: a write
// beyond it fails with ENOSPC, as on a full disk, and its disk usage says
// how much room is left.
type diskFS struct {
	vfs.FS
	mu   sync.Mutex
	room int64
}

type diskFile struct {
	vfs.File
	fs *diskFS
}

func (d *diskFS) setRoom(n int64) {
	d.mu.Lock()
	d.room = n
	d.mu.Unlock()
}

func (d *diskFS) take(n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n = int(min(int64(n), d.room))
	d.room -= int64(n)
	return n
}

func (d *diskFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &diskFile{f, d}, nil
}

func (d *diskFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return d.wrap(d.FS.Create(name, c))
}

func (d *diskFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	return d.wrap(d.FS.OpenReadWrite(name, c, o...))
}

func (d *diskFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return d.wrap(d.FS.ReuseForWrite(old, name, c))
}

func (d *diskFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return vfs.DiskUsage{AvailBytes: uint64(d.room), TotalBytes: 1 << 41}, nil
}

func (f *diskFile) Write(b []byte) (int, error) {
	if n := f.fs.take(len(b)); n < len(b) {
		m, _ := f.File.Write(b[:n])
		return m, &os.PathError{Op: "write", Path: "pebble file", Err: syscall.ENOSPC}
	}
	return f.File.Write(b)
}

func (f *diskFile) WriteAt(b []byte, off int64) (int, error) {
	if n := f.fs.take(len(b)); n < len(b) {
		m, _ := f.File.WriteAt(b[:n], off)
		return m, &os.PathError{Op: "write", Path: "pebble file", Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(b, off)
}

// TestPebbleFullDisk: a checkpoint that finds the disk full fails with
// ENOSPC before Pebble writes anything; the one before stays the latest,
// also in a store opened while the disk is full (read-only then), and once
// there is room again the store writes and reads as before, without the
// failed checkpoint.
func TestPebbleFullDisk(t *testing.T) {
	for _, c := range []struct {
		name   string
		room   int64
		reopen bool // close and open the store while the disk is full
	}{
		{"no room at all", 0, false},
		{"room for less than the checkpoint", 2 << 20, false},
		{"room for the checkpoint but not the margin", pebbleDiskMargin + 1<<20, false},
		{"reopened while full", 0, true},
		{"reopened with some room", 1 << 20, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &diskFS{FS: vfs.Default, room: 1 << 40}
			s := openPebble(t, dir, PebbleOptions{FS: fs, ChunkTarget: 16 << 10})
			mustWrite(t, s, pckpt(1))
			if c.reopen {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				fs.setRoom(c.room)
				s = openPebble(t, dir, PebbleOptions{FS: fs})
				if !s.readOnly {
					t.Fatal("opened for writing on a full disk")
				}
			}
			fs.setRoom(c.room)
			big := pckpt(2)
			big.Parts["w4.s1"] = random(77, 1<<20)
			err := s.Write(big)
			if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), "state: checkpoint 2: ") {
				t.Fatalf("write on a full disk: %v", err)
			}
			t.Log(err)
			if fs.take(0); fs.room != c.room {
				t.Fatalf("the failed write wrote %d bytes", c.room-fs.room)
			}
			latestIs(t, s, pckpt(1), 0)
			if id, err := s.NextID(); id != 2 || err != nil {
				t.Fatalf("next id %d, %v; want 2", id, err)
			}
			fs.setRoom(1 << 40)
			mustWrite(t, s, pckpt(3))
			if s.readOnly {
				t.Fatal("still read-only")
			}
			latestIs(t, s, pckpt(3), 0)
			mustWrite(t, s, pckpt(4))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openPebble(t, dir, PebbleOptions{})
			latestIs(t, s, pckpt(4), 0)
			if _, closer, err := s.db.Get(manKey(2)); !errors.Is(err, pebble.ErrNotFound) {
				closer.Close()
				t.Fatalf("the failed checkpoint 2 is there: %v", err)
			}
			if n := keys(t, s, "m/"); n != 2 {
				t.Fatalf("%d manifests, want 2", n)
			}
		})
	}
}

// TestPebbleSaveLatest: a savepoint of a Pebble store is a files store
// holding its newest intact checkpoint; an existing one is not overwritten.
func TestPebbleSaveLatest(t *testing.T) {
	s := openPebble(t, t.TempDir(), PebbleOptions{ChunkTarget: 16 << 10})
	if _, err := s.SaveLatest(filepath.Join(t.TempDir(), "sp")); err == nil {
		t.Fatal("a savepoint of nothing")
	}
	for id := uint64(1); id <= 3; id++ {
		mustWrite(t, s, pckpt(id))
	}
	h := manifestOf(t, s, 3).parts[0].chunks[0] // the newest is damaged: the one before is saved
	if err := s.db.Delete(chunkKey(h), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(t.TempDir(), "sp")
	id, err := s.SaveLatest(sp)
	if err != nil || id != 2 {
		t.Fatalf("saved %d: %v", id, err)
	}
	var files Backend = &Store{Dir: sp}
	latestIs(t, files, pckpt(2), 0)
	if _, err := s.SaveLatest(sp); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("overwrote a savepoint: %v", err)
	}
	// and back: a files store's savepoint restores into a Pebble store
	files = &Store{Dir: t.TempDir()}
	mustWrite(t, files, pckpt(5))
	sp2 := filepath.Join(t.TempDir(), "sp2")
	if _, err := files.SaveLatest(sp2); err != nil {
		t.Fatal(err)
	}
	c, _, err := (&Store{Dir: sp2}).Latest()
	if err != nil || c == nil {
		t.Fatal(c, err)
	}
	mustWrite(t, s, c)
	latestIs(t, s, pckpt(5), 0)
}

// BenchmarkPebbleWrite: a 100 MB checkpoint (four parts of 25 MB) into an
// empty store, then checkpoints in which 5% of the bytes changed (20
// regions of 256 KiB, elsewhere each time). MB/s is of the checkpoint's
// bytes; new-MB/op is what was stored.
func BenchmarkPebbleWrite(b *testing.B) {
	const size, parts = 100 << 20, 4
	data := random(1, size)
	mk := func(id uint64, d []byte) *Checkpoint {
		c := &Checkpoint{ID: id, Meta: []byte("meta"), Parts: map[string][]byte{}}
		for i := range parts {
			c.Parts[fmt.Sprintf("w%d.s1", i)] = d[i*size/parts : (i+1)*size/parts]
		}
		return c
	}
	report := func(b *testing.B, newBytes int64) {
		b.ReportMetric(float64(newBytes)/float64(b.N)/(1<<20), "new-MB/op")
	}
	b.Run("full", func(b *testing.B) {
		b.SetBytes(size)
		var fresh int64
		for i := range b.N {
			b.StopTimer()
			s := openPebble(b, filepath.Join(b.TempDir(), fmt.Sprint(i)), PebbleOptions{})
			b.StartTimer()
			mustWrite(b, s, mk(1, data))
			n, _ := s.LastWrite()
			fresh += n
			b.StopTimer()
			_ = s.Close()
			b.StartTimer()
		}
		report(b, fresh)
	})
	b.Run("5pct-changed", func(b *testing.B) {
		s := openPebble(b, b.TempDir(), PebbleOptions{})
		mustWrite(b, s, mk(1, data))
		b.SetBytes(size)
		b.ResetTimer()
		var fresh int64
		for i := range b.N {
			b.StopTimer()
			d := bytes.Clone(data)
			const regions, region = 20, 256 << 10 // 5 MiB of 100
			for r := range regions {
				at := r*(size/regions) + (i*7919*4096)%(size/regions-region)
				copy(d[at:at+region], random(uint64(1000+i*regions+r), region))
			}
			b.StartTimer()
			mustWrite(b, s, mk(uint64(i+2), d))
			n, _ := s.LastWrite()
			fresh += n
		}
		report(b, fresh)
	})
}

// TestPebbleOrphanChunks: chunks that no manifest holds (a crash after a
// checkpoint's chunks were ingested and before its manifest was written)
// are deleted at the next open; those of kept checkpoints stay, and so do
// all chunks while a manifest does not decode (it may hold them).
func TestPebbleOrphanChunks(t *testing.T) {
	dir := t.TempDir()
	s := openPebble(t, dir, PebbleOptions{ChunkTarget: 4 << 10})
	mustWrite(t, s, pckpt(1))
	held := keys(t, s, "c/")
	// The chunks of checkpoint 2, ingested with no manifest after them.
	var fresh []chunk
	for _, b := range pckpt(2).Parts {
		for rest := b; len(rest) > 0; {
			l := s.cut(rest)
			fresh = append(fresh, chunk{chunkRef{2, sha256.Sum256(rest[:l])}, rest[:l]})
			rest = rest[l:]
		}
	}
	if err := s.ingest(2, fresh); err != nil {
		t.Fatal(err)
	}
	if n := keys(t, s, "c/"); n <= held {
		t.Fatalf("%d chunks after the ingest, %d before", n, held)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPebble(t, dir, PebbleOptions{ChunkTarget: 4 << 10})
	if n := keys(t, s, "c/"); n != held {
		t.Fatalf("%d chunks after reopening, want the %d checkpoint 1 holds", n, held)
	}
	latestIs(t, s, pckpt(1), 0)
	// Beside a manifest that does not decode (corrupt, or of another
	// layout, whose chunks may be under keys of another shape), nothing is
	// deleted, not even chunks above every id.
	for i := range fresh {
		fresh[i].r.id = 5
	}
	if err := s.ingest(5, fresh); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(manKey(1), []byte("WSPP not a manifest"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	withOrphans := keys(t, s, "c/")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPebble(t, dir, PebbleOptions{ChunkTarget: 4 << 10})
	if n := keys(t, s, "c/"); n != withOrphans {
		t.Fatalf("%d chunks after reopening beside an unreadable manifest, want %d", n, withOrphans)
	}
}

// TestPebbleDropsIngestFiles: a table file a crash left before (or after)
// its ingestion is removed at the next open.
func TestPebbleDropsIngestFiles(t *testing.T) {
	dir := t.TempDir()
	s := openPebble(t, dir, PebbleOptions{})
	mustWrite(t, s, pckpt(1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "ingest-00000000000000000002.sst")
	if err := os.WriteFile(left, []byte("half a table"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openPebble(t, dir, PebbleOptions{})
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the leftover table file is still there: %v", err)
	}
	latestIs(t, s, pckpt(1), 0)
}

// TestPebbleFailedCommitDropsChunks: when the manifest's batch fails after
// the chunks were ingested, those chunks are deleted at once (the next
// checkpoint has another id, so nothing else would).
func TestPebbleFailedCommitDropsChunks(t *testing.T) {
	s := openPebble(t, t.TempDir(), PebbleOptions{ChunkTarget: 4 << 10})
	mustWrite(t, s, pckpt(1))
	held := keys(t, s, "c/")
	failCommit = true
	defer func() { failCommit = false }()
	if err := s.Write(pckpt(2)); err == nil {
		t.Fatal("the write succeeded")
	}
	failCommit = false
	if n := keys(t, s, "c/"); n != held {
		t.Fatalf("%d chunks after the failed write, %d before", n, held)
	}
	latestIs(t, s, pckpt(1), 0)
	mustWrite(t, s, pckpt(3))
	latestIs(t, s, pckpt(3), 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPebble(t, s.dir, PebbleOptions{ChunkTarget: 4 << 10})
	latestIs(t, s, pckpt(3), 0)
	if n := keys(t, s, "m/"); n != 2 {
		t.Fatalf("%d manifests, want 2", n)
	}
}
