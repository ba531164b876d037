package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNativeEligibility(t *testing.T) {
	m := func(kv ...any) map[string]any {
		out := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	lines := m("lines", m())
	inputs := []struct {
		name   string
		conf   map[string]any
		native bool
	}{
		{"file default scanner", m("file", m("paths", []any{"a"})), true},
		{"file lines scanner", m("file", m("paths", []any{"a"}, "scanner", lines)), true},
		{"file lines options", m("file", m("paths", []any{"a"}, "scanner", m("lines", m("custom_delimiter", "|", "max_buffer_size", 10, "omit_empty", true)))), true},
		{"file codec lines", m("file", m("paths", []any{"a"}, "codec", "lines", "max_buffer", 0)), true},
		{"file codec delim", m("file", m("paths", []any{"a"}, "codec", "delim:|")), true},
		{"file all options", m("label", "in", "file", m("paths", []string{"a*"}, "delete_on_finish", true, "auto_replay_nacks", false)), true},
		{"empty processors", m("file", m("paths", []any{"a"}), "processors", []any{}), true},
		{"stdin", m("stdin", m()), true},
		{"stdin scanner", m("stdin", m("scanner", lines)), true},
		{"processors", m("file", m("paths", []any{"a"}), "processors", []any{m("noop", m())}), false},
		{"csv scanner", m("file", m("paths", []any{"a"}, "scanner", m("csv", m()))), false},
		{"codec all-bytes", m("file", m("paths", []any{"a"}, "codec", "all-bytes")), false},
		{"codec and scanner", m("file", m("paths", []any{"a"}, "codec", "lines", "scanner", lines)), false},
		{"env var in path", m("file", m("paths", []any{"${DIR}/a"})), false},
		{"zero max_buffer_size", m("file", m("paths", []any{"a"}, "scanner", m("lines", m("max_buffer_size", 0)))), false},
		{"string bool", m("file", m("paths", []any{"a"}, "delete_on_finish", "yes")), false},
		{"no paths", m("file", m()), false},
		{"unknown field", m("file", m("paths", []any{"a"}, "pathz", 1)), false},
		{"stdin delete_on_finish", m("stdin", m("delete_on_finish", true)), false},
		{"generate", m("generate", m("mapping", "root = 1")), false},
	}
	for _, tc := range inputs {
		if _, ok := nativeInput(tc.conf); ok != tc.native {
			t.Errorf("input %s: native = %v, want %v", tc.name, ok, tc.native)
		}
	}
	outputs := []struct {
		name   string
		conf   map[string]any
		native bool
	}{
		{"file", m("file", m("path", "o")), true},
		{"file lines", m("file", m("path", "o", "codec", "lines")), true},
		{"file delim", m("file", m("path", "o", "codec", "delim:\t")), true},
		{"stdout", m("stdout", m()), true},
		{"stdout append", m("stdout", m("codec", "append")), true},
		{"interpolated path", m("file", m("path", `${! meta("x") }.txt`)), false},
		{"all-bytes", m("file", m("path", "o", "codec", "all-bytes")), false},
		{"processors", m("stdout", m(), "processors", []any{m("noop", m())}), false},
		{"drop", m("drop", m()), false},
	}
	for _, tc := range outputs {
		if _, ok := nativeOutput(tc.conf); ok != tc.native {
			t.Errorf("output %s: native = %v, want %v", tc.name, ok, tc.native)
		}
	}
	// stdin and stdout go native through NewInput/NewOutput (nothing is read
	// from stdin before the first Read).
	ctx := testCtx(t)
	si := mustInput(t, m("stdin", m("scanner", lines)), native)
	if _, ok := si.(*streamInput); !ok {
		t.Errorf("stdin: got %T", si)
	}
	_ = si.Close(ctx)
	so := mustOutput(t, m("stdout", m("codec", "lines")), native)
	if _, ok := so.(*streamOutput); !ok {
		t.Errorf("stdout: got %T", so)
	}
	_ = so.Close(ctx)
}

func TestNativeFileInput(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.jsonl":     "a1\na2\na3\n",
		"b.jsonl":     "b1\r\nb2\r\n\r\nb4",
		"empty.jsonl": "",
		"sub/c.jsonl": "c1|c2|",
		"sub/d.txt":   "d1\n",
	})
	in := func(p string) string { return filepath.Join(dir, p) }
	cases := []struct {
		name  string
		file  map[string]any
		batch int
		want  []got
		sizes []int
	}{
		{
			name:  "paths and globs in order, batches per file",
			file:  map[string]any{"paths": []any{in("b.jsonl"), in("*.jsonl")}},
			batch: 2,
			want: []got{
				{"b1", 1, in("b.jsonl")}, {"b2", 2, in("b.jsonl")},
				{"", 3, in("b.jsonl")}, {"b4", 4, in("b.jsonl")},
				{"a1", 1, in("a.jsonl")}, {"a2", 2, in("a.jsonl")},
				{"a3", 3, in("a.jsonl")},
			},
			sizes: []int{2, 2, 2, 1},
		},
		{
			name:  "omit_empty keeps line numbers",
			file:  map[string]any{"paths": []any{in("b.jsonl")}, "scanner": map[string]any{"lines": map[string]any{"omit_empty": true}}},
			batch: 10,
			want: []got{
				{"b1", 1, in("b.jsonl")}, {"b2", 2, in("b.jsonl")},
				{"b4", 4, in("b.jsonl")},
			},
			sizes: []int{3},
		},
		{
			name:  "custom delimiter and super glob",
			file:  map[string]any{"paths": []any{in("**/*.jsonl")}, "scanner": map[string]any{"lines": map[string]any{"custom_delimiter": "|"}}},
			batch: 10,
			want: []got{
				{"a1\na2\na3\n", 1, in("a.jsonl")},
				{"b1\r\nb2\r\n\r\nb4", 1, in("b.jsonl")},
				{"c1", 1, in("sub/c.jsonl")}, {"c2", 2, in("sub/c.jsonl")},
			},
			sizes: []int{1, 1, 2},
		},
		{
			name:  "deprecated codec",
			file:  map[string]any{"paths": []any{in("sub/c.jsonl"), in("empty.jsonl")}, "codec": "delim:|"},
			batch: 1,
			want:  []got{{"c1", 1, in("sub/c.jsonl")}, {"c2", 2, in("sub/c.jsonl")}},
			sizes: []int{1, 1},
		},
		{
			name:  "empty file and no matches",
			file:  map[string]any{"paths": []any{in("empty.jsonl"), in("nothing*")}},
			batch: 10,
		},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 2, 3, 5, defaultChunkSize} {
			t.Run(fmt.Sprintf("%s/chunk=%d", tc.name, chunk), func(t *testing.T) {
				i := mustInput(t, map[string]any{"file": tc.file}, Options{Native: true, BatchSize: tc.batch})
				fi, ok := i.(*fileInput)
				if !ok {
					t.Fatalf("got %T, want the native file input", i)
				}
				fi.chunkSize = chunk
				recs, sizes := readAll(t, i)
				if !reflect.DeepEqual(recs, tc.want) {
					t.Errorf("records\n got %+v\nwant %+v", recs, tc.want)
				}
				if !reflect.DeepEqual(sizes, tc.sizes) {
					t.Errorf("batch sizes %v, want %v", sizes, tc.sizes)
				}
			})
		}
	}
}

func TestNativeFileInputErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "ok\nthis line is too long\nnever read\n", "b": "b1\n"})
	i := mustInput(t, map[string]any{"file": map[string]any{
		"paths":   []any{filepath.Join(dir, "a"), filepath.Join(dir, "missing"), filepath.Join(dir, "b")},
		"scanner": map[string]any{"lines": map[string]any{"max_buffer_size": 8}},
	}}, native)
	ctx := testCtx(t)
	b, ack, err := i.Read(ctx)
	if err != nil || b.Len() != 1 || string(b.Records[0].Value) != "ok" {
		t.Fatalf("first Read: %v %v", b, err)
	}
	_ = ack(ctx, nil)
	_, _, err = i.Read(ctx)
	want := fmt.Sprintf(`connect: input "input": file %q: line 2 is longer than max_buffer_size (8 bytes, delimiter included)`, filepath.Join(dir, "a"))
	if err == nil || err.Error() != want {
		t.Fatalf("second Read error\n got %v\nwant %s", err, want)
	}
	// The file given up on ends its partition (an empty batch), then a
	// missing file is reported, and retried on every Read (as Benthos does).
	if b, _, err = i.Read(ctx); err != nil || b.Len() != 0 || !b.Source.PartitionEnd || b.Source.Partition != filepath.Join(dir, "a") {
		t.Fatalf("third Read: %+v %v", b, err)
	}
	for range 2 {
		if _, _, err = i.Read(ctx); err == nil || !strings.Contains(err.Error(), "missing") || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing file: %v", err)
		}
	}
	if err := i.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNativeFileInputAcks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "1\n2\n3\n", "b": "4\n"})
	conf := map[string]any{"file": map[string]any{"paths": []any{filepath.Join(dir, "*")}, "delete_on_finish": true}}
	i := mustInput(t, conf, Options{Native: true, BatchSize: 2})
	ctx := testCtx(t)
	read := func() (string, AckFunc) {
		t.Helper()
		b, ack, err := i.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		return strings.Join(values(records(b)), ","), ack
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	v1, ack1 := read()
	if v1 != "1,2" {
		t.Fatalf("first batch %q", v1)
	}
	if err := ack1(ctx, errors.New("boom")); err != nil { // nack: replayed next
		t.Fatal(err)
	}
	v1, ack1 = read()
	v2, ack2 := read()
	if v1 != "1,2" || v2 != "3" {
		t.Fatalf("after nack: %q %q", v1, v2)
	}
	v3, ack3 := read() // opening b finished a; a still has unacked batches
	if v3 != "4" || !exists("a") {
		t.Fatalf("b: %q, a exists %v", v3, exists("a"))
	}
	_ = ack2(ctx, nil)
	_ = ack1(ctx, nil)
	if exists("a") {
		t.Fatal("a not deleted once read and acked")
	}
	if _, _, err := i.Read(ctx); !errors.Is(err, ErrEndOfInput) {
		t.Fatalf("want end of input (acks do not gate it), got %v", err)
	}
	if !exists("b") {
		t.Fatal("b deleted before its batch was acked")
	}
	if err := ack3(ctx, errors.New("late")); err == nil || !strings.Contains(err.Error(), "cannot be redelivered") {
		t.Fatalf("nack after the end: %v", err)
	}
	if !exists("b") {
		t.Fatal("b deleted although a batch failed")
	}
}

