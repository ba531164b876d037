// PebbleStore keeps the same checkpoints as Store in one Pebble database,
// incrementally: a checkpoint writes only the bytes the kept ones do not
// hold already.
//
// Keys and values:
//
//	c/<id u64 BE><SHA-256 of the chunk>  a chunk, stored under the id of the
//	                                     checkpoint that first held it: its
//	                                     bytes | CRC-32C u32 (little-endian)
//	m/<id, u64 big-endian>               a checkpoint's manifest
//
//	manifest = magic "WSPP" | format version u16 | id u64 | meta (len u32 | bytes) |
//	           parts u32 | (name (len u16 | bytes) | size u64 | crc u32 |
//	                        chunks u32 | (id u64 | SHA-256 [32]byte)*)* | crc u32 of all before
//
// Each part is cut into content-defined chunks (a gear rolling hash as in
// FastCDC: ChunkTarget/4 to 4×ChunkTarget bytes, about ChunkTarget on
// average), so an edit moves only the cuts near it and the other chunks
// are the same as in the last checkpoint. A chunk is stored once, under its
// hash, for every checkpoint that holds it.
//
// Writing: the chunks not present yet go into a table file of their own,
// which is ingested (written once and synced, then linked into the tree,
// instead of going through the log, the memtable and a flush). Then the
// manifest, and the deletion of the manifests beyond the Keep newest and
// of the chunks only they held, go in one batch committed with fsync. A
// crash before that commit leaves the checkpoint absent (its chunks, held
// by no manifest, are deleted at the next open); after it, whole. Which
// chunks are present, and how many kept manifests hold each, is kept in
// memory, rebuilt at open from the manifests. Reading: Latest takes the
// newest manifest whose chunks are all there and check out (CRC and hash of
// each chunk, then each part's size and CRC), skipping the others with the
// reason; a chunk found missing or corrupt is written again by the next
// checkpoint that holds it.
//
// A full disk: Pebble takes a failed WAL or MANIFEST write as fatal (a
// panic, or its Logger.Fatalf, which panics here), so it must not meet one.
// Write first asks the file system for the room free and fails with ENOSPC,
// leaving the database as it was, when there is less than twice its batch
// (the WAL, then the flushed table) plus a margin. While there is not even
// the margin, the database is opened read-only: the checkpoints still read
// back, and the next Write with room enough opens it for writing again. A
// disk filled by something else between the check and the write still
// ends the process.

package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	pebbleMagic = "WSPP"
	// pebbleDiskMargin is the room Write wants beyond twice its batch, for
	// Pebble's own files (a new WAL or MANIFEST, a compaction's output).
	pebbleDiskMargin = 16 << 20
	// maxPebbleBatch is the most a checkpoint's new bytes can be: Pebble's
	// batches are under 4 GiB.
	maxPebbleBatch = 4<<30 - 1<<20
)

type chunkHash = [sha256.Size]byte

// failCommit makes the manifest's batch fail (tests: a failure after the
// ingest, which a real disk gives only rarely).
var failCommit bool

// chunkRef is a stored chunk: its hash, under the id of the checkpoint
// that stored it. Keys by id make each checkpoint's new chunks a key range
// of their own, above all earlier ones, so their ingested table overlaps
// nothing and goes straight to the bottom of the tree: the chunks are never
// rewritten by compactions, and a range no checkpoint holds any more is
// dropped whole.
type chunkRef struct {
	id uint64
	h  chunkHash
}

// chunk is a chunk to store: where, and its bytes.
type chunk struct {
	r chunkRef
	b []byte
}

