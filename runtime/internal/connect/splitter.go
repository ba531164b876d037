package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// Native line splitting.
//
// The native inputs read their source in large chunks, each a freshly
// allocated buffer that is never written again once read into, and cut them
// into records whose Value slices point straight into the chunks. A line that
// starts in one chunk and ends in a later one is copied into a fresh buffer of
// its own (the "carry"). Because no buffer is ever reused, a batch handed to
// the pipeline stays valid for as long as anything references it; memory is
// bounded by the number of batches the pipeline keeps in flight.
//
// The rules match Benthos's `lines` scanner (a bufio.Scanner):
//   - default mode splits on "\n" and drops one trailing "\r" from each line
//     (bufio.ScanLines), including the last, unterminated line;
//   - with a custom delimiter, lines are split on it verbatim (no "\r" removal);
//   - a trailing delimiter at the end of the stream yields no extra empty line,
//     but empty lines in the middle are records (unless omit_empty);
//   - a line that, with its delimiter, is longer than the maximum buffer size
//     (max_buffer_size, 64 KiB by default; max_buffer for the deprecated codec
//     field) is an error, and so is a final unterminated line of at least that
//     size: that is exactly when bufio.Scanner returns ErrTooLong.

const (
	// defaultChunkSize is the size of the buffers files are read into.
	defaultChunkSize = 1 << 20
	// stdinReadSize is the size of one read from a stream (stdin).
	stdinReadSize = 64 << 10
	// defaultMaxLine is Benthos's default max_buffer_size (bufio.MaxScanTokenSize).
	defaultMaxLine = 64 * 1024
	// defaultCodecMaxBuffer is the default of the deprecated max_buffer field.
	defaultCodecMaxBuffer = 1000000
)

// lineFormat says how a byte stream is cut into records.
type lineFormat struct {
	delim     []byte // never empty
	dropCR    bool   // strip one trailing '\r' (default lines mode)
	maxLen    int    // the scanner's maximum token size, > 0
	maxField  string // the config field maxLen came from, for errors
	omitEmpty bool
}

// defaultLineFormat is Benthos's default `lines` scanner.
func defaultLineFormat() lineFormat {
	return lineFormat{delim: []byte("\n"), dropCR: true, maxLen: defaultMaxLine, maxField: "max_buffer_size"}
}

// errLineTooLong reports a line longer than the format allows.
type errLineTooLong struct {
	line  int64
	max   int
	field string
}

func (e *errLineTooLong) Error() string {
	return fmt.Sprintf("line %d is longer than %s (%d bytes, delimiter included)", e.line, e.field, e.max)
}

// chunkSource yields the successive chunks of a stream.
type chunkSource interface {
	// next returns the next chunk: a buffer the caller may keep forever and
	// that the source never writes again. It returns io.EOF at the end of the
	// stream. When wait is false and no data is ready without blocking it
	// returns (nil, nil).
	next(ctx context.Context, wait bool) ([]byte, error)
}

// splitter cuts the chunks of a source into lines. It is used by one
// goroutine at a time.
type splitter struct {
	f     lineFormat
	src   chunkSource
	cur   []byte // unconsumed part of the current chunk
	carry []byte // a line begun in an earlier chunk; a fresh buffer we own
	line  int64  // lines consumed so far (including omitted empty ones)
	off   int64  // bytes consumed so far (the lines and their delimiters)
	eof   bool
}

func newSplitter(f lineFormat, src chunkSource) *splitter {
	return &splitter{f: f, src: src}
}

// nextLine returns the next line and its 1-based line number. ok is false
// when there is no line: at the end of the stream (s.eof is then true), or,
// when wait is false, because completing one would block.
func (s *splitter) nextLine(ctx context.Context, wait bool) (tok []byte, num int64, ok bool, err error) {
	dl := len(s.f.delim)
	for {
		tok, terminated, found := s.cut(dl)
		if !found {
			// No complete line buffered: keep the partial line and read on.
			if len(s.cur) > 0 {
				s.carry = append(s.carry, s.cur...) // appending to nil allocates: never aliases a chunk
				s.cur = nil
			}
			if len(s.carry) >= s.f.maxLen {
				return nil, 0, false, &errLineTooLong{line: s.line + 1, max: s.f.maxLen, field: s.f.maxField}
			}
			if s.eof {
				if len(s.carry) == 0 {
					return nil, 0, false, nil
				}
				tok, terminated, found = s.carry[:len(s.carry):len(s.carry)], false, true
				s.carry = nil
			} else {
				chunk, err := s.src.next(ctx, wait)
				switch {
				case errors.Is(err, io.EOF):
					s.eof = true
				case err != nil:
					return nil, 0, false, err
				case chunk == nil:
					return nil, 0, false, nil // not ready
				default:
					s.cur = chunk
				}
				continue
			}
		}
		s.line++
		s.off += int64(len(tok))
		if terminated {
			s.off += int64(dl)
		}
		if (terminated && len(tok)+dl > s.f.maxLen) || (!terminated && len(tok) >= s.f.maxLen) {
			return nil, 0, false, &errLineTooLong{line: s.line, max: s.f.maxLen, field: s.f.maxField}
		}
		if s.f.dropCR && len(tok) > 0 && tok[len(tok)-1] == '\r' {
			tok = tok[: len(tok)-1 : len(tok)-1]
		}
		if s.f.omitEmpty && len(tok) == 0 {
			continue
		}
		return tok, s.line, true, nil
	}
}

// cut takes the next delimited line out of carry+cur, if there is one. The
// returned slice has its capacity clipped so that appending to it can never
// overwrite the bytes that follow it in a chunk.
func (s *splitter) cut(dl int) (tok []byte, terminated, found bool) {
	if len(s.carry) == 0 {
		i := bytes.Index(s.cur, s.f.delim)
		if i < 0 {
			return nil, false, false
		}
		tok = s.cur[:i:i]
		s.cur = s.cur[i+dl:]
		return tok, true, true
	}
	// A multi-byte delimiter may straddle the end of carry and the start of cur.
	if dl > 1 && len(s.cur) > 0 {
		kc, ku := min(dl-1, len(s.carry)), min(dl-1, len(s.cur))
		region := make([]byte, 0, kc+ku)
		region = append(append(region, s.carry[len(s.carry)-kc:]...), s.cur[:ku]...)
		if p := bytes.Index(region, s.f.delim); p >= 0 && p < kc {
			j := len(s.carry) - kc + p
			tok = s.carry[:j:j]
			s.cur = s.cur[dl-(kc-p):]
			s.carry = nil
			return tok, true, true
		}
	}
	i := bytes.Index(s.cur, s.f.delim)
	if i < 0 {
		return nil, false, false
	}
	tok = append(s.carry, s.cur[:i]...)
	tok = tok[:len(tok):len(tok)]
	s.carry = nil
	s.cur = s.cur[i+dl:]
	return tok, true, true
}
