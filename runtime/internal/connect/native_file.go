package connect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/wsp-project/wsp/runtime/record"
)

// fileInput is the native `file` input: lines of files read in order.
//
// Concurrency: Read and Close run on the caller's reading goroutine, one at a
// time, and alone touch next and cur. AckFuncs run on any goroutine; mu
// guards what they share with Read: the replay queue, ended and every
// fileState.
//
// End of input: Read returns ErrEndOfInput once every file was read and every
// batch handed out, without waiting for acknowledgements (acks do not gate
// the end of a native file input). A batch nacked before that is queued and
// handed out again (when auto_replay_nacks is true, the default); one nacked
// after it cannot be, and its AckFunc returns an error saying so.
//
// Metadata: the record's file is its batch's Source.Partition, and each record
// also carries a `path` metadata entry (one []KV allocation per batch; the
// value bytes are shared by the batch's records and must not be modified in
// place). Benthos's file input also sets mod_time and mod_time_unix; the
// native input does not (run the input through Benthos if they are needed).
type fileInput struct {
	name           string
	batchSize      int
	chunkSize      int
	format         lineFormat
	paths          []string // expanded at construction, as Benthos does
	deleteOnFinish bool
	autoReplay     bool

	next       int                // index in paths of the next file to open
	cur        *inputFile         // the file being read; nil between files
	pendingEnd *record.Batch      // the end of a file given up on, for the next Read
	resume     map[string]filePos // positions to resume from (Seek), by path

	mu     sync.Mutex
	replay []replayBatch
	ended  bool
}

// fileState tracks one file's batches for acknowledgement and delete_on_finish.
type fileState struct {
	path        string
	outstanding int  // batches handed out and not acked yet
	doneReading bool // every line was read
	failed      bool // a batch was dropped or reading failed: do not delete
	deleted     bool
}

type inputFile struct {
	f        *os.File
	sp       *splitter
	st       *fileState
	pathMeta []byte
	failErr  error // a read error to report once the lines before it are delivered
	sent     bool  // a batch of it was handed out
	endSent  bool  // its end was marked (Source.PartitionEnd)
	id       fileID
	base     int64 // the byte offset reading started at (a resume)
}

type replayBatch struct {
	b  *record.Batch
	st *fileState
}

func newFileInput(spec nativeInputSpec, opts Options) (*fileInput, error) {
	opts = opts.withDefaults("input")
	paths, err := expandGlobs(spec.paths)
	if err != nil {
		return nil, fmt.Errorf("connect: input %q: paths: %w", opts.Name, err)
	}
	return &fileInput{
		name:           opts.Name,
		batchSize:      opts.BatchSize,
		chunkSize:      defaultChunkSize,
		format:         spec.format,
		paths:          paths,
		deleteOnFinish: spec.deleteOnFinish,
		autoReplay:     spec.autoReplay,
	}, nil
}

func (in *fileInput) errorf(path, format string, args ...any) error {
	return fmt.Errorf("connect: input %q: file %q: "+format, append([]any{in.name, path}, args...)...)
}