// ingest writes chunks (with their CRCs) into a table file of their own and
// ingests it.
func (s *PebbleStore) ingest(id uint64, chunks []chunk) (err error) {
	if len(chunks) == 0 {
		return nil
	}
	slices.SortFunc(chunks, func(a, b chunk) int { return bytes.Compare(a.r.h[:], b.r.h[:]) }) // one id: key order
	path := s.opts.FS.PathJoin(s.dir, fmt.Sprintf("ingest-%020d.sst", id))
	f, err := s.opts.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := s.opts.FS.Remove(path); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}()
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
		TableFormat: s.db.TableFormat(), Compression: sstable.NoCompression, BlockSize: 64 << 10})
	var val []byte
	for _, ch := range chunks {
		val = binary.LittleEndian.AppendUint32(append(val[:0], ch.b...), crc32c(ch.b))
		if err := w.Set(chunkKey(ch.r), val); err != nil {
			_ = w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return s.db.Ingest(context.Background(), []string{path})
}

// PebbleOptions configure a PebbleStore; the zero value is the defaults.
type PebbleOptions struct {
	// Keep is how many complete checkpoints to keep (default 2).
	Keep int
	// FS is the file system the database is on (default vfs.Default).
	FS vfs.FS
	// ChunkTarget is the average chunk size aimed at, rounded down to a
	// power of two, at least 1 KiB (default 256 KiB); chunks are
	// ChunkTarget/4 to 4×ChunkTarget bytes.
	ChunkTarget int
}

// PebbleStore is a Pebble database of checkpoints. It is used by one
// goroutine at a time.
type PebbleStore struct {
	dir      string
	opts     PebbleOptions
	db       *pebble.DB
	readOnly bool // opened read-only, the disk being full
	closed   bool

	mans  map[uint64][]chunkRef // the manifests present by id: their distinct chunks (nil: it does not decode)
	refs  map[chunkRef]int      // how many of mans hold each chunk (present when > 0)
	loc   map[chunkHash]uint64  // where each hash is stored (its newest copy held)
	perID map[uint64]int        // how many chunks held are stored under each id
	bad   map[chunkHash]bool    // chunks Latest found missing or corrupt: written again

	newBytes, totalBytes     int64
	minSize, target, maxSize int
	maskS, maskL             uint64
}

// OpenPebble opens (creating it if need be) the database of checkpoints in
// dir.
func OpenPebble(dir string, opts PebbleOptions) (*PebbleStore, error) {
	if opts.Keep <= 0 {
		opts.Keep = 2
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.ChunkTarget <= 0 {
		opts.ChunkTarget = 256 << 10
	}
	b := max(bits.Len(uint(opts.ChunkTarget))-1, 10)
	opts.ChunkTarget = 1 << b
	s := &PebbleStore{dir: dir, opts: opts, bad: map[chunkHash]bool{},
		target: 1 << b, minSize: 1 << (b - 2), maxSize: 1 << (b + 2),
		// a cut is where the top bits of the hash are zero: more of them
		// below the target, fewer above (FastCDC's normalized chunking)
		maskS: ^uint64(0) << (64 - (b + 2)), maskL: ^uint64(0) << (64 - (b - 2))}
	if err := s.ready(false); err != nil {
		return nil, err
	}
	return s, nil
}

// Name is "pebble".
func (s *PebbleStore) Name() string { return "pebble" }

// LastWrite returns the figures of the last successful Write: the bytes of
// the chunks it stored (the ones not present yet) and of all its parts.
func (s *PebbleStore) LastWrite() (newBytes, totalBytes int64) { return s.newBytes, s.totalBytes }

// Close closes the database.
func (s *PebbleStore) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// ready opens the database if it is not open, or not for writing and write
// is set: read-write when the disk has room (the margin), else read-only,
// which does for reading.
func (s *PebbleStore) ready(write bool) error {
	if s.closed {
		return errors.New("state: the checkpoint store is closed")
	}
	if s.db != nil && (!write || !s.readOnly) {
		return nil
	}
	full := s.checkRoom(0)
	if full != nil && write {
		return full
	}
	if s.db != nil {
		err := s.db.Close()
		s.db = nil
		if err != nil {
			return fmt.Errorf("state: closing %s: %w", s.dir, err)
		}
	}
	po := &pebble.Options{
		FS: s.opts.FS, ReadOnly: full != nil, Logger: pebbleLogger{},
		// a corrupt block makes the read fail (and Latest skip), not exit
		EventListener: &pebble.EventListener{DataCorruption: func(pebble.DataCorruptionInfo) {}},
	}
	// Compressing chunks is CPU spent for little: snapshots are varints
	// and floats. (Chunks are ingested as tables, not through the
	// memtable, so the default memtable size serves.)
	po.Levels[0].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	db, err := pebble.Open(s.dir, po)
	if err != nil {
		return fmt.Errorf("state: opening %s: %w", s.dir, errors.Join(err, full))
	}
	s.db, s.readOnly = db, full != nil
	if err := s.load(); err != nil {
		_ = db.Close()
		s.db = nil
		return fmt.Errorf("state: reading %s: %w", s.dir, err)
	}
	if !s.readOnly {
		s.dropIngestFiles()
	}
	return nil
}

// dropIngestFiles removes table files a crash left between their writing
// and their ingestion (or their removal after it: the database holds its
// own link). Pebble does not know them, so nothing else would.
func (s *PebbleStore) dropIngestFiles() {
	names, err := s.opts.FS.List(s.dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, "ingest-") && strings.HasSuffix(n, ".sst") {
			_ = s.opts.FS.Remove(s.opts.FS.PathJoin(s.dir, n))
		}
	}
}

// load rebuilds the manifests' chunk lists and the chunks' reference counts.
func (s *PebbleStore) load() error {
	s.mans, s.refs = map[uint64][]chunkRef{}, map[chunkRef]int{}
	s.loc, s.perID = map[chunkHash]uint64{}, map[uint64]int{}
	undecoded := false
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte("m/"), UpperBound: []byte("m0")})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != 10 {
			continue
		}
		id := binary.BigEndian.Uint64(it.Key()[2:])
		v, err := it.ValueAndErr()
		var m *pebbleManifest
		if err == nil {
			m, err = decodeManifest(id, v)
		}
		s.mans[id] = nil
		if err == nil {
			s.hold(id, m.held)
		} else {
			undecoded = true
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if s.readOnly || undecoded {
		// A manifest this wsp cannot read (corrupt, or of another
		// layout) may hold chunks under keys of another shape: keep
		// them all.
		return nil
	}
	return s.dropOrphans()
}