func TestNativeStdin(t *testing.T) {
	pr, pw := io.Pipe()
	i := newStreamInput(pr, defaultLineFormat(), Options{Name: "input", BatchSize: 3})
	ctx := testCtx(t)
	go func() { _, _ = pw.Write([]byte("a\r\nb\nc\nd\npar")) }()
	var all []got
	for len(all) < 4 { // the complete lines arrive without waiting for more input
		b, _, err := i.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() > 3 || b.Source.Partition != "" {
			t.Fatalf("batch of %d from %q", b.Len(), b.Source)
		}
		all = append(all, records(b)...)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := i.Read(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read of an incomplete line: %v", err)
	}
	go func() { _, _ = pw.Write([]byte("tial\n")); _ = pw.Close() }()
	rest, _ := readAll(t, i)
	all = append(all, rest...)
	want := []got{{"a", 1, ""}, {"b", 2, ""}, {"c", 3, ""}, {"d", 4, ""}, {"partial", 5, ""}}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("got %+v\nwant %+v", all, want)
	}
}

func TestNativeFileOutput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new", "dir", "out.txt")
	for _, tc := range []struct{ codec, want string }{
		{"", "a\nb\n\nc\n"},
		{"lines", "a\nb\n\nc\n"},
		{"delim:|", "a|b\n||c\n|"},
		{"append", "ab\nc\n"},
	} {
		t.Run("codec="+tc.codec, func(t *testing.T) {
			_ = os.Remove(path)
			fc := map[string]any{"path": path}
			if tc.codec != "" {
				fc["codec"] = tc.codec
			}
			o := mustOutput(t, map[string]any{"file": fc}, native)
			if _, ok := o.(*fileOutput); !ok {
				t.Fatalf("got %T, want the native file output", o)
			}
			ctx := testCtx(t)
			if err := o.Write(ctx, batchOf("a", "b\n")); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path) // visible before Close: Write flushed
			if err := o.Write(ctx, batchOf("", "c\n")); err != nil {
				t.Fatal(err)
			}
			if err := o.Close(ctx); err != nil {
				t.Fatal(err)
			}
			all, _ := os.ReadFile(path)
			if !strings.HasPrefix(tc.want, string(got)) || len(got) == 0 || string(all) != tc.want {
				t.Fatalf("after first write %q, at the end %q, want %q", got, all, tc.want)
			}
		})
	}
	// The file is appended to, not truncated.
	o := mustOutput(t, map[string]any{"file": map[string]any{"path": path}}, native)
	if err := o.Write(testCtx(t), batchOf("more")); err != nil {
		t.Fatal(err)
	}
	_ = o.Close(testCtx(t))
	if all, _ := os.ReadFile(path); string(all) != "ab\nc\nmore\n" {
		t.Fatalf("append: %q", all)
	}
}

