package connect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wsp-project/wsp/runtime/record"
)

func fileConf(paths ...string) map[string]any {
	l := make([]any, len(paths))
	for i, p := range paths {
		l[i] = p
	}
	return map[string]any{"file": map[string]any{"paths": l}}
}

func brokerConf(children ...map[string]any) map[string]any {
	l := make([]any, len(children))
	for i, c := range children {
		l[i] = c
	}
	return map[string]any{"broker": map[string]any{"inputs": l}}
}

// TestBrokerEligibility checks which broker configs wsp merges itself
// (each child a partition) and which go to Benthos whole.
func TestBrokerEligibility(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "1\n", "b": "2\n"})
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	with := func(extra map[string]any, top map[string]any) map[string]any {
		c := brokerConf(fileConf(a), fileConf(b))
		for k, v := range extra {
			c["broker"].(map[string]any)[k] = v
		}
		for k, v := range top {
			c[k] = v
		}
		return c
	}
	cases := []struct {
		name   string
		conf   map[string]any
		fanIn  bool
		errHas string
	}{
		{"plain", with(nil, nil), true, ""},
		{"label", with(nil, map[string]any{"label": "in"}), true, ""},
		{"copies 1, no-op batching", with(map[string]any{"copies": 1, "batching": map[string]any{"count": 1, "byte_size": 0, "period": "", "check": "", "processors": []any{}}}, nil), true, ""},
		{"one child", brokerConf(fileConf(a)), true, ""},
		{"copies 2", with(map[string]any{"copies": 2}, nil), false, ""},
		{"batching by count", with(map[string]any{"batching": map[string]any{"count": 10}}, nil), false, ""},
		{"batching by period", with(map[string]any{"batching": map[string]any{"period": "1s"}}, nil), false, ""},
		{"broker processors", with(nil, map[string]any{"processors": []any{map[string]any{"mapping": "root = this"}}}), false, ""},
		{"no inputs", brokerConf(), false, "no inputs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := NewInput(testCtx(t), tc.conf, native)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Closed without waiting: a Benthos broker with a batching
			// period, never read, does not finish closing (Benthos v4.80.0).
			defer func() {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_ = in.Close(ctx)
			}()
			if _, ok := in.(*brokerInput); ok != tc.fanIn {
				t.Fatalf("got %T, want fan-in %v", in, tc.fanIn)
			}
		})
	}
}

// TestBrokerFileChildren reads a broker of two file inputs (the first with
// two files) natively and through Benthos: every batch is under the
// broker's name with its child's partition, every line arrives, a nacked
// batch comes back under the same partition (natively), acks reach the children
// (delete_on_finish deletes each file once its lines are acked), and the
// input ends after both children.
func TestBrokerFileChildren(t *testing.T) {
	for _, opts := range []Options{{Native: true, BatchSize: 2}, {Native: false, BatchSize: 2}} {
		t.Run(fmt.Sprintf("native=%v", opts.Native), func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"a1.txt": "a1-1\na1-2\na1-3\n",
				"a2.txt": "a2-1\na2-2\n",
				"b.txt":  "b-1\nb-2\nb-3\nb-4\n",
			}
			writeFiles(t, dir, files)
			p := func(n string) string { return filepath.Join(dir, n) }
			conf := brokerConf(fileConf(p("a1.txt"), p("a2.txt")), fileConf(p("b.txt")))
			for _, c := range conf["broker"].(map[string]any)["inputs"].([]any) {
				c.(map[string]any)["file"].(map[string]any)["delete_on_finish"] = true
			}
			in := mustInput(t, conf, opts)
			wantPart := map[string]string{ // line prefix -> partition
				"a1": "inputs[0]/" + p("a1.txt"),
				"a2": "inputs[0]/" + p("a2.txt"),
				"b":  "inputs[1]/" + p("b.txt"),
			}
			ctx := testCtx(t)
			var lines []string
			nacked := ""
			for {
				b, ack, err := in.Read(ctx)
				if errors.Is(err, ErrEndOfInput) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if b.Source.Input != "input" {
					t.Errorf("batch input %q", b.Source.Input)
				}
				for _, r := range b.Records {
					v := string(r.Value)
					if want := wantPart[v[:strings.IndexByte(v, '-')]]; b.Source.Partition != want {
						t.Errorf("line %q in partition %q, want %q", v, b.Source.Partition, want)
					}
				}
				if nacked == "" && b.Len() > 0 {
					nacked = string(b.Records[0].Value)
					if err := ack(ctx, errors.New("try again")); err != nil {
						t.Fatal(err)
					}
					continue
				}
				for _, r := range b.Records {
					lines = append(lines, string(r.Value))
				}
				if err := ack(ctx, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := in.Close(ctx); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, c := range files {
				want = append(want, strings.Fields(c)...)
			}
			slices.Sort(lines)
			slices.Sort(want)
			if !slices.Equal(lines, want) {
				t.Errorf("lines %v, want %v (nacked %q)", lines, want, nacked)
			}
			for n := range files {
				if _, err := os.Stat(p(n)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s not deleted: %v", n, err)
				}
			}
		})
	}
}