// Read implements Input.
func (in *fileInput) Read(ctx context.Context) (*record.Batch, AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if rb, ok := in.popReplay(false); ok {
		return rb.b, in.ackFunc(rb.st, rb.b), nil
	}
	if end := in.pendingEnd; end != nil {
		in.pendingEnd = nil
		return end, noopAck, nil
	}
	for {
		if in.cur == nil {
			if in.next >= len(in.paths) {
				if rb, ok := in.popReplay(true); ok {
					return rb.b, in.ackFunc(rb.st, rb.b), nil
				}
				return nil, nil, ErrEndOfInput
			}
			if p, ok := in.resume[in.paths[in.next]]; ok && p.done {
				delete(in.resume, in.paths[in.next])
				if fi, err := os.Stat(in.paths[in.next]); err != nil || identity(fi) == p.id {
					// Read to its end (or given up on) before the
					// checkpoint: skipped.
					in.next++
					continue
				}
				// Another file under that name since (a drop folder with
				// delete_on_finish): read it from its start.
			}
			if err := in.open(in.paths[in.next]); err != nil {
				return nil, nil, err // retried on the next Read, as Benthos does
			}
			in.next++
		}
		cf := in.cur
		if cf.failErr != nil {
			err := cf.failErr
			if rerr := in.finishFile(true); rerr != nil {
				err = errors.Join(err, rerr)
			}
			in.endAfterFailure(cf)
			return nil, nil, err
		}
		b, err := in.fill(ctx, cf)
		if err != nil {
			err = in.errorf(cf.st.path, "%w", err)
			if b == nil {
				// Like Benthos, give up on the rest of this file and go on
				// with the next one on the following Read.
				if rerr := in.finishFile(true); rerr != nil {
					err = errors.Join(err, rerr)
				}
				in.endAfterFailure(cf)
				return nil, nil, err
			}
			cf.failErr = err
		}
		if b == nil {
			if err := in.finishFile(false); err != nil {
				return nil, nil, err
			}
			if cf.sent && !cf.endSent {
				// The file ended on a batch boundary: an empty batch marks
				// the end of its partition (watermarks).
				return in.endBatch(cf), noopAck, nil
			}
			continue
		}
		cf.sent = true
		cf.endSent = b.Source.PartitionEnd
		in.mu.Lock()
		cf.st.outstanding++
		in.mu.Unlock()
		return b, in.ackFunc(cf.st, b), nil
	}
}

// endBatch is the empty batch that ends cf's partition (watermarks), with
// its final position.
func (in *fileInput) endBatch(cf *inputFile) *record.Batch {
	return &record.Batch{Source: record.Source{Input: in.name, Partition: cf.st.path, PartitionEnd: true}, Position: cf.pos(true)}
}

// endAfterFailure queues, for the next Read, the empty batch that ends the
// partition of cf, given up on after a read error: its batches already
// handed out must not hold the watermark back for ever.
func (in *fileInput) endAfterFailure(cf *inputFile) {
	if cf.sent && !cf.endSent {
		cf.endSent = true
		in.pendingEnd = in.endBatch(cf)
	}
}

// popReplay takes the oldest nacked batch. With end set and nothing queued it
// marks the input ended, atomically with the check, so that later nacks know
// they cannot be replayed.
func (in *fileInput) popReplay(end bool) (replayBatch, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.replay) > 0 {
		rb := in.replay[0]
		in.replay[0] = replayBatch{}
		in.replay = in.replay[1:]
		return rb, true
	}
	if end {
		in.ended = true
	}
	return replayBatch{}, false
}

func (in *fileInput) open(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return in.errorf(path, "%w", err)
	}
	src := &fileChunks{f: f, size: in.chunkSize, remaining: -1}
	var id fileID
	if fi, err := f.Stat(); err == nil {
		id = identity(fi)
		if fi.Mode().IsRegular() {
			src.remaining = fi.Size()
		}
	}
	cf := &inputFile{
		f:        f,
		sp:       newSplitter(in.format, src),
		st:       &fileState{path: path},
		pathMeta: []byte(path),
		id:       id,
	}
	if p, ok := in.resume[path]; ok {
		// Kept until the checks pass: a refused file stays refused on the
		// engine's retries.
		if p.id != id {
			_ = f.Close()
			return in.errorf(path, "the checkpoint's position is in another file of this name (device %d inode %d then, device %d inode %d now): reset the state, or put the file it read back", p.id.dev, p.id.ino, id.dev, id.ino)
		}
		if src.remaining >= 0 && src.remaining < p.off {
			_ = f.Close()
			return in.errorf(path, "the file is %d bytes, shorter than the checkpoint's position (byte %d): it was truncated or rewritten; reset the state, or put the file it read back", src.remaining, p.off)
		}
		delete(in.resume, path)
		if _, err := f.Seek(p.off, io.SeekStart); err != nil {
			_ = f.Close()
			return in.errorf(path, "resuming at byte %d: %w", p.off, err)
		}
		if src.remaining >= 0 {
			src.remaining = max(src.remaining-p.off, 0)
		}
		cf.sp.line, cf.base = p.line, p.off
		cf.sent = true // its partition exists already: its end must be marked
	}
	in.cur = cf
	return nil
}