// dropOrphans deletes the chunks stored under ids above every manifest's:
// those of a checkpoint whose chunks were ingested but whose manifest was
// not written (a crash between the two). A manifest holds only chunks
// stored under its id or earlier ones, so nothing held is there, also when
// a manifest does not decode.
func (s *PebbleStore) dropOrphans() error {
	var top uint64
	for id := range s.mans {
		top = max(top, id)
	}
	if top == ^uint64(0) {
		return nil
	}
	// Written only when there is something to drop: a write at every open
	// would be flushed later, whenever (see "A full disk" above).
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: idPrefix(top + 1), UpperBound: []byte("c0")})
	if err != nil {
		return err
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil || !found {
		return err
	}
	return s.db.DeleteRange(idPrefix(top+1), []byte("c0"), pebble.Sync)
}

func (s *PebbleStore) hold(id uint64, held map[chunkRef]bool) {
	rs := make([]chunkRef, 0, len(held)) // not nil: it decodes
	for r := range held {
		rs = append(rs, r)
		if s.refs[r]++; s.refs[r] == 1 {
			s.perID[r.id]++
		}
		if at, ok := s.loc[r.h]; !ok || r.id > at {
			s.loc[r.h] = r.id
		}
	}
	s.mans[id] = rs
}

func (s *PebbleStore) forget(id uint64) {
	for _, r := range s.mans[id] {
		if s.refs[r]--; s.refs[r] > 0 {
			continue
		}
		delete(s.refs, r)
		if s.perID[r.id]--; s.perID[r.id] <= 0 {
			delete(s.perID, r.id)
		}
		if s.loc[r.h] == r.id {
			delete(s.loc, r.h)
			delete(s.bad, r.h)
		}
	}
	delete(s.mans, id)
}

// ids lists the manifests present, oldest first.
func (s *PebbleStore) ids() []uint64 { return slices.Sorted(maps.Keys(s.mans)) }

func chunkKey(r chunkRef) []byte { return append(idPrefix(r.id), r.h[:]...) }
func idPrefix(id uint64) []byte  { return binary.BigEndian.AppendUint64([]byte("c/"), id) }
func manKey(id uint64) []byte    { return binary.BigEndian.AppendUint64([]byte("m/"), id) }

