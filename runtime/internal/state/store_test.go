package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func ckpt(id uint64) *Checkpoint {
	return &Checkpoint{ID: id, Meta: fmt.Appendf(nil, "meta %d", id), Parts: map[string][]byte{
		"w0.window": bytes.Repeat([]byte{byte(id)}, 1000),
		"w1.window": fmt.Appendf(nil, "worker one, checkpoint %d", id),
		"empty":     {},
	}}
}

func sameCkpt(t *testing.T, got, want *Checkpoint) {
	t.Helper()
	if got == nil || got.ID != want.ID || !bytes.Equal(got.Meta, want.Meta) || len(got.Parts) != len(want.Parts) {
		t.Fatalf("got %+v, want checkpoint %d", got, want.ID)
	}
	for n, b := range want.Parts {
		if !bytes.Equal(got.Parts[n], b) {
			t.Fatalf("part %s differs", n)
		}
	}
}

// TestStoreRoundTrip: the newest complete checkpoint comes back whole; only
// Keep complete ones stay on disk.
func TestStoreRoundTrip(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	if c, skipped, err := s.Latest(); c != nil || skipped != nil || err != nil {
		t.Fatalf("empty store: %v %v %v", c, skipped, err)
	}
	for id := uint64(1); id <= 4; id++ {
		if err := s.Write(ckpt(id)); err != nil {
			t.Fatal(err)
		}
	}
	c, skipped, err := s.Latest()
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	sameCkpt(t, c, ckpt(4))
	if ids, _ := s.ids(); fmt.Sprint(ids) != "[3 4]" {
		t.Fatalf("kept %v, want [3 4]", ids)
	}
}

// TestStoreSkipsDamaged: a corrupt part, a corrupt manifest, a missing
// manifest (a crash mid-write) or a format from the future is skipped with
// the reason, and the previous checkpoint is used.
func TestStoreSkipsDamaged(t *testing.T) {
	cases := []struct {
		name   string
		damage func(dir string)
		reason string
	}{
		{"corrupt part", func(dir string) { flip(t, filepath.Join(dir, "w0.window"), 10) }, "part w0.window: its size or checksum does not match"},
		{"truncated part", func(dir string) { truncate(t, filepath.Join(dir, "w1.window"), 5) }, "part w1.window"},
		{"corrupt manifest", func(dir string) { flip(t, filepath.Join(dir, manifestName), 20) }, "the manifest's checksum does not match"},
		{"missing manifest", func(dir string) { _ = os.Remove(filepath.Join(dir, manifestName)) }, "no manifest"},
		{"missing part", func(dir string) { _ = os.Remove(filepath.Join(dir, "empty")) }, "part empty"},
		{"future format", func(dir string) { setVersion(t, filepath.Join(dir, manifestName), 9) }, "checkpoint format version 9; this wsp reads version 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Store{Dir: t.TempDir()}
			for id := uint64(1); id <= 2; id++ {
				if err := s.Write(ckpt(id)); err != nil {
					t.Fatal(err)
				}
			}
			c.damage(s.dirOf(2))
			got, skipped, err := s.Latest()
			if err != nil {
				t.Fatal(err)
			}
			sameCkpt(t, got, ckpt(1))
			if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), "checkpoint 2 skipped: "+c.reason) {
				t.Fatalf("skipped %v, want the reason %q", skipped, c.reason)
			}
		})
	}
}

func flip(t *testing.T, path string, at int) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, n int) {
	if err := os.Truncate(path, int64(n)); err != nil {
		t.Fatal(err)
	}
}

// setVersion rewrites the manifest's version and fixes its checksum, as a
// later wsp would write it.
func setVersion(t *testing.T, path string, v uint16) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[4], b[5] = byte(v), byte(v>>8)
	body := b[:len(b)-4]
	sum := crc32c(body)
	b = append(body, byte(sum), byte(sum>>8), byte(sum>>16), byte(sum>>24))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fullFS is the OS file system with room for only `room` more bytes: a