// TestBrokerChildErrors: errors about a child name it, at construction
// (Benthos's own message, under the child's name) and when reading.
func TestBrokerChildErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "1\n", "sub/x": "2\n"})
	a := filepath.Join(dir, "a")
	bad := func(body map[string]any) map[string]any { return map[string]any{"file": body} }
	cases := []struct {
		name   string
		conf   map[string]any
		prefix string // of the error
		has    string
	}{
		{"unknown field", brokerConf(fileConf(a), bad(map[string]any{"pathz": []any{a}})),
			`connect: input "input.broker.inputs[1]": invalid config: `, "field pathz not recognised"},
		{"unknown component", brokerConf(fileConf(a), map[string]any{"nosuch": map[string]any{}}),
			`connect: input "input.broker.inputs[1]": invalid config: `, "nosuch"},
		{"bad codec", brokerConf(fileConf(a), bad(map[string]any{"paths": []any{a}, "codec": "bogus"})),
			`connect: input "input.broker.inputs[1]": `, "codec was not recognised: bogus"},
		{"nested", brokerConf(brokerConf(fileConf(a), bad(map[string]any{"pathz": []any{a}})), fileConf(a)),
			`connect: input "input.broker.inputs[0].broker.inputs[1]": invalid config: `, "field pathz not recognised"},
		{"broker field", map[string]any{"broker": map[string]any{"inputs": []any{fileConf(a)}, "copies": "two"}},
			`connect: input "input": `, "copies"},
	}
	for _, opts := range []Options{native, viaBenthos} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/native=%v", tc.name, opts.Native), func(t *testing.T) {
				in, err := NewInput(testCtx(t), tc.conf, opts)
				if err == nil {
					in.Close(context.Background())
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), tc.prefix) || !strings.Contains(err.Error(), tc.has) {
					t.Fatalf("error %q, want prefix %q and %q in it", err, tc.prefix, tc.has)
				}
			})
		}
	}
	// Reading a directory fails in the native file input, naming the child.
	t.Run("read", func(t *testing.T) {
		in := mustInput(t, brokerConf(fileConf(a), fileConf(filepath.Join(dir, "sub"))), native)
		ctx := testCtx(t)
		var readErr error
		for {
			b, ack, err := in.Read(ctx)
			if errors.Is(err, ErrEndOfInput) {
				break
			}
			if err != nil {
				readErr = err
				continue
			}
			_ = b
			_ = ack(ctx, nil)
		}
		in.Close(ctx)
		if readErr == nil || !strings.HasPrefix(readErr.Error(), `connect: input "input.broker.inputs[1]": `) {
			t.Fatalf("read error %v, want one naming the child", readErr)
		}
	})
}

// fakeChild is an Input a test drives: Read returns what the test puts on
// items, in order. It checks its contract (Read from one goroutine at a
// time, Close after the last Read).
type fakeChild struct {
	t       *testing.T
	items   chan fanItem
	reading atomic.Int32
	closed  atomic.Bool
	ended   atomic.Bool // Read returned ErrEndOfInput
}

func newFakeChild(t *testing.T) *fakeChild { return &fakeChild{t: t, items: make(chan fanItem, 16)} }