// Write makes checkpoint c durable, storing only the chunks not present
// yet, and drops the checkpoints beyond the Keep newest complete ones, in
// one batch (see Backend).
func (s *PebbleStore) Write(c *Checkpoint) error {
	if err := s.ready(true); err != nil {
		return fmt.Errorf("state: checkpoint %d: %w", c.ID, err)
	}
	names := slices.Sorted(maps.Keys(c.Parts))
	m := binary.LittleEndian.AppendUint16([]byte(pebbleMagic), FormatVersion)
	m = binary.LittleEndian.AppendUint64(m, c.ID)
	m = binary.LittleEndian.AppendUint32(m, uint32(len(c.Meta)))
	m = append(m, c.Meta...)
	m = binary.LittleEndian.AppendUint32(m, uint32(len(names)))
	var fresh []chunk
	var newBytes, total int64
	held := map[chunkRef]bool{}
	for _, n := range names {
		b := c.Parts[n]
		if !validPartName(n) || len(n) > 0xffff {
			return fmt.Errorf("state: checkpoint %d: bad part name %q", c.ID, n)
		}
		m = binary.LittleEndian.AppendUint16(m, uint16(len(n)))
		m = append(m, n...)
		m = binary.LittleEndian.AppendUint64(m, uint64(len(b)))
		m = binary.LittleEndian.AppendUint32(m, crc32c(b))
		at := len(m)
		m = append(m, 0, 0, 0, 0)
		k := 0
		for rest := b; len(rest) > 0; k++ {
			l := s.cut(rest)
			r := chunkRef{id: c.ID, h: sha256.Sum256(rest[:l])}
			if at, ok := s.loc[r.h]; ok && !s.bad[r.h] {
				r.id = at // stored already
			}
			m = binary.LittleEndian.AppendUint64(m, r.id)
			m = append(m, r.h[:]...)
			if !held[r] {
				held[r] = true
				if r.id == c.ID {
					fresh = append(fresh, chunk{r, rest[:l]})
					newBytes += int64(l)
				}
			}
			rest = rest[l:]
		}
		binary.LittleEndian.PutUint32(m[at:], uint32(k))
		total += int64(len(b))
	}
	m = binary.LittleEndian.AppendUint32(m, crc32c(m))

	if size := newBytes + int64(len(m)+48*len(fresh)); size > maxPebbleBatch {
		return fmt.Errorf("state: checkpoint %d: %d new bytes, more than a Pebble batch takes (%d)", c.ID, size, int64(maxPebbleBatch))
	}
	// What goes with it: the checkpoints beyond the Keep newest, and the
	// chunks no checkpoint left holds.
	drop := s.dropped(c.ID)
	delta := map[chunkRef]int{}
	for r := range held {
		delta[r]++
	}
	for _, id := range append(drop, c.ID) {
		for _, r := range s.mans[id] {
			delta[r]--
		}
	}
	// The chunks no checkpoint will hold, by the id they are under: an id
	// losing all its chunks goes as one range (Pebble then drops its table
	// without reading it), the others one by one.
	dead := map[uint64][]chunkRef{}
	for r, d := range delta {
		if d < 0 && s.refs[r]+d <= 0 {
			dead[r.id] = append(dead[r.id], r)
		}
	}
	if err := s.checkRoom(int(newBytes) + len(fresh)*48 + len(m)); err != nil {
		return fmt.Errorf("state: checkpoint %d: %w", c.ID, err)
	}
	// The new chunks go in as a table of their own, ingested (written
	// once, synced, linked into the tree), rather than through a batch,
	// which would write them to the log, the memtable and a flushed table:
	// checkpoint bytes are most of what this database ever stores. A crash
	// after the ingest and before the manifest's batch leaves chunks no
	// manifest holds, which the next open deletes.
	if err := s.ingest(c.ID, fresh); err != nil {
		return fmt.Errorf("state: checkpoint %d: %w", c.ID, err)
	}
	// An unindexed batch's Set and Delete return no errors.
	batch := s.db.NewBatchWithSize(len(m) + len(drop)*16 + len(delta)*48 + 64)
	defer batch.Close()
	_ = batch.Set(manKey(c.ID), m, nil)
	for _, id := range drop {
		_ = batch.Delete(manKey(id), nil)
	}
	for id, rs := range dead {
		if len(rs) == s.perID[id] && id != c.ID {
			_ = batch.DeleteRange(idPrefix(id), idPrefix(id+1), nil)
			continue
		}
		for _, r := range rs {
			_ = batch.Delete(chunkKey(r), nil)
		}
	}
	var err error
	if failCommit {
		err = errors.New("commit failed (test)")
	} else {
		err = batch.Commit(pebble.Sync)
	}
	if err != nil {
		if _, exists := s.mans[c.ID]; !exists && len(fresh) > 0 {
			// The ingested chunks are under c.ID alone: drop them, or
			// nothing would (ids go on from here).
			_ = s.db.DeleteRange(idPrefix(c.ID), idPrefix(c.ID+1), pebble.Sync)
		}
		return fmt.Errorf("state: checkpoint %d: %w", c.ID, err)
	}
	for _, id := range append(drop, c.ID) {
		s.forget(id)
	}
	s.hold(c.ID, held)
	for _, ch := range fresh {
		delete(s.bad, ch.r.h)
	}
	s.newBytes, s.totalBytes = newBytes, total
	return nil
}

