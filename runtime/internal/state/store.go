// Package state stores checkpoints: one consistent cut of a pipeline's
// state (operators' snapshots by worker, watermarks, input positions) made
// durable as a set of files, so a restart can restore the last complete
// one (issue "state"; DESIGN.md, "Checkpoints and recovery: the plan").
//
// On disk, under the store's folder:
//
//	chk-<id, 20 digits>/            one checkpoint
//	    <part>                      each part's bytes, then its CRC-32C (4 bytes, little-endian)
//	    MANIFEST                    written last: the checkpoint is complete once it exists
//
//	MANIFEST = magic "WSPK" | format version u16 | id u64 | meta (len u32 | bytes) |
//	           parts u32 | (name (len u16 | bytes) | size u64 | crc u32)* | crc u32 of all before
//
// Writing: every part is written and fsynced, then the manifest to a
// temporary name, fsynced and renamed, then the folder is fsynced. A crash
// at any point leaves either a complete checkpoint or a folder without a
// manifest, which Latest skips (and Write later removes). Reading: Latest
// takes the newest checkpoint whose manifest and parts all check out; a
// corrupt or half-written one is skipped with the reason, so the previous
// one is used.
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FormatVersion is the checkpoint format this wsp writes. It reads this
// version; a later wsp reads the earlier ones, or says it cannot.
const FormatVersion = 1

