package connect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/wsp-project/wsp/runtime/record"
)

// streamInput is the native `stdin` input: lines of a stream.
//
// Concurrency: a background goroutine, started by the first Read, reads the
// stream into fresh buffers and hands them over a small channel, so that Read
// honours its context even though a read of os.Stdin cannot be interrupted.
// Read and Close run on the caller's reading goroutine; the AckFuncs do
// nothing (like Benthos's stdin input, which cannot redeliver) and may run
// anywhere. Close stops the goroutine unless it is blocked in a read of the
// stream, where it stays until that read returns (Benthos has the same
// limitation).
//
// Batching: Read waits for the first line, then takes every further complete
// line already received, up to the batch size, without waiting for more: an
// interactive stream gets its lines promptly. Records have Pos = line number,
// no metadata (as Benthos's stdin) and an empty Source.Partition.
//
// After a line longer than the maximum buffer size Read returns the error and
// then ErrEndOfInput, as Benthos's stdin input stops at a scanner error.
type streamInput struct {
	name      string
	batchSize int
	src       *readerChunks
	sp        *splitter
	done      bool
	failErr   error // reported by the next Read, after the lines read before it
}

// newStreamInput returns a native lines input reading r (os.Stdin in
// production, anything in tests).
func newStreamInput(r io.Reader, format lineFormat, opts Options) *streamInput {
	opts = opts.withDefaults("input")
	src := &readerChunks{r: r, ch: make(chan chunkResult, 4), stop: make(chan struct{})}
	return &streamInput{name: opts.Name, batchSize: opts.BatchSize, src: src, sp: newSplitter(format, src)}
}

// Read implements Input.
func (in *streamInput) Read(ctx context.Context) (*record.Batch, AckFunc, error) {
	if in.failErr != nil {
		err := in.failErr
		in.failErr = nil
		in.done = true
		return nil, nil, err
	}
	if in.done {
		return nil, nil, ErrEndOfInput
	}
	in.src.start()
	var recs []record.Record
	for len(recs) < in.batchSize {
		tok, num, ok, err := in.sp.nextLine(ctx, len(recs) == 0)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				if len(recs) > 0 {
					break // deliver what we have; the next Read sees the context
				}
				return nil, nil, err
			}
			// A line too long or a read error of the stream: like Benthos,
			// stop reading (after delivering the lines before it).
			err = fmt.Errorf("connect: input %q: stdin: %w", in.name, err)
			if len(recs) > 0 {
				in.failErr = err
				break
			}
			in.done = true
			return nil, nil, err
		}
		if !ok {
			if in.sp.eof && len(recs) == 0 {
				in.done = true
				return nil, nil, ErrEndOfInput
			}
			break
		}
		if recs == nil {
			recs = make([]record.Record, 0, min(in.batchSize, 64))
		}
		recs = append(recs, record.Record{Value: tok, Pos: num})
	}
	return &record.Batch{Source: record.Source{Input: in.name}, Records: recs}, noopAck, nil
}

func noopAck(context.Context, error) error { return nil }

// Close implements Input.
func (in *streamInput) Close(context.Context) error {
	in.done = true
	in.src.close()
	return nil
}

// chunkResult is one read of a stream.
type chunkResult struct {
	data []byte
	err  error
}

// readerChunks reads a stream on a goroutine of its own (see streamInput).
type readerChunks struct {
	r       io.Reader
	ch      chan chunkResult
	stop    chan struct{}
	started bool
	closed  bool
	err     error // the stream's final error, once received
}

func (c *readerChunks) start() {
	if c.started {
		return
	}
	c.started = true
	go func() {
		scratch := make([]byte, stdinReadSize)
		for {
			n, err := c.r.Read(scratch)
			if n > 0 {
				// Copy out exactly what was read: the scratch buffer is
				// reused, the chunk never is.
				chunk := make([]byte, n)
				copy(chunk, scratch[:n])
				select {
				case c.ch <- chunkResult{data: chunk}:
				case <-c.stop:
					return
				}
			}
			if err != nil {
				select {
				case c.ch <- chunkResult{err: err}:
				case <-c.stop:
				}
				return
			}
		}
	}()
}

func (c *readerChunks) next(ctx context.Context, wait bool) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	var r chunkResult
	if wait {
		select {
		case r = <-c.ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else {
		select {
		case r = <-c.ch:
		default:
			return nil, nil
		}
	}
	if r.err != nil {
		c.err = r.err
		return nil, r.err
	}
	return r.data, nil
}

func (c *readerChunks) close() {
	if c.closed {
		return
	}
	c.closed = true
	close(c.stop)
}

// streamOutput is the native `stdout` output: each record's value and the
// codec's suffix, written through a buffer that Write flushes before it
// returns. Close flushes but does not close the stream.
type streamOutput struct {
	name string
	dst  io.Writer
	w    lineWriter
}

// newStreamOutput returns a native lines output writing to w (os.Stdout in
// production).
func newStreamOutput(w io.Writer, spec nativeOutputSpec, opts Options) *streamOutput {
	return &streamOutput{name: opts.Name, dst: w, w: lineWriter{suffix: spec.suffix, bw: bufio.NewWriterSize(w, outputBufferSize)}}
}

// Write implements Output.
func (o *streamOutput) Write(ctx context.Context, b *record.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := o.w.writeBatch(b); err != nil {
		// bufio.Writer keeps its first error forever; start afresh so that
		// a retry can succeed if the stream recovers.
		o.w.bw.Reset(o.dst)
		return fmt.Errorf("connect: output %q: stdout: %w", o.name, err)
	}
	return nil
}

// Close implements Output.
func (o *streamOutput) Close(context.Context) error {
	if err := o.w.bw.Flush(); err != nil {
		return fmt.Errorf("connect: output %q: stdout: %w", o.name, err)
	}
	return nil
}