// dropped lists the checkpoints a Write of newest removes: those older
// than it beyond the Keep newest complete ones (newest counts; one whose
// manifest does not decode does not).
func (s *PebbleStore) dropped(newest uint64) []uint64 {
	var drop []uint64
	complete := 1
	ids := s.ids()
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		switch {
		case id >= newest:
		case complete < s.opts.Keep && s.mans[id] != nil && s.manifestOK(id):
			complete++
		default:
			drop = append(drop, id)
		}
	}
	return drop
}

// manifestOK says whether checkpoint id's manifest reads and decodes now
// (its chunks are not read: that is Latest's work).
func (s *PebbleStore) manifestOK(id uint64) bool {
	return s.get(manKey(id), func(v []byte) error { _, err := decodeManifest(id, v); return err }) == nil
}

// checkRoom fails with ENOSPC when the disk has not room for a batch of n
// bytes (see the comment at the top). A file system that cannot tell (or
// a dir not made yet) passes.
func (s *PebbleStore) checkRoom(n int) error {
	du, err := s.opts.FS.GetDiskUsage(s.dir)
	if need := 2*uint64(n) + pebbleDiskMargin; err == nil && du.AvailBytes < need {
		return fmt.Errorf("%d bytes free on the disk of %s, %d wanted: %w", du.AvailBytes, s.dir, need, syscall.ENOSPC)
	}
	return nil
}

// cut returns the length of the chunk b starts with.
func (s *PebbleStore) cut(b []byte) int {
	if len(b) <= s.minSize {
		return len(b)
	}
	n := min(len(b), s.maxSize)
	normal := min(s.target, n)
	var h uint64
	i := s.minSize
	for ; i < normal; i++ {
		if h = h<<1 + gear[b[i]]; h&s.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		if h = h<<1 + gear[b[i]]; h&s.maskL == 0 {
			return i + 1
		}
	}
	return n
}

// gear is the rolling hash's table: fixed pseudo-random words (splitmix64),
// so the cuts are the same from run to run.
var gear = func() (g [256]uint64) {
	x := uint64(0)
	for i := range g {
		x += 0x9e3779b97f4a7c15
		z := (x ^ x>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		g[i] = z ^ z>>31
	}
	return g
}()

// Latest returns the newest checkpoint that reads back intact (see
// Backend).
func (s *PebbleStore) Latest() (*Checkpoint, []error, error) {
	if err := s.ready(false); err != nil {
		return nil, nil, err
	}
	c, skipped := newestIntact(s.ids(), s.read)
	return c, skipped, nil
}

// get calls f with the value of key, valid during the call.
func (s *PebbleStore) get(key []byte, f func(v []byte) error) error {
	v, closer, err := s.db.Get(key)
	if err != nil {
		return err
	}
	defer closer.Close()
	return f(v)
}

func (s *PebbleStore) read(id uint64) (*Checkpoint, error) {
	var m *pebbleManifest
	err := s.get(manKey(id), func(v []byte) (err error) {
		m, err = decodeManifest(id, bytes.Clone(v))
		return err
	})
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errors.New("no manifest")
	}
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{ID: id, Meta: m.meta, Parts: make(map[string][]byte, len(m.parts))}
	for _, p := range m.parts {
		b := make([]byte, 0, min(p.size, 1<<30))
		for _, r := range p.chunks {
			err := s.get(chunkKey(r), func(v []byte) error {
				n := len(v) - 4
				if n < 0 || crc32c(v[:n]) != binary.LittleEndian.Uint32(v[n:]) {
					return errors.New("its checksum does not match")
				}
				if sha256.Sum256(v[:n]) != r.h {
					return errors.New("its hash does not match")
				}
				b = append(b, v[:n]...)
				return nil
			})
			if errors.Is(err, pebble.ErrNotFound) {
				s.bad[r.h] = true
				return nil, fmt.Errorf("part %s: chunk %x missing", p.name, r.h)
			}
			if err != nil {
				s.bad[r.h] = true
				return nil, fmt.Errorf("part %s: chunk %x is corrupt: %w", p.name, r.h, err)
			}
		}
		if uint64(len(b)) != p.size || crc32c(b) != p.crc {
			return nil, fmt.Errorf("part %s: its size or checksum does not match the manifest: it is corrupt", p.name)
		}
		c.Parts[p.name] = b
	}
	return c, nil
}

