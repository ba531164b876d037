// Package connect holds wsp's inputs and outputs: its own batch-at-a-time
// implementations of the hot connectors (file and stdin lines in, file and
// stdout lines out) and a bridge that runs any Benthos v4 input or output.
//
// Both kinds accept the same YAML as Benthos. NewInput and NewOutput pick the
// native implementation when the config asks only for what it supports, and
// Benthos otherwise (or always, when Options.Native is false).
//
// Files: select.go (NewInput, NewOutput and the native-or-Benthos decision),
// splitter.go (cutting byte chunks into lines exactly as Benthos's lines
// scanner does), native_file.go (file input and output), native_stdio.go
// (stdin input, stdout output), broker.go (the `broker` input as a fan-in
// of its children, each a partition), benthos.go (the Benthos bridge). Each type
// documents its concurrency where it is defined.
package connect

import (
	"context"
	"errors"

	"github.com/wsp-project/wsp/runtime/record"
)

// ErrEndOfInput is returned by Input.Read when a bounded input has delivered
// everything (and, for Benthos inputs, every delivered batch was acknowledged).
var ErrEndOfInput = errors.New("end of input")

// AckFunc reports the fate of a batch returned by Input.Read. err == nil means
// every record derived from the batch was accepted by an output (or counted as
// dropped); a non-nil err asks the input to redeliver it, where it can. It is
// called exactly once per batch, from any goroutine.
type AckFunc func(ctx context.Context, err error) error

// Input produces batches.
//
// Contract: Read is called from one goroutine, one call at a time. The batch
// it returns belongs to the caller until the AckFunc is called; the input
// must not reuse its memory before then. Read blocks until a batch is
// available, ctx is done, or the input ends (ErrEndOfInput). Close is called
// once, after the last Read has returned.
type Input interface {
	Read(ctx context.Context) (*record.Batch, AckFunc, error)
	Close(ctx context.Context) error
}

// Seeker is implemented by an input that can resume where a checkpoint
// left it: Seek, called before the first Read, gets the last
// record.Batch.Position the checkpoint recorded per partition
// (Source.Partition), and Read then delivers what comes after them.
// Partitions not in positions are read from their start. An input that is
// not a Seeker starts over after a restore (Benthos inputs; documented as
// at-most-once across crashes, or as at-least-once when the source keeps
// unacked messages).
type Seeker interface {
	Seek(positions map[string][]byte) error
}

// Partitioned is implemented by an input whose partitions are all read at
// once from the start (the children of a broker): Partitions names them
// (as in record.Source.Partition, or the prefix of those names before a
// "/"), so that each holds the watermark back from the start instead of
// joining once its first records come. An input that reads its partitions
// one after the other (the files of a file input) does not implement it:
// only the partition being read counts, as in Flink's file source.
type Partitioned interface {
	Partitions() []string
}

// Output consumes batches.
//
// Contract: Write is called from one goroutine, one call at a time, in the
// order batches must appear. It returns nil only once every record of the
// batch was accepted (written to the OS for files, acknowledged for network
// outputs); on error the caller retries the same batch with backoff, so Write
// must be safe to repeat (the output may then hold duplicates: at-least-once).
// Write does not keep references to the batch after it returns. Close flushes
// and releases the output; it is called once, after the last Write.
type Output interface {
	Write(ctx context.Context, b *record.Batch) error
	Close(ctx context.Context) error
}

// Options tune how connectors are built.
type Options struct {
	// Native allows wsp's own implementations of file and stdin inputs and
	// file and stdout outputs when the config asks only for what they
	// support. Default true (set by the caller). False runs everything
	// through Benthos (a plain `broker` input is still merged by wsp, so
	// that its children stay partitions; each child runs in Benthos).
	Native bool
	// BatchSize is the largest batch a native input returns. Default 1024.
	BatchSize int
	// Name is the connector's name in the pipeline ("input", "output",
	// "error_output", a step's port name); it appears in errors and in
	// record.Source.Input.
	Name string
}