// Positions (record.Batch.Position) of the native file input: where a file
// stands after a batch, so a restart from a checkpoint resumes mid-file.
// Encoding, version 1: 1 | device | inode | byte offset | lines so far |
// done (1 when the file was read to its end or given up on), varints. The
// device and inode say it is the same file (a file renamed or replaced
// under the same path is refused with a clear error).

type fileID struct{ dev, ino uint64 }

type filePos struct {
	id        fileID
	off, line int64
	done      bool
}

func (p filePos) encode() []byte {
	b := binary.AppendUvarint(nil, 1)
	b = binary.AppendUvarint(b, p.id.dev)
	b = binary.AppendUvarint(b, p.id.ino)
	b = binary.AppendUvarint(b, uint64(p.off))
	b = binary.AppendUvarint(b, uint64(p.line))
	if p.done {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeFilePos(b []byte) (filePos, error) {
	var v [5]uint64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return filePos{}, errors.New("a file position is cut short")
		}
		v[i], b = x, b[n:]
	}
	if v[0] != 1 || len(b) != 1 {
		return filePos{}, fmt.Errorf("a file position of format %d, or corrupt", v[0])
	}
	return filePos{id: fileID{v[1], v[2]}, off: int64(v[3]), line: int64(v[4]), done: b[0] == 1}, nil
}

// pos is where cf stands now.
func (cf *inputFile) pos(done bool) []byte {
	return filePos{id: cf.id, off: cf.base + cf.sp.off, line: cf.sp.line, done: done}.encode()
}

// Seek implements Seeker: files the checkpoint saw to their end are
// skipped, the one it saw partly is read from where it stopped, the others
// from their start.
func (in *fileInput) Seek(positions map[string][]byte) error {
	in.resume = map[string]filePos{}
	for path, b := range positions {
		p, err := decodeFilePos(b)
		if err != nil {
			return in.errorf(path, "checkpoint position: %w", err)
		}
		in.resume[path] = p
	}
	return nil
}

// finishFile closes the current file and, for delete_on_finish, deletes it if
// it was read completely and every batch of it is already acknowledged.
func (in *fileInput) finishFile(failed bool) error {
	cf := in.cur
	in.cur = nil
	cerr := cf.f.Close()
	in.mu.Lock()
	st := cf.st
	st.doneReading = true
	st.failed = st.failed || failed
	del := in.shouldDelete(st)
	in.mu.Unlock()
	if del {
		if err := os.Remove(st.path); err != nil {
			return in.errorf(st.path, "delete_on_finish: %w", err)
		}
	}
	if cerr != nil && !failed {
		return in.errorf(st.path, "%w", cerr)
	}
	return nil
}

// shouldDelete reports (and records) that st's file must be deleted now.
// The caller holds in.mu.
func (in *fileInput) shouldDelete(st *fileState) bool {
	if !in.deleteOnFinish || !st.doneReading || st.failed || st.deleted || st.outstanding > 0 {
		return false
	}
	st.deleted = true
	return true
}

