// Package record defines the unit of data that flows through a wsp pipeline:
// a Record, and the Batch that carries many of them between stages.
//
// Records are values; their byte slices usually point into a buffer owned by
// the Batch (an input chunk, or an arena a stage filled). A stage that keeps
// bytes beyond the life of the batch it was handed must copy them.
package record

import "strconv"

// Flags describe which optional parts of a Record are set.
type Flags uint8

const (
	// HasTime is set when Time holds an event time.
	HasTime Flags = 1 << iota
	// HasKey is set when Key was assigned (an empty key is still a key).
	HasKey
)

// KV is one metadata entry. Metadata keeps insertion order; names may repeat
// only if a connector produced them that way.
type KV struct {
	Key   string
	Value []byte
}

// Record is one event.
type Record struct {
	Key   []byte
	Value []byte
	// Time is the event time in milliseconds since the Unix epoch (may be
	// negative). Valid only when Flags&HasTime != 0.
	Time  int64
	Meta  []KV
	Flags Flags
	// Pos is the record's position in its source partition, used in error
	// messages and (issue "state") checkpoints: the 1-based line number for
	// line-oriented inputs, the message sequence number otherwise.
	Pos int64
}

// MetaValue returns the first metadata value named k.
func (r *Record) MetaValue(k string) ([]byte, bool) {
	for i := range r.Meta {
		if r.Meta[i].Key == k {
			return r.Meta[i].Value, true
		}
	}
	return nil, false
}

// SetMeta replaces (or appends) the metadata entry named k.
func (r *Record) SetMeta(k string, v []byte) {
	for i := range r.Meta {
		if r.Meta[i].Key == k {
			r.Meta[i].Value = v
			return
		}
	}
	r.Meta = append(r.Meta, KV{Key: k, Value: v})
}

// Source identifies where a batch came from: an input and a partition within
// it (a file of a file input, a child of a broker input, later a Kafka
// partition). Watermarks (issue "windowing") and positions (issue "state") are
// kept per Source.
type Source struct {
	Input     string // the input's name in the pipeline, e.g. "input"
	Partition string // e.g. the file path; "" for single-partition inputs
	// PartitionEnd marks the last batch of Partition: no more records come
	// from it (a file read to its end, a broker child that finished), so it
	// stops holding the watermark back. The batch may have no records.
	PartitionEnd bool
}

// String renders the source for error messages.
func (s Source) String() string {
	if s.Partition == "" {
		return s.Input
	}
	return s.Input + ":" + s.Partition
}

// Where names a record's origin for error messages, e.g. "input:data.jsonl line 12".
func (s Source) Where(pos int64) string {
	return s.String() + " record " + strconv.FormatInt(pos, 10)
}

// Batch is an ordered group of records from one Source. Batches are the unit
// of work, of acknowledgement and of every call into a Wasm module.
type Batch struct {
	Source  Source
	Records []Record
	// Arena holds bytes the records' slices may point into; reset with the batch.
	Arena []byte
	// Unreadable lists messages of the input batch that could not be turned
	// into records (for example a Benthos message whose bytes cannot be
	// produced). They are not in Records; the engine sends each to the error
	// output with its reason, and they are acknowledged with the batch.
	Unreadable []Unreadable
	// Recycle, when set, is called by the engine once the batch has been
	// written to its output (which keeps no reference to it), so whoever
	// made it can reuse its memory. Nil for batches nobody recycles.
	Recycle func(*Batch)
	// Position is where the input stands in Source.Partition after this
	// batch, in the input's own encoding (a file's identity and offset, a
	// Kafka offset). Checkpoints record the last one per partition, and an
	// input that implements connect.Seeker resumes from them. Nil for
	// inputs that cannot resume.
	Position []byte
}

// Unreadable is an input message that could not be read as a record.
type Unreadable struct {
	Pos    int64  // the message's position in its input, as Record.Pos
	Reason string // what went wrong
}

// Len is the number of records.
func (b *Batch) Len() int { return len(b.Records) }

// Reset empties the batch for reuse, keeping its capacity.
func (b *Batch) Reset() {
	for i := range b.Records {
		b.Records[i] = Record{}
	}
	b.Records = b.Records[:0]
	b.Arena = b.Arena[:0]
	b.Unreadable = b.Unreadable[:0]
}

// CopyBytes appends p to the batch arena and returns the copy. The returned
// slice stays valid until Reset; it may move if the arena grows, so callers
// must take copies through CopyBytes only while no earlier copy is still being
// written to (earlier copies remain valid because growth reallocates, it does
// not move old data).
func (b *Batch) CopyBytes(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	if cap(b.Arena)-len(b.Arena) < len(p) {
		n := 2 * cap(b.Arena)
		if n < len(p)+4096 {
			n = len(p) + 4096
		}
		// Start a fresh arena; slices into the old one stay valid because
		// the old backing array is kept alive by those slices.
		b.Arena = make([]byte, 0, n)
	}
	s := len(b.Arena)
	b.Arena = append(b.Arena, p...)
	return b.Arena[s:len(b.Arena):len(b.Arena)]
}