func (f *fakeChild) Read(ctx context.Context) (*record.Batch, AckFunc, error) {
	if f.reading.Add(1) != 1 || f.closed.Load() {
		f.t.Error("concurrent Read, or Read after Close")
	}
	defer f.reading.Add(-1)
	select {
	case it := <-f.items:
		if errors.Is(it.err, ErrEndOfInput) {
			f.ended.Store(true)
		}
		return it.b, it.ack, it.err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

func (f *fakeChild) Close(context.Context) error {
	if f.reading.Load() != 0 || f.closed.Swap(true) {
		f.t.Error("Close during Read, or twice")
	}
	return nil
}

// ackLog records the acks of fake batches.
type ackLog struct {
	mu   sync.Mutex
	acks map[string]error
}

func (l *ackLog) item(v, part string) fanItem {
	b := batchOf(v)
	b.Source.Partition = part
	return fanItem{b: b, ack: func(_ context.Context, err error) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, dup := l.acks[v]; dup {
			return fmt.Errorf("%s acked twice", v)
		}
		l.acks[v] = err
		return nil
	}}
}

func (l *ackLog) get(v string) (error, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	err, ok := l.acks[v]
	return err, ok
}

// TestBrokerFanIn drives the fan-in with fake children.
func TestBrokerFanIn(t *testing.T) {
	boom := errors.New("boom")
	eoi := fanItem{err: ErrEndOfInput}
	t.Run("partitions, acks, errors, end after every child", func(t *testing.T) {
		c0, c1 := newFakeChild(t), newFakeChild(t)
		log := &ackLog{acks: map[string]error{}}
		c0.items <- log.item("x", "")
		c0.items <- eoi
		c1.items <- fanItem{err: boom}
		c1.items <- log.item("y", "p")
		in := newFanIn("in", []Input{c0, c1})
		ctx := testCtx(t)
		got := map[string]string{}
		var errs []error
		var ackY AckFunc
		for len(got) < 3 {
			b, ack, err := in.Read(ctx)
			if err != nil {
				errs = append(errs, err)
				if len(errs) > 1 {
					t.Fatalf("errors %v", errs)
				}
				continue
			}
			if b.Len() == 0 {
				// c0 ended while c1 goes on: its partition's end is marked.
				if !b.Source.PartitionEnd || b.Source.Partition != "inputs[0]" || ack(ctx, nil) != nil {
					t.Fatalf("an empty batch: %+v", b.Source)
				}
				got["end of c0"] = "marked"
				continue
			}
			v := string(b.Records[0].Value)
			got[v] = b.Source.Input + " " + b.Source.Partition
			if v == "y" {
				ackY = ack // acked below, before c1 ends
				continue
			}
			if err := ack(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
		if got["x"] != "in inputs[0]" || got["y"] != "in inputs[1]/p" {
			t.Errorf("sources %v", got)
		}
		if len(errs) != 1 || !errors.Is(errs[0], boom) {
			t.Errorf("errors %v, want boom once", errs)
		}
		// c0 has ended; the broker must wait for c1 (which, like a Benthos
		// input, ends only once its batch is acked).
		done := make(chan error, 1)
		go func() {
			_, _, err := in.Read(ctx)
			if !c1.ended.Load() {
				err = fmt.Errorf("Read returned %v before every child ended", err)
			}
			done <- err
		}()
		if err := ackY(ctx, errors.New("nack")); err != nil {
			t.Fatal(err)
		}
		c1.items <- eoi
		if err := <-done; !errors.Is(err, ErrEndOfInput) {
			t.Fatalf("last Read: %v", err)
		}
		if _, _, err := in.Read(ctx); !errors.Is(err, ErrEndOfInput) {
			t.Fatalf("Read after the end: %v", err)
		}
		if err, ok := log.get("x"); !ok || err != nil {
			t.Errorf("x ack %v %v", ok, err)
		}
		if err, ok := log.get("y"); !ok || err == nil || err.Error() != "nack" {
			t.Errorf("y ack %v %v, want the nack passed through", ok, err)
		}
		if err := in.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if !c0.closed.Load() || !c1.closed.Load() {
			t.Error("children not closed")
		}
	})
	t.Run("close stops the children's readers", func(t *testing.T) {
		c0, c1 := newFakeChild(t), newFakeChild(t)
		log := &ackLog{acks: map[string]error{}}
		c0.items <- log.item("x0", "")
		c0.items <- log.item("x1", "")
		in := newFanIn("in", []Input{c0, c1})
		ctx := testCtx(t)
		b, ack, err := in.Read(ctx)
		if err != nil || string(b.Records[0].Value) != "x0" {
			t.Fatalf("Read: %v %v", b, err)
		}
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := in.Close(ctx); err != nil { // c1 is blocked in Read
			t.Fatal(err)
		}
		if !c0.closed.Load() || !c1.closed.Load() {
			t.Error("children not closed")
		}
		// x1 was either read ahead, then nacked, or never read.
		if err, ok := log.get("x1"); ok && !errors.Is(err, errInputClosed) || !ok && len(c0.items) != 1 {
			t.Errorf("x1: ack %v %v, %d unread", ok, err, len(c0.items))
		}
		if _, _, err := in.Read(ctx); !errors.Is(err, ErrEndOfInput) {
			t.Errorf("Read after Close: %v", err)
		}
	})
	t.Run("Read honours its context", func(t *testing.T) {
		c0 := newFakeChild(t)
		in := newFanIn("in", []Input{c0})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := in.Read(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Read: %v", err)
		}
		if err := in.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBrokerRelabelCopies: the child's batch is not modified (a native file
// input replays the very batch it handed out).
func TestBrokerRelabelCopies(t *testing.T) {
	in := newFanIn("in", nil)
	b := batchOf("v")
	b.Source.Partition = "f"
	var recycled *record.Batch
	b.Recycle = func(x *record.Batch) { recycled = x }
	nb := in.relabel(2, b)
	if nb == b || b.Source.Partition != "f" || b.Source.Input != "test" || nb.Source.Partition != "inputs[2]/f" || nb.Source.Input != "in" {
		t.Fatalf("relabel: %+v from %+v", nb.Source, b.Source)
	}
	nb.Recycle(nb)
	if recycled != b {
		t.Error("Recycle does not get the child's batch")
	}
}

// TestBrokerPartitions: a broker names its children's partitions up front
// (nested brokers' children too), so each holds the watermark back from the
// start, however the children's first batches interleave.
func TestBrokerPartitions(t *testing.T) {
	inner := newFanIn("in.broker.inputs[1]", []Input{newFakeChild(t), newFakeChild(t)})
	outer := newFanIn("in", []Input{newFakeChild(t), inner})
	got := strings.Join(outer.Partitions(), " ")
	if want := "inputs[0] inputs[1]/inputs[0] inputs[1]/inputs[1]"; got != want {
		t.Fatalf("partitions %q, want %q", got, want)
	}
	var _ Partitioned = outer
}
