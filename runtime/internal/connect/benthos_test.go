package connect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wsp-project/wsp/runtime/record"
)

// TestParityFileInput runs the same file input configs natively and through
// Benthos and expects the same records in the same order, from the same
// files.
func TestParityFileInput(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 5000)
	writeFiles(t, dir, map[string]string{
		"1.jsonl":     "{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}",
		"2.jsonl":     "crlf\r\nlines\r\n\r\nend\r\n",
		"3.jsonl":     "",
		"4.jsonl":     long + "\n" + long + "|" + long + "\n\n",
		"sub/5.jsonl": "a|b||c|\r\n",
	})
	glob := filepath.Join(dir, "*.jsonl")
	cases := map[string]map[string]any{
		"default":        {"paths": []any{glob}},
		"lines scanner":  {"paths": []any{filepath.Join(dir, "2.jsonl"), glob}, "scanner": map[string]any{"lines": map[string]any{}}},
		"omit empty":     {"paths": []any{glob}, "scanner": map[string]any{"lines": map[string]any{"omit_empty": true}}},
		"custom delim":   {"paths": []any{glob, filepath.Join(dir, "sub", "*")}, "scanner": map[string]any{"lines": map[string]any{"custom_delimiter": "|"}}},
		"codec lines":    {"paths": []any{glob}, "codec": "lines"},
		"codec delim":    {"paths": []any{filepath.Join(dir, "sub/5.jsonl")}, "codec": "delim:|"},
		"auto replay":    {"paths": []any{glob}, "auto_replay_nacks": false},
		"empty and none": {"paths": []any{filepath.Join(dir, "3.jsonl"), filepath.Join(dir, "nothing*")}},
	}
	for name, fc := range cases {
		t.Run(name, func(t *testing.T) {
			conf := map[string]any{"file": fc}
			ni := mustInput(t, conf, Options{Native: true, BatchSize: 3})
			if _, ok := ni.(*fileInput); !ok {
				t.Fatalf("native: got %T", ni)
			}
			bi := mustInput(t, conf, Options{Native: false, BatchSize: 3})
			if _, ok := bi.(*benthosInput); !ok {
				t.Fatalf("benthos: got %T", bi)
			}
			nrecs, _ := readAll(t, ni)
			brecs, _ := readAll(t, bi)
			if !reflect.DeepEqual(values(nrecs), values(brecs)) {
				t.Fatalf("values differ\nnative  %q\nbenthos %q", values(nrecs), values(brecs))
			}
			for i := range nrecs {
				if nrecs[i].Partition != brecs[i].Partition {
					t.Fatalf("record %d: native from %q, Benthos from %q",
						i, nrecs[i].Partition, brecs[i].Partition)
				}
			}
		})
	}
}

// TestParityFileOutput writes the same batches through the native and the
// Benthos file output and expects identical files.
func TestParityFileOutput(t *testing.T) {
	dir := t.TempDir()
	batches := []*record.Batch{batchOf("a", "", "b\n", `{"x":"y"}`), batchOf("c|", "d")}
	for _, codec := range []string{"lines", "delim:|", "append"} {
		t.Run(codec, func(t *testing.T) {
			var files [2][]byte
			for i, opts := range []Options{native, viaBenthos} {
				path := filepath.Join(dir, fmt.Sprintf("%s-%d", strings.ReplaceAll(codec, ":", ""), i), "out")
				o := mustOutput(t, map[string]any{"file": map[string]any{"path": path, "codec": codec}}, opts)
				if _, isNative := o.(*fileOutput); isNative != opts.Native {
					t.Fatalf("got %T with Native %v", o, opts.Native)
				}
				for _, b := range batches {
					if err := o.Write(testCtx(t), b); err != nil {
						t.Fatal(err)
					}
				}
				if err := o.Close(testCtx(t)); err != nil {
					t.Fatal(err)
				}
				var err error
				if files[i], err = os.ReadFile(path); err != nil {
					t.Fatal(err)
				}
			}
			if string(files[0]) != string(files[1]) {
				t.Fatalf("native %q, Benthos %q", files[0], files[1])
			}
		})
	}
}

