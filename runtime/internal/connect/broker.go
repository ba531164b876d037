package connect

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/wsp-project/wsp/runtime/record"
)

// The `broker` input, as a fan-in of its children.
//
// A Benthos broker input merges its children into one stream, so run in
// Benthos all its messages would share one partition (the `path` metadata
// of file children aside), and watermarks (issue "windowing") could not be
// kept per child. NewInput therefore builds a broker input itself when it
// asks only for what a plain fan-in does (see brokerChildren): each child is
// built by NewInput (a `file` child stays native, with its per-file
// partitions), and brokerInput merges them.
//
// Partitions: a batch of child i has Source.Partition "inputs[i]" when the
// child gives none (stdin, generate, ...), and "inputs[i]/<the child's
// partition>" otherwise (a file child: "inputs[0]/data/a.jsonl"; a nested
// broker: "inputs[0]/inputs[1]"). Source.Input is the broker's own name.
//
// Config: `inputs` (at least one), `copies: 1` and a `batching` policy that
// Benthos treats as a no-op (count <= 1, byte_size <= 0, no period, check or
// processors), besides `label`. A broker with more copies, a real batching
// policy or broker-level processors runs in Benthos as before, and its
// children then share one partition.

// brokerChildren reports whether conf is a `broker` input that brokerInput
// implements, and returns its children's configs.
func brokerChildren(conf map[string]any) ([]map[string]any, bool) {
	kind, body, ok := component(conf, "broker")
	if !ok || kind != "broker" {
		return nil, false
	}
	var children []map[string]any
	for k, v := range body {
		switch k {
		case "inputs":
			if children, ok = configList(v); !ok {
				return nil, false
			}
		case "copies":
			if n, ok := intValue(v); !ok || n != 1 {
				return nil, false
			}
		case "batching":
			if !noopBatching(v) {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return children, len(children) > 0 // Benthos rejects an empty list itself
}

// configList returns v as a list of component configs.
func configList(v any) ([]map[string]any, bool) {
	switch l := v.(type) {
	case []map[string]any:
		return l, true
	case []any:
		out := make([]map[string]any, 0, len(l))
		for _, e := range l {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, false
			}
			out = append(out, m)
		}
		return out, true
	}
	return nil, false
}

// noopBatching reports whether v is a batching policy Benthos ignores
// (batchconfig.Config.IsNoop in v4.80.0).
func noopBatching(v any) bool {
	if v == nil {
		return true
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range m {
		switch k {
		case "count", "byte_size":
			n, ok := intValue(v)
			if !ok || k == "count" && n > 1 || k == "byte_size" && n > 0 {
				return false
			}
		case "period", "check":
			if s, ok := v.(string); !ok || s != "" {
				return false
			}
		case "processors":
			if l, ok := v.([]any); !(v == nil || ok && len(l) == 0) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// brokerChildName is the Options.Name of child i of the input named name;
// it names the child in its errors (`input "input.broker.inputs[1]": ...`).
func brokerChildName(name string, i int) string {
	return name + ".broker.inputs[" + strconv.Itoa(i) + "]"
}

// newBrokerInput builds each child with NewInput (and the same options,
// under its own name) and merges them.
func newBrokerInput(ctx context.Context, children []map[string]any, opts Options) (Input, error) {
	ins := make([]Input, 0, len(children))
	for i, c := range children {
		copts := opts
		copts.Name = brokerChildName(opts.Name, i)
		in, err := NewInput(ctx, c, copts)
		if err != nil {
			for _, in := range ins {
				_ = in.Close(context.Background())
			}
			return nil, err // it names the child (copts.Name)
		}
		ins = append(ins, in)
	}
	return newFanIn(opts.Name, ins), nil
}

// brokerInput merges the batches of several inputs (a broker's children).
//
// Concurrency: the first Read starts one goroutine per child, which calls
// the child's Read in a loop (so each child sees Reads from one goroutine,
// one at a time, as its contract asks) and sends what it gets, batches and
// errors alike, on the unbuffered channel ch; a child's goroutine stops
// after sending its ErrEndOfInput, or when Close cancels its context (a
// batch read but not handed over is then nacked). Read, on the caller's
// goroutine, takes the next item from ch: each child holds at most one
// batch read ahead, and children are served in the order they have batches
// ready. Read alone touches live, ended and started. The AckFunc returned
// with a batch is the child's own, so acks go straight to the child from
// whichever goroutine calls them. Close cancels the goroutines, waits for
// them (every child's Read honours its context), then closes the children:
// each child's Close comes after its last Read has returned.
//
// Errors: a child's Read error is returned as is (it names the child: the
// child's Options.Name is "<name>.broker.inputs[i]"); the child is read
// again afterwards, as the engine retries its input.
//
// End of input: ErrEndOfInput once every child has returned it; each child
// decides when that is (a Benthos child only after all its batches were
// acknowledged, a native file child once all its lines were handed out).
type brokerInput struct {
	name     string
	children []Input

	ch      chan fanItem
	stop    context.CancelFunc
	wg      sync.WaitGroup
	started bool
	live    int // children that have not ended
	ended   bool
}

// fanItem is one result of a child's Read.
type fanItem struct {
	child int
	b     *record.Batch
	ack   AckFunc
	err   error
}

func newFanIn(name string, children []Input) *brokerInput {
	return &brokerInput{name: name, children: children, ch: make(chan fanItem), live: len(children)}
}

func (in *brokerInput) start() {
	if in.started {
		return
	}
	in.started = true
	ctx, cancel := context.WithCancel(context.Background())
	in.stop = cancel
	for i, c := range in.children {
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			in.pump(ctx, i, c)
		}()
	}
}

// pump is child i's goroutine.
func (in *brokerInput) pump(ctx context.Context, i int, c Input) {
	for {
		b, ack, err := c.Read(ctx)
		if err != nil && ctx.Err() != nil {
			return
		}
		select {
		case in.ch <- fanItem{child: i, b: b, ack: ack, err: err}:
		case <-ctx.Done():
			if ack != nil {
				_ = ack(context.Background(), errInputClosed)
			}
			return
		}
		if errors.Is(err, ErrEndOfInput) {
			return
		}
	}
}

// Read implements Input.
func (in *brokerInput) Read(ctx context.Context) (*record.Batch, AckFunc, error) {
	if in.ended {
		return nil, nil, ErrEndOfInput
	}
	in.start()
	for {
		var it fanItem
		select {
		case it = <-in.ch:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if errors.Is(it.err, ErrEndOfInput) {
			if in.live--; in.live == 0 {
				in.ended = true
				return nil, nil, ErrEndOfInput
			}
			// The others go on: an empty batch says that this child's
			// partition has ended, so it stops holding the watermark back.
			end := &record.Batch{Source: record.Source{Input: in.name, Partition: childPartition(it.child), PartitionEnd: true}}
			return end, noopAck, nil
		}
		if it.err != nil {
			return nil, nil, it.err
		}
		return in.relabel(it.child, it.b), it.ack, nil
	}
}

// relabel returns a copy of child i's batch b under the broker's name and
// child i's partition. b itself is left alone: a child may hand the same
// batch out again (a native file input replays nacked batches).
func (in *brokerInput) relabel(i int, b *record.Batch) *record.Batch {
	nb := *b
	p := childPartition(i)
	if b.Source.Partition != "" {
		p += "/" + b.Source.Partition
	}
	nb.Source = record.Source{Input: in.name, Partition: p, PartitionEnd: b.Source.PartitionEnd}
	if b.Recycle != nil {
		recycle := b.Recycle
		nb.Recycle = func(*record.Batch) { recycle(b) }
	}
	return &nb
}

func childPartition(i int) string { return "inputs[" + strconv.Itoa(i) + "]" }

// Seek implements Seeker: each child that can resume gets the positions of
// its own partitions (the names without their "inputs[i]/" prefix, or ""
// for a child without partitions of its own); the others start over.
func (in *brokerInput) Seek(positions map[string][]byte) error {
	for i, c := range in.children {
		sk, ok := c.(Seeker)
		if !ok {
			continue
		}
		mine := map[string][]byte{}
		pre := childPartition(i)
		for name, p := range positions {
			if name == pre {
				mine[""] = p
			} else if rest, ok := strings.CutPrefix(name, pre+"/"); ok {
				mine[rest] = p
			}
		}
		if err := sk.Seek(mine); err != nil {
			return err
		}
	}
	return nil
}

// Partitions implements Partitioned: the children are read at once, so each
// holds the watermark back from the start (a nested broker's children each).
func (in *brokerInput) Partitions() []string {
	var ps []string
	for i, c := range in.children {
		if pc, ok := c.(Partitioned); ok {
			for _, p := range pc.Partitions() {
				ps = append(ps, childPartition(i)+"/"+p)
			}
			continue
		}
		ps = append(ps, childPartition(i))
	}
	return ps
}

// Close implements Input.
func (in *brokerInput) Close(ctx context.Context) error {
	if in.started {
		in.stop()
		in.wg.Wait()
		in.started = false
	}
	in.ended = true
	var errs []error
	for _, c := range in.children {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...) // each names its child
}