// NextID is the id after every checkpoint present (see Backend).
func (s *PebbleStore) NextID() (uint64, error) {
	if err := s.ready(false); err != nil {
		return 1, err
	}
	ids := s.ids()
	if len(ids) == 0 {
		return 1, nil
	}
	return ids[len(ids)-1] + 1, nil
}

// SaveLatest writes the newest intact checkpoint into dir as a files-format
// savepoint (see Backend), on the operating system's file system.
func (s *PebbleStore) SaveLatest(dir string) (uint64, error) {
	c, _, err := s.Latest()
	if err != nil {
		return 0, err
	}
	if c == nil {
		return 0, fmt.Errorf("state: no intact checkpoint in %s to save", s.dir)
	}
	return savepoint(nil, c, dir)
}

type pebblePart struct {
	name   string
	size   uint64
	crc    uint32
	chunks []chunkRef
}

type pebbleManifest struct {
	meta  []byte
	parts []pebblePart
	held  map[chunkRef]bool // the distinct chunks
}

// decodeManifest checks and decodes manifest b of checkpoint id; the
// result's meta is part of b.
func decodeManifest(id uint64, b []byte) (*pebbleManifest, error) {
	if len(b) < 4+2+8+4+4+4 || string(b[:4]) != pebbleMagic {
		return nil, errors.New("the manifest is not a wsp checkpoint manifest")
	}
	body := b[:len(b)-4]
	if crc32c(body) != binary.LittleEndian.Uint32(b[len(body):]) {
		return nil, errors.New("the manifest's checksum does not match: it is corrupt")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != FormatVersion {
		return nil, fmt.Errorf("checkpoint format version %d; this wsp reads version %d", v, FormatVersion)
	}
	if got := binary.LittleEndian.Uint64(b[6:]); got != id {
		return nil, fmt.Errorf("the manifest is of checkpoint %d", got)
	}
	rest, short, later, le := body[14:], false, false, binary.LittleEndian
	take := func(n int) []byte { // the next n bytes (zeros once cut short)
		if short = short || n > len(rest); short {
			return make([]byte, min(n, 32))
		}
		v := rest[:n:n]
		rest = rest[n:]
		return v
	}
	m := &pebbleManifest{meta: take(int(le.Uint32(take(4)))), held: map[chunkRef]bool{}}
	for n := le.Uint32(take(4)); n > 0 && !short; n-- {
		p := pebblePart{name: string(take(int(le.Uint16(take(2))))), size: le.Uint64(take(8)), crc: le.Uint32(take(4))}
		for k := int(le.Uint32(take(4))); k > 0 && !short; k-- {
			r := chunkRef{id: le.Uint64(take(8)), h: chunkHash(take(sha256.Size))}
			later = later || r.id > id
			p.chunks = append(p.chunks, r)
			m.held[r] = true
		}
		m.parts = append(m.parts, p)
	}
	if short {
		return nil, errors.New("the manifest is cut short")
	}
	if later {
		return nil, errors.New("the manifest names chunks of a later checkpoint")
	}
	if len(rest) != 0 {
		return nil, errors.New("the manifest has bytes after its parts")
	}
	return m, nil
}

// pebbleLogger drops Pebble's messages but its fatal ones, on which it
// panics (Pebble's default logger exits the process).
type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any)  {}
func (pebbleLogger) Errorf(string, ...any) {}
func (pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("state: pebble: "+format, args...))
}