func TestNativeStdout(t *testing.T) {
	var buf bytes.Buffer
	o := newStreamOutput(&buf, nativeOutputSpec{kind: "stdout", suffix: []byte("\n")}, Options{Name: "output"})
	ctx := testCtx(t)
	if err := o.Write(ctx, batchOf(`{"a":1}`, "", "x\n")); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "{\"a\":1}\n\nx\n" {
		t.Fatalf("after Write: %q", buf.String())
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestNativeFileMarksPartitionEnd: the last batch of each file carries
// Source.PartitionEnd (watermarks stop waiting for the file); a file that
// ends on a batch boundary gets an empty batch that marks it.
func TestNativeFileMarksPartitionEnd(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	if err := os.WriteFile(a, []byte("1\n2\n3\n4\n"), 0o644); err != nil { // two full batches
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("5\n6\n7\n"), 0o644); err != nil { // a full batch and one line
		t.Fatal(err)
	}
	i := mustInput(t, map[string]any{"file": map[string]any{"paths": []any{a, b}}}, Options{Native: true, BatchSize: 2})
	ctx := testCtx(t)
	var got []string
	for {
		bt, ack, err := i.Read(ctx)
		if errors.Is(err, ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%d:%v", filepath.Base(bt.Source.Partition), bt.Len(), bt.Source.PartitionEnd))
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := "a.jsonl:2:false a.jsonl:2:false a.jsonl:0:true b.jsonl:2:false b.jsonl:1:true"
	if strings.Join(got, " ") != want {
		t.Fatalf("batches %q\nwant     %q", strings.Join(got, " "), want)
	}
}

// TestNativeFileEndsFailedPartition: a file given up on after a read error
// (a line over max_buffer_size) still ends its partition, so the lines it
// delivered do not hold the watermark back for ever.
func TestNativeFileEndsFailedPartition(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	if err := os.WriteFile(a, []byte("ok\nthis line is far too long\nnever read\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("b1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	i := mustInput(t, map[string]any{"file": map[string]any{"paths": []any{a, b},
		"scanner": map[string]any{"lines": map[string]any{"max_buffer_size": 8}}}}, Options{Native: true, BatchSize: 1})
	ctx := testCtx(t)
	ended, errs := map[string]bool{}, 0
	for {
		bt, ack, err := i.Read(ctx)
		if errors.Is(err, ErrEndOfInput) {
			break
		}
		if err != nil {
			errs++
			continue
		}
		if ended[bt.Source.Partition] {
			t.Fatalf("a batch of %s after its end", bt.Source.Partition)
		}
		ended[bt.Source.Partition] = bt.Source.PartitionEnd
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if errs != 1 || !ended[a] || !ended[b] {
		t.Fatalf("%d read errors, ended %v", errs, ended)
	}
}

// TestNativeFileSeek: positions of the batches read so far (the last per
// file) let a new input resume: files read to their end are skipped, the
// one read partly goes on from the next line (with its line numbers), the
// others start at the beginning; every line comes exactly once. A file
// replaced under the same path is refused.
func TestNativeFileSeek(t *testing.T) {
	for _, stop := range []int{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint("after ", stop, " batches"), func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"a": "a1\na2\na3\n", "b": "b1\nb2\nb3\nb4\nb5", "c": "c1\n"})
			conf := map[string]any{"file": map[string]any{"paths": []any{filepath.Join(dir, "*")}}}
			ctx := testCtx(t)
			first := mustInput(t, conf, Options{Native: true, BatchSize: 2})
			var got []string
			pos := map[string][]byte{}
			for range stop {
				b, ack, err := first.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range b.Records {
					got = append(got, fmt.Sprintf("%s:%d", r.Value, r.Pos))
				}
				if b.Position == nil {
					t.Fatal("a batch without a position")
				}
				pos[b.Source.Partition] = b.Position
				_ = ack(ctx, nil)
			}
			_ = first.Close(ctx)
			second := mustInput(t, conf, Options{Native: true, BatchSize: 2})
			if err := second.(Seeker).Seek(pos); err != nil {
				t.Fatal(err)
			}
			rest, _ := readAll(t, second)
			for _, r := range rest {
				got = append(got, fmt.Sprintf("%s:%d", r.Value, r.Pos))
			}
			want := "a1:1 a2:2 a3:3 b1:1 b2:2 b3:3 b4:4 b5:5 c1:1"
			if strings.Join(got, " ") != want {
				t.Fatalf("lines %q\nwant  %q", strings.Join(got, " "), want)
			}
		})
	}
	t.Run("replaced file", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"a": "a1\na2\na3\n"})
		conf := map[string]any{"file": map[string]any{"paths": []any{filepath.Join(dir, "a")}}}
		ctx := testCtx(t)
		in := mustInput(t, conf, Options{Native: true, BatchSize: 1})
		b, _, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[string][]byte{b.Source.Partition: b.Position}
		_ = in.Close(ctx)
		writeFiles(t, dir, map[string]string{"x": "new\n"}) // made while a exists: another inode
		if err := os.Rename(filepath.Join(dir, "x"), filepath.Join(dir, "a")); err != nil {
			t.Fatal(err)
		}
		again := mustInput(t, conf, Options{Native: true, BatchSize: 1})
		_ = again.(Seeker).Seek(pos)
		for range 2 { // refused on the engine's retry too
			if _, _, err := again.Read(ctx); err == nil || !strings.Contains(err.Error(), "another file of this name") {
				t.Fatalf("a replaced file: %v", err)
			}
		}
	})
	t.Run("truncated file", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"a": "a1\na2\na3\n"})
		conf := map[string]any{"file": map[string]any{"paths": []any{filepath.Join(dir, "a")}}}
		ctx := testCtx(t)
		in := mustInput(t, conf, Options{Native: true, BatchSize: 2})
		b, _, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[string][]byte{b.Source.Partition: b.Position}
		_ = in.Close(ctx)
		if err := os.Truncate(filepath.Join(dir, "a"), 2); err != nil {
			t.Fatal(err)
		}
		again := mustInput(t, conf, Options{Native: true, BatchSize: 2})
		_ = again.(Seeker).Seek(pos)
		if _, _, err := again.Read(ctx); err == nil || !strings.Contains(err.Error(), "shorter than the checkpoint's position") {
			t.Fatalf("a truncated file: %v", err)
		}
	})
	t.Run("finished file replaced", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"a": "old\n"})
		conf := map[string]any{"file": map[string]any{"paths": []any{filepath.Join(dir, "a")}}}
		ctx := testCtx(t)
		in := mustInput(t, conf, Options{Native: true, BatchSize: 2})
		b, _, err := in.Read(ctx)
		if err != nil || !b.Source.PartitionEnd {
			t.Fatalf("%+v %v", b, err)
		}
		pos := map[string][]byte{b.Source.Partition: b.Position}
		_ = in.Close(ctx)
		writeFiles(t, dir, map[string]string{"x": "new\n"}) // made while a exists: another inode
		if err := os.Rename(filepath.Join(dir, "x"), filepath.Join(dir, "a")); err != nil {
			t.Fatal(err)
		}
		again := mustInput(t, conf, Options{Native: true, BatchSize: 2})
		_ = again.(Seeker).Seek(pos)
		rest, _ := readAll(t, again)
		if len(rest) != 1 || rest[0].Value != "new" {
			t.Fatalf("a new file under a finished one's name: read %+v", rest)
		}
	})
}