// fill reads up to batchSize lines of cf. It returns a nil batch at the end
// of the file; with an error it returns the lines read before it, if any.
func (in *fileInput) fill(ctx context.Context, cf *inputFile) (*record.Batch, error) {
	var recs []record.Record
	var err error
	n := 0
	eof := false
	for n < in.batchSize {
		tok, num, ok, lerr := cf.sp.nextLine(ctx, true)
		if lerr != nil {
			err = lerr
			break
		}
		if !ok {
			eof = true
			break
		}
		if recs == nil {
			recs = make([]record.Record, in.batchSize)
		}
		// Set fields in place rather than appending a whole Record: it
		// saves copying (and write-barriering) the struct.
		recs[n].Value, recs[n].Pos = tok, num
		n++
	}
	if n == 0 {
		return nil, err
	}
	recs = recs[:n:n]
	// No per-record `path` metadata (Benthos sets it): the file is the
	// batch's Source.Partition, which error records and watermarks use, and
	// metadata on every record would be copied into every Wasm call.
	// The last batch of a file ends its partition (watermarks).
	end := eof && err == nil
	return &record.Batch{
		Source:   record.Source{Input: in.name, Partition: cf.st.path, PartitionEnd: end},
		Records:  recs,
		Position: cf.pos(end),
	}, err
}

// ackFunc returns the AckFunc of batch b of file st.
func (in *fileInput) ackFunc(st *fileState, b *record.Batch) AckFunc {
	return func(_ context.Context, err error) error {
		in.mu.Lock()
		if err != nil {
			if in.autoReplay && !in.ended {
				// Its position is behind where the input stands now: a
				// checkpoint must not go back to it.
				b.Position = nil
				in.replay = append(in.replay, replayBatch{b: b, st: st})
				in.mu.Unlock()
				return nil
			}
			st.outstanding--
			st.failed = true
			in.mu.Unlock()
			if in.autoReplay {
				return in.errorf(st.path, "lines %d-%d were nacked after the input ended and cannot be redelivered: %w",
					b.Records[0].Pos, b.Records[len(b.Records)-1].Pos, err)
			}
			return nil // auto_replay_nacks: false drops the batch, as Benthos does
		}
		st.outstanding--
		del := in.shouldDelete(st)
		in.mu.Unlock()
		if del {
			if rerr := os.Remove(st.path); rerr != nil {
				return in.errorf(st.path, "delete_on_finish: %w", rerr)
			}
		}
		return nil
	}
}

// Close implements Input.
func (in *fileInput) Close(context.Context) error {
	if in.cur != nil {
		err := in.cur.f.Close()
		in.cur = nil
		if err != nil {
			return fmt.Errorf("connect: input %q: %w", in.name, err)
		}
	}
	in.next = len(in.paths)
	return nil
}

// fileChunks reads a file into fresh buffers of up to size bytes (smaller
// near the end of a regular file, so that small files cost small buffers).
type fileChunks struct {
	f         *os.File
	size      int
	remaining int64 // bytes expected before EOF; -1 if unknown
}

