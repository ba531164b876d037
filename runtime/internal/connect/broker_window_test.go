package connect_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wsp-project/wsp/runtime/internal/connect"
	"github.com/wsp-project/wsp/runtime/internal/engine"
	"github.com/wsp-project/wsp/runtime/internal/ops"
	"github.com/wsp-project/wsp/runtime/record"
)

// slowFirstInput wraps a broker input to fix the one thing a fan-in leaves
// to chance, the interleaving of its children, as it would be with a child
// that is slow: the first batch of the partitions starting with slow goes
// first (so that partition counts from the start; one that appears later
// joins the watermark only once it catches up), and the batch holding
// lastLine is held back until every other batch was read. Everything else
// keeps the order the broker gives. With shared set, every batch gets one
// partition, as when the whole broker runs in Benthos.
type slowFirstInput struct {
	in       connect.Input
	slow     string
	lastLine string
	shared   bool

	queue     []readItem
	held      *readItem
	after     []readItem // batches of the held batch's partition after it (order within a partition is kept)
	firstSent bool
}

type readItem struct {
	b    *record.Batch
	ack  connect.AckFunc
	part string // the partition the broker gave (before shared blanks it)
}

func (s *slowFirstInput) next(ctx context.Context) (readItem, error) {
	for {
		b, ack, err := s.in.Read(ctx)
		if err != nil {
			return readItem{}, err
		}
		it := readItem{b, ack, b.Source.Partition}
		if s.shared {
			// One partition for all, as when Benthos runs the broker: no
			// child's end ends it.
			b.Source.Partition, b.Source.PartitionEnd = "", false
		}
		if s.held != nil && it.part == s.held.part {
			s.after = append(s.after, it) // such as the empty batch marking the partition's end
			continue
		}
		for _, r := range b.Records {
			if string(r.Value) == s.lastLine {
				s.held = &it
			}
		}
		if s.held != &it {
			return it, nil
		}
	}
}

func (s *slowFirstInput) Read(ctx context.Context) (*record.Batch, connect.AckFunc, error) {
	for !s.firstSent {
		it, err := s.next(ctx)
		if err != nil {
			return nil, nil, err
		}
		if it.b.Len() > 0 && strings.HasPrefix(it.part, s.slow) {
			s.firstSent = true
			return it.b, it.ack, nil
		}
		s.queue = append(s.queue, it)
	}
	if len(s.queue) > 0 {
		it := s.queue[0]
		s.queue = s.queue[1:]
		return it.b, it.ack, nil
	}
	it, err := s.next(ctx)
	if errors.Is(err, connect.ErrEndOfInput) && s.held != nil {
		it, s.held = *s.held, nil
		s.queue = append(s.queue, s.after...)
		return it.b, it.ack, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return it.b, it.ack, nil
}

func (s *slowFirstInput) Close(ctx context.Context) error { return s.in.Close(ctx) }

type linesOutput struct {
	mu    sync.Mutex
	lines []string
}

func (o *linesOutput) Write(_ context.Context, b *record.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range b.Records {
		o.lines = append(o.lines, string(r.Value))
	}
	return nil
}

func (o *linesOutput) Close(context.Context) error { return nil }

// TestBrokerWatermarkIsMinimumOverChildren runs key -> event_time -> 20 s
// tumbling windows (no out-of-orderness, late records to a `late` output)
// over a broker of two native file inputs: child A has times 0..100 s,
// child B, slow, 0..10 s, its last record (10 s) arriving after all of A.
// The watermark is the minimum over the children's partitions, so A's data
// alone does not fire [0 s, 20 s): B's last record is on time and counted,
// and nothing is late. With one shared partition (as when Benthos runs the
// broker), A's data fires the window and B's last record is late.
func TestBrokerWatermarkIsMinimumOverChildren(t *testing.T) {
	dir := t.TempDir()
	line := func(src string, s int) string { return fmt.Sprintf(`{"id":"s","src":%q,"ts":%d}`, src, s*1000) }
	write := func(name, src string, upTo int) string {
		var sb strings.Builder
		for s := 0; s <= upTo; s++ {
			sb.WriteString(line(src, s) + "\n")
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a.jsonl", "a", 100), write("b.jsonl", "b", 10)
	conf := map[string]any{"broker": map[string]any{"inputs": []any{
		map[string]any{"file": map[string]any{"paths": []any{a}}},
		map[string]any{"file": map[string]any{"paths": []any{b}}},
	}}}
	cases := []struct {
		name      string
		shared    bool
		firstN    int      // count of window [0 s, 20 s)
		late      []string // must be among the late records
		lateCount int      // -1: any
	}{
		{"a partition per child", false, 31, nil, 0},
		{"one shared partition", true, -1, []string{line("b", 10)}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := connect.NewInput(context.Background(), conf, connect.Options{Native: true, BatchSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			spy := &slowFirstInput{in: in, slow: "inputs[1]/", lastLine: line("b", 10), shared: tc.shared}
			key := &ops.KeyStep{StepName: "key", From: ops.Source{Field: "id"}}
			ts := &ops.TimeStep{StepName: "ts", From: ops.Source{Field: "ts"}, Format: ops.TimeEpochMs}
			count, err := ops.ParseAgg("n", "count()")
			if err != nil {
				t.Fatal(err)
			}
			win := &ops.WindowStep{StepName: "w", Size: 20_000, Aggs: []ops.Agg{count}, LateOutput: true}
			for _, v := range []interface{ Validate() error }{key, ts, win} {
				if err := v.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			out, errs, late := &linesOutput{}, &linesOutput{}, &linesOutput{}
			err = engine.Run(context.Background(), context.Background(), engine.Config{
				Input: spy, Steps: []engine.Step{key, ts},
				Keyed:       &engine.Keyed{Chain: []engine.ChainStep{{Keyed: win}}},
				PortOutputs: []map[string]engine.Output{nil, nil, {"late": {Name: "late", Out: late}}},
				Output:      engine.Output{Out: out}, ErrorOutput: engine.Output{Out: errs},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(errs.lines) > 0 {
				t.Fatalf("error output: %v", errs.lines)
			}
			counts := map[int64]int{}
			total := 0
			for _, l := range out.lines {
				var w struct {
					WindowStart int64 `json:"window_start"`
					N           int   `json:"n"`
				}
				if err := json.Unmarshal([]byte(l), &w); err != nil {
					t.Fatal(err)
				}
				counts[w.WindowStart] += w.N
				total += w.N
			}
			if total+len(late.lines) != 101+11 {
				t.Errorf("%d records in windows + %d late, want %d", total, len(late.lines), 101+11)
			}
			if tc.lateCount >= 0 && len(late.lines) != tc.lateCount {
				t.Errorf("late %v, want %d", late.lines, tc.lateCount)
			}
			for _, l := range tc.late {
				if !contains(late.lines, l) {
					t.Errorf("%s not late (late: %v)", l, late.lines)
				}
			}
			if tc.firstN >= 0 && counts[0] != tc.firstN {
				t.Errorf("window [0 s, 20 s) counts %d, want %d (windows %v)", counts[0], tc.firstN, out.lines)
			}
			if !tc.shared {
				want := map[int64]int{0: 31, 20_000: 20, 40_000: 20, 60_000: 20, 80_000: 20, 100_000: 1}
				if fmt.Sprint(counts) != fmt.Sprint(want) || len(out.lines) != len(want) {
					t.Errorf("windows %v, want counts %v, each once", out.lines, want)
				}
			}
		})
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