func TestBenthosGenerate(t *testing.T) {
	conf := map[string]any{
		"generate": map[string]any{
			"count":    5,
			"interval": "",
			"mapping":  `root = {"n": counter()}` + "\n" + `meta kind = "gen"`,
		},
	}
	i := mustInput(t, conf, Options{Native: true, Name: "events", BatchSize: 100})
	if _, ok := i.(*benthosInput); !ok {
		t.Fatalf("got %T", i)
	}
	ctx := testCtx(t)
	var recs []record.Record
	var acks []AckFunc
	for len(recs) < 5 {
		b, ack, err := i.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if b.Source.Input != "events" || b.Source.Partition != "" {
			t.Fatalf("source %+v", b.Source)
		}
		recs = append(recs, b.Records...)
		acks = append(acks, ack)
	}
	for n, r := range recs {
		if string(r.Value) != fmt.Sprintf(`{"n":%d}`, n+1) || r.Pos != int64(n+1) {
			t.Fatalf("record %d: %q pos %d", n, r.Value, r.Pos)
		}
		if k, _ := r.MetaValue("kind"); string(k) != "gen" {
			t.Fatalf("record %d: meta %v", n, r.Meta)
		}
	}
	// Benthos ends only once every batch is acknowledged.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := i.Read(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read before acks: want a timeout, got %v", err)
	}
	for _, ack := range acks {
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := i.Read(ctx); !errors.Is(err, ErrEndOfInput) {
		t.Fatalf("Read after acks: want end of input, got %v", err)
	}
	if err := i.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBenthosMergesBatches checks that one-message Benthos batches are merged
// up to the batch size, never across files, and that acks reach every one.
func TestBenthosMergesBatches(t *testing.T) {
	dir := t.TempDir()
	var sb strings.Builder
	for n := range 50 {
		fmt.Fprintf(&sb, "%d\n", n)
	}
	writeFiles(t, dir, map[string]string{"a": sb.String(), "b": sb.String()})
	i := mustInput(t, map[string]any{"file": map[string]any{"paths": []any{filepath.Join(dir, "*")}}}, Options{BatchSize: 8})
	recs, sizes := readAll(t, i)
	if len(recs) != 100 {
		t.Fatalf("%d records", len(recs))
	}
	total := 0
	for _, s := range sizes {
		if s > 8 {
			t.Fatalf("batch of %d > 8", s)
		}
		total += s
		if total > 50 && total-s < 50 {
			t.Fatalf("a batch spans both files: sizes %v", sizes)
		}
	}
	for n, r := range recs {
		if r.Pos != int64(n+1) {
			t.Fatalf("record %d has Pos %d", n, r.Pos)
		}
	}
}

func TestBenthosOutputInterpolated(t *testing.T) {
	dir := t.TempDir()
	o := mustOutput(t, map[string]any{"file": map[string]any{"path": filepath.Join(dir, `${! meta("k") }.txt`)}}, native)
	if _, ok := o.(*benthosOutput); !ok {
		t.Fatalf("got %T", o)
	}
	b := batchOf("1", "2", "3")
	for n := range b.Records {
		b.Records[n].SetMeta("k", []byte("f"))
	}
	b.Records[1].SetMeta("k", []byte("g"))
	ctx := testCtx(t)
	if err := o.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, _ := os.ReadFile(filepath.Join(dir, "f.txt"))
	g, _ := os.ReadFile(filepath.Join(dir, "g.txt"))
	if string(f) != "1\n3\n" || string(g) != "2\n" {
		t.Fatalf("f.txt %q, g.txt %q", f, g)
	}
}

func TestInvalidConfigs(t *testing.T) {
	ctx := testCtx(t)
	inputs := []struct {
		conf map[string]any
		want string // in the error
	}{
		{map[string]any{"file": map[string]any{"pathz": []any{"a"}}}, "field pathz not recognised"},
		{map[string]any{"file": map[string]any{"paths": "a"}}, "expected array value"},
		{map[string]any{"file": map[string]any{"paths": []any{"a"}, "delete_on_finish": "yes please"}}, "field 'delete_on_finish'"},
		{map[string]any{"file": map[string]any{"paths": []any{"a"}, "scanner": map[string]any{"lines": map[string]any{"max_buffer_size": "big"}}}}, "field 'max_buffer_size'"},
		{map[string]any{"file": map[string]any{"paths": []any{"a"}, "scanner": map[string]any{"lines": map[string]any{"omit_empty": true, "nope": 1}}}}, "field nope not recognised"},
		{map[string]any{"file": map[string]any{"paths": []any{"a"}, "scanner": map[string]any{"nope": map[string]any{}}}}, "nope"},
		{map[string]any{"file": map[string]any{"paths": []any{"a"}, "codec": "bogus"}}, "codec was not recognised: bogus"},
		{map[string]any{"file": map[string]any{"paths": []any{"a"}, "codec": "delim:"}}, "custom delimiter codec requires a non-empty delimiter"},
		{map[string]any{"file": map[string]any{"paths": []any{"a["}}}, "syntax error in pattern"},
		{map[string]any{"file": map[string]any{"paths": []any{"a"}}, "label": "Bad Label"}, "invalid label"},
		{map[string]any{"nosuch": map[string]any{}}, "nosuch"},
		{map[string]any{}, "empty config"},
	}
	for _, opts := range []Options{native, viaBenthos} {
		for _, tc := range inputs {
			_, err := NewInput(ctx, tc.conf, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `connect: input "input": `) {
				t.Errorf("native=%v input %v: error %v, want one containing %q", opts.Native, tc.conf, err, tc.want)
			}
		}
	}
	outputs := []struct {
		conf map[string]any
		want string
	}{
		{map[string]any{"file": map[string]any{"codec": "lines"}}, "field path is required"},
		{map[string]any{"file": map[string]any{"path": "x", "codex": "lines"}}, "field codex not recognised"},
		{map[string]any{"stdout": map[string]any{"codec": "bogus"}}, "codec was not recognised: bogus"},
	}
	for _, opts := range []Options{native, viaBenthos} {
		for _, tc := range outputs {
			_, err := NewOutput(ctx, tc.conf, Options{Native: opts.Native, Name: "error_output"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `connect: output "error_output": `) {
				t.Errorf("native=%v output %v: error %v, want one containing %q", opts.Native, tc.conf, err, tc.want)
			}
		}
	}
}

func TestLabelFor(t *testing.T) {
	for name, want := range map[string]string{
		"input": "input", "error_output": "error_output", "Step.Out": "step_out", "_x": "wsp_x", "": "wsp",
	} {
		if got := labelFor(name); got != want {
			t.Errorf("labelFor(%q) = %q, want %q", name, got, want)
		}
	}
}