const (
	manifestName  = "MANIFEST"
	manifestMagic = "WSPK"
	dirPrefix     = "chk-"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FS is the file system a Store writes to: the OS (OSFS), or in tests one
// that fails (a full disk).
type FS interface {
	MkdirAll(path string) error
	// Create makes (truncating) a file for writing.
	Create(path string) (File, error)
	ReadFile(path string) ([]byte, error)
	ReadDir(path string) ([]fs.DirEntry, error)
	Rename(from, to string) error
	RemoveAll(path string) error
	// SyncDir makes the folder's entries (created and renamed files) durable.
	SyncDir(path string) error
}

// File is a file being written.
type File interface {
	io.Writer
	Sync() error
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

func (OSFS) MkdirAll(p string) error                 { return os.MkdirAll(p, 0o755) }
func (OSFS) Create(p string) (File, error)           { return os.Create(p) }
func (OSFS) ReadFile(p string) ([]byte, error)       { return os.ReadFile(p) }
func (OSFS) ReadDir(p string) ([]fs.DirEntry, error) { return os.ReadDir(p) }
func (OSFS) Rename(from, to string) error            { return os.Rename(from, to) }
func (OSFS) RemoveAll(p string) error                { return os.RemoveAll(p) }
func (OSFS) SyncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Store is a folder of checkpoints. It is used by one goroutine at a time.
type Store struct {
	Dir string
	FS  FS // default OSFS
	// Keep is how many complete checkpoints to keep (older ones are
	// removed after a new one is complete). Default 2, so a corrupt newest
	// one leaves one to fall back on.
	Keep int
}

func (s *Store) fs() FS {
	if s.FS == nil {
		return OSFS{}
	}
	return s.FS
}

func (s *Store) dirOf(id uint64) string {
	return filepath.Join(s.Dir, fmt.Sprintf("%s%020d", dirPrefix, id))
}

// Checkpoint is one complete checkpoint.
type Checkpoint struct {
	ID    uint64
	Meta  []byte            // the caller's own record (watermarks, positions, settings)
	Parts map[string][]byte // by part name (a file name, e.g. "w0.per_sensor")
}

// Write makes checkpoint c durable. On error (a full disk, say) nothing
// complete is left under c.ID, and earlier checkpoints are untouched.
func (s *Store) Write(c *Checkpoint) error {
	f := s.fs()
	dir := s.dirOf(c.ID)
	if err := f.RemoveAll(dir); err != nil {
		return fmt.Errorf("state: checkpoint %d: %w", c.ID, err)
	}
	if err := f.MkdirAll(dir); err != nil {
		return fmt.Errorf("state: checkpoint %d: %w", c.ID, err)
	}
	names := make([]string, 0, len(c.Parts))
	for n := range c.Parts {
		if !validPartName(n) {
			return fmt.Errorf("state: checkpoint %d: bad part name %q", c.ID, n)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	m := []byte(manifestMagic)
	m = binary.LittleEndian.AppendUint16(m, FormatVersion)
	m = binary.LittleEndian.AppendUint64(m, c.ID)
	m = binary.LittleEndian.AppendUint32(m, uint32(len(c.Meta)))
	m = append(m, c.Meta...)
	m = binary.LittleEndian.AppendUint32(m, uint32(len(names)))
	for _, n := range names {
		b := c.Parts[n]
		crc := crc32.Checksum(b, castagnoli)
		if err := writeFile(f, filepath.Join(dir, n), b, binary.LittleEndian.AppendUint32(nil, crc)); err != nil {
			return s.abandon(c.ID, err)
		}
		m = binary.LittleEndian.AppendUint16(m, uint16(len(n)))
		m = append(m, n...)
		m = binary.LittleEndian.AppendUint64(m, uint64(len(b)))
		m = binary.LittleEndian.AppendUint32(m, crc)
	}
	m = binary.LittleEndian.AppendUint32(m, crc32.Checksum(m, castagnoli))
	tmp := filepath.Join(dir, manifestName+".tmp")
	if err := writeFile(f, tmp, m, nil); err != nil {
		return s.abandon(c.ID, err)
	}
	if err := f.Rename(tmp, filepath.Join(dir, manifestName)); err != nil {
		return s.abandon(c.ID, err)
	}
	if err := f.SyncDir(dir); err != nil {
		return s.abandon(c.ID, err)
	}
	if err := f.SyncDir(s.Dir); err != nil {
		return fmt.Errorf("state: checkpoint %d: %w", c.ID, err)
	}
	return s.prune(c.ID)
}

// validPartName says whether n can name a part: a file name in a
// checkpoint's folder.
func validPartName(n string) bool {
	return n != "" && n != manifestName && !strings.Contains(n, "..") && !strings.ContainsAny(n, `\/`)
}

func writeFile(f FS, path string, b, trailer []byte) error {
	w, err := f.Create(path)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	if err == nil && trailer != nil {
		_, err = w.Write(trailer)
	}
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// abandon removes a checkpoint that could not be written whole.
func (s *Store) abandon(id uint64, err error) error {
	_ = s.fs().RemoveAll(s.dirOf(id))
	return fmt.Errorf("state: checkpoint %d: %w", id, err)
}

// prune removes checkpoints older than the Keep newest complete ones, and
// incomplete ones older than newest.
func (s *Store) prune(newest uint64) error {
	keep := s.Keep
	if keep <= 0 {
		keep = 2
	}
	ids, err := s.ids()
	if err != nil {
		return err
	}
	complete := 0
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if id > newest {
			continue
		}
		if s.manifestOK(id) && complete < keep {
			complete++
			continue
		}
		if err := s.fs().RemoveAll(s.dirOf(id)); err != nil {
			return fmt.Errorf("state: removing checkpoint %d: %w", id, err)
		}
	}
	return nil
}

// NextID is the id after every checkpoint folder in the store (1 when
// empty): a run numbers its checkpoints from it, so they are the newest
// even when it started from an older savepoint.
func (s *Store) NextID() (uint64, error) {
	ids, err := s.ids()
	if err != nil || len(ids) == 0 {
		return 1, err
	}
	return ids[len(ids)-1] + 1, nil
}

// manifestOK says whether checkpoint id has a manifest that checks out (its
// parts are not read: that is Latest's work).
func (s *Store) manifestOK(id uint64) bool {
	m, err := s.fs().ReadFile(filepath.Join(s.dirOf(id), manifestName))
	if err != nil || len(m) < 8 || string(m[:4]) != manifestMagic {
		return false
	}
	return crc32.Checksum(m[:len(m)-4], castagnoli) == binary.LittleEndian.Uint32(m[len(m)-4:])
}

// ids lists the checkpoint folders, oldest first.
func (s *Store) ids() ([]uint64, error) {
	ents, err := s.fs().ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), dirPrefix); ok && e.IsDir() {
			if id, err := strconv.ParseUint(n, 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Latest returns the newest complete checkpoint that reads back intact, or
// nil when there is none, with a reason for each newer one it skipped
// (half-written, corrupt, or of a format this wsp cannot read).
func (s *Store) Latest() (*Checkpoint, []error, error) {
	ids, err := s.ids()
	if err != nil {
		return nil, nil, err
	}
	c, skipped := newestIntact(ids, s.read)
	return c, skipped, nil
}

// newestIntact reads the checkpoints ids (oldest first) from the newest
// down and returns the first that reads back, with why each newer one was
// skipped.
func newestIntact(ids []uint64, read func(id uint64) (*Checkpoint, error)) (*Checkpoint, []error) {
	var skipped []error
	for i := len(ids) - 1; i >= 0; i-- {
		c, err := read(ids[i])
		if err == nil {
			return c, skipped
		}
		skipped = append(skipped, fmt.Errorf("checkpoint %d skipped: %w", ids[i], err))
	}
	return nil, skipped
}

// read loads and checks checkpoint id.
func (s *Store) read(id uint64) (*Checkpoint, error) {
	dir := s.dirOf(id)
	m, err := s.fs().ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no manifest: it was not finished (a crash or a failed write)")
	}
	if err != nil {
		return nil, err
	}
	if len(m) < 4+2+8+4+4+4 || string(m[:4]) != manifestMagic {
		return nil, errors.New("the manifest is not a wsp checkpoint manifest")
	}
	body, sum := m[:len(m)-4], binary.LittleEndian.Uint32(m[len(m)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errors.New("the manifest's checksum does not match: it is corrupt")
	}
	if v := binary.LittleEndian.Uint16(m[4:]); v != FormatVersion {
		return nil, fmt.Errorf("checkpoint format version %d; this wsp reads version %d", v, FormatVersion)
	}
	p := 6
	c := &Checkpoint{ID: binary.LittleEndian.Uint64(m[p:]), Parts: map[string][]byte{}}
	p += 8
	if c.ID != id {
		return nil, fmt.Errorf("the manifest is of checkpoint %d", c.ID)
	}
	n := int(binary.LittleEndian.Uint32(m[p:]))
	p += 4
	if n > len(body)-p {
		return nil, errors.New("the manifest is cut short")
	}
	c.Meta = body[p : p+n]
	p += n
	if len(body)-p < 4 {
		return nil, errors.New("the manifest is cut short")
	}
	parts := int(binary.LittleEndian.Uint32(m[p:]))
	p += 4
	for range parts {
		if len(body)-p < 2 {
			return nil, errors.New("the manifest is cut short")
		}
		l := int(binary.LittleEndian.Uint16(m[p:]))
		p += 2
		if len(body)-p < l+12 {
			return nil, errors.New("the manifest is cut short")
		}
		name := string(m[p : p+l])
		p += l
		size := binary.LittleEndian.Uint64(m[p:])
		crc := binary.LittleEndian.Uint32(m[p+8:])
		p += 12
		b, err := s.fs().ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("part %s: %w", name, err)
		}
		if uint64(len(b)) != size+4 || crc32.Checksum(b[:size], castagnoli) != crc || binary.LittleEndian.Uint32(b[size:]) != crc {
			return nil, fmt.Errorf("part %s: its size or checksum does not match the manifest: it is corrupt", name)
		}
		c.Parts[name] = b[:size:size]
	}
	if p != len(body) {
		return nil, errors.New("the manifest has bytes after its parts")
	}
	return c, nil
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// SaveLatest copies the newest intact checkpoint into dir as a store of its
// own (a savepoint): dir must not exist yet. It returns the checkpoint's
// id. The copy is made under a temporary name and renamed, so dir is
// either complete or absent.
func (s *Store) SaveLatest(dir string) (uint64, error) {
	c, _, err := s.Latest()
	if err != nil {
		return 0, err
	}
	if c == nil {
		return 0, fmt.Errorf("state: no intact checkpoint in %s to save", s.Dir)
	}
	return savepoint(s.FS, c, dir)
}

// savepoint writes c into dir as a store of its own, through fsys (nil:
// OSFS); dir must not exist yet. Every backend's SaveLatest uses it, so
// savepoints are in this format whichever backend took them.
func savepoint(fsys FS, c *Checkpoint, dir string) (uint64, error) {
	s := &Store{FS: fsys}
	f := s.fs()
	if _, err := f.ReadDir(dir); err == nil {
		return 0, fmt.Errorf("state: savepoint %s exists already", dir)
	}
	tmp := dir + ".tmp"
	if err := f.RemoveAll(tmp); err != nil {
		return 0, err
	}
	sp := &Store{Dir: tmp, FS: s.FS, Keep: 1}
	if err := sp.Write(c); err != nil {
		_ = f.RemoveAll(tmp)
		return 0, err
	}
	if err := f.Rename(tmp, dir); err != nil {
		_ = f.RemoveAll(tmp)
		return 0, fmt.Errorf("state: savepoint: %w", err)
	}
	return c.ID, f.SyncDir(filepath.Dir(dir))
}