// write beyond it fails with ENOSPC, as a full disk does.
type fullFS struct {
	OSFS
	room int
}

type fullFile struct {
	*os.File
	fs *fullFS
}

func (f *fullFS) Create(p string) (File, error) {
	w, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	return &fullFile{w, f}, nil
}

func (w *fullFile) Write(b []byte) (int, error) {
	if len(b) > w.fs.room {
		n, _ := w.File.Write(b[:w.fs.room])
		w.fs.room = 0
		return n, &os.PathError{Op: "write", Path: w.Name(), Err: syscall.ENOSPC}
	}
	w.fs.room -= len(b)
	return w.File.Write(b)
}

// TestStoreFullDisk: a checkpoint that runs out of disk fails with the
// cause and leaves nothing half-written; the previous one stays the latest,
// and a later write (room again) succeeds.
func TestStoreFullDisk(t *testing.T) {
	for _, room := range []int{0, 500, 1010, 1100} {
		t.Run(fmt.Sprint("room ", room), func(t *testing.T) {
			dir := t.TempDir()
			if err := (&Store{Dir: dir}).Write(ckpt(1)); err != nil {
				t.Fatal(err)
			}
			ffs := &fullFS{room: room}
			s := &Store{Dir: dir, FS: ffs}
			err := s.Write(ckpt(2))
			if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "state: checkpoint 2") {
				t.Fatalf("write on a full disk: %v", err)
			}
			if _, err := os.Stat(s.dirOf(2)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a failed checkpoint left its folder: %v", err)
			}
			got, skipped, err := s.Latest()
			if err != nil || len(skipped) != 0 {
				t.Fatal(err, skipped)
			}
			sameCkpt(t, got, ckpt(1))
			ffs.room = 1 << 20
			if err := s.Write(ckpt(3)); err != nil {
				t.Fatal(err)
			}
			got, _, _ = s.Latest()
			sameCkpt(t, got, ckpt(3))
		})
	}
}

// TestSaveLatest: a savepoint is a store holding the newest intact
// checkpoint, readable on its own; an existing one is not overwritten.
func TestSaveLatest(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "ck")}
	if _, err := s.SaveLatest(filepath.Join(t.TempDir(), "sp")); err == nil {
		t.Fatal("a savepoint of nothing")
	}
	for id := uint64(1); id <= 3; id++ {
		if err := s.Write(ckpt(id)); err != nil {
			t.Fatal(err)
		}
	}
	flip(t, filepath.Join(s.dirOf(3), "w0.window"), 1) // the newest is damaged: the one before is saved
	sp := filepath.Join(t.TempDir(), "sp")
	id, err := s.SaveLatest(sp)
	if err != nil || id != 2 {
		t.Fatalf("saved %d: %v", id, err)
	}
	got, skipped, err := (&Store{Dir: sp}).Latest()
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	sameCkpt(t, got, ckpt(2))
	if _, err := s.SaveLatest(sp); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("overwrote a savepoint: %v", err)
	}
}

// TestPruneKeepsIntact: a corrupt checkpoint does not count among the Keep
// newest, so the last intact older one is kept to fall back on.
func TestPruneKeepsIntact(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	for id := uint64(1); id <= 2; id++ {
		if err := s.Write(ckpt(id)); err != nil {
			t.Fatal(err)
		}
	}
	flip(t, filepath.Join(s.dirOf(2), manifestName), 8) // 2 is corrupt
	if err := s.Write(ckpt(3)); err != nil {
		t.Fatal(err)
	}
	flip(t, filepath.Join(s.dirOf(3), "w1.window"), 0) // and now 3 too
	got, skipped, err := s.Latest()
	if err != nil || len(skipped) != 1 {
		t.Fatal(err, skipped)
	}
	sameCkpt(t, got, ckpt(1))
	if _, err := os.Stat(s.dirOf(2)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the corrupt checkpoint 2 was kept: %v", err)
	}
	if id, _ := s.NextID(); id != 4 {
		t.Fatalf("next id %d, want 4", id)
	}
}