func (c *fileChunks) next(_ context.Context, _ bool) ([]byte, error) {
	n := c.size
	if c.remaining >= 0 && c.remaining < int64(n) {
		n = max(int(c.remaining)+1, min(512, c.size)) // +1: the file may grow
	}
	buf := make([]byte, n)
	for {
		m, err := c.f.Read(buf)
		if m > 0 {
			if c.remaining >= 0 {
				c.remaining = max(c.remaining-int64(m), 0)
			}
			return buf[:m:m], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// --- globs -------------------------------------------------------------------

// osFS is the operating system's file system as an fs.FS taking OS paths,
// like the one Benthos globs against (absolute and "../" paths work).
type osFS struct{}

func (osFS) Open(name string) (fs.File, error)     { return os.Open(name) }
func (osFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// expandGlobs expands paths exactly as Benthos's file input does
// (internal/filepath.Globs): each pattern in order, fs.Glob matches sorted by
// name, "**" matching any depth, duplicates dropped, and a pattern without
// glob characters kept even if no file matches (opening it then fails). The
// one difference: Benthos returns "**" matches in random order; here they
// are sorted.
func expandGlobs(paths []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		var globbed []string
		var err error
		if segs := strings.Split(p, "**"); len(segs) == 1 {
			globbed, err = fs.Glob(osFS{}, p)
		} else {
			globbed, err = superGlob(segs)
		}
		if err != nil {
			return nil, fmt.Errorf("%q: %w", p, err)
		}
		for _, g := range globbed {
			add(g)
		}
		if len(globbed) == 0 && !hasGlobMeta(p) {
			add(p)
		}
	}
	return out, nil
}

func hasGlobMeta(p string) bool {
	magic := `*?[\`
	if runtime.GOOS == "windows" {
		magic = `*?[`
	}
	return strings.ContainsAny(p, magic)
}

func superGlob(segs []string) ([]string, error) {
	matches := map[string]bool{"": true}
	for i, seg := range segs {
		last := i == len(segs)-1
		next := map[string]bool{}
		for m := range matches {
			ps, err := fs.Glob(osFS{}, m+seg)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				if err := fs.WalkDir(osFS{}, p, func(np string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					if last && d.IsDir() {
						return nil
					}
					next[np] = true
					return nil
				}); err != nil {
					return nil, err
				}
			}
		}
		matches = next
	}
	out := make([]string, 0, len(matches))
	for m := range matches {
		out = append(out, m)
	}
	slices.Sort(out)
	return out, nil
}

// --- outputs -----------------------------------------------------------------

// lineWriter writes records as Benthos's lines, delim:x and append codecs do:
// each value, then the suffix unless the value already ends with it.
type lineWriter struct {
	suffix []byte // nil: append codec
	bw     *bufio.Writer
}

// outputBufferSize is the size of the native outputs' write buffer: a batch
// of typical records leaves in one write system call.
const outputBufferSize = 1 << 20

func (w *lineWriter) writeBatch(b *record.Batch) error {
	for i := range b.Records {
		v := b.Records[i].Value
		if _, err := w.bw.Write(v); err != nil {
			return err
		}
		if len(w.suffix) > 0 && !bytes.HasSuffix(v, w.suffix) {
			if _, err := w.bw.Write(w.suffix); err != nil {
				return err
			}
		}
	}
	return w.bw.Flush()
}

// fileOutput is the native `file` output with a static path.
//
// Like Benthos it opens the file on the first Write (creating its directory
// with mode 0777 and the file with 0666, before umask) with
// O_CREATE|O_RDWR|O_APPEND, and keeps it open. Write returns once the whole
// batch was handed to the OS (no fsync, like Benthos). After a failed write
// the file is closed and reopened by the next Write, which rewrites the whole
// batch: lines may then be duplicated (at-least-once).
type fileOutput struct {
	name string
	path string
	f    *os.File
	w    lineWriter
}

func newFileOutput(spec nativeOutputSpec, opts Options) *fileOutput {
	return &fileOutput{
		name: opts.Name,
		path: filepath.Clean(spec.path),
		w:    lineWriter{suffix: spec.suffix},
	}
}

func (o *fileOutput) errorf(format string, args ...any) error {
	return fmt.Errorf("connect: output %q: file %q: "+format, append([]any{o.name, o.path}, args...)...)
}

// Write implements Output.
func (o *fileOutput) Write(ctx context.Context, b *record.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.f == nil {
		if err := os.MkdirAll(filepath.Dir(o.path), 0o777); err != nil {
			return o.errorf("%w", err)
		}
		f, err := os.OpenFile(o.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o666)
		if err != nil {
			return o.errorf("%w", err)
		}
		o.f = f
		if o.w.bw == nil {
			o.w.bw = bufio.NewWriterSize(f, outputBufferSize)
		} else {
			o.w.bw.Reset(f)
		}
	}
	if err := o.w.writeBatch(b); err != nil {
		_ = o.f.Close()
		o.f = nil
		return o.errorf("%w", err)
	}
	return nil
}

// Close implements Output.
func (o *fileOutput) Close(context.Context) error {
	if o.f == nil {
		return nil
	}
	err := o.w.bw.Flush()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	if err != nil {
		return o.errorf("%w", err)
	}
	return nil
}

// identity is a file's device and inode (zero where the OS has none).
func identity(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: st.Ino}
	}
	return fileID{}
}
