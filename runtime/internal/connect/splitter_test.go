package connect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// sliceChunks serves data in chunks of at most size bytes, each a fresh copy.
type sliceChunks struct {
	data []byte
	size int
}

func (c *sliceChunks) next(context.Context, bool) ([]byte, error) {
	if len(c.data) == 0 {
		return nil, io.EOF
	}
	n := min(c.size, len(c.data))
	chunk := bytes.Clone(c.data[:n])
	c.data = c.data[n:]
	return chunk, nil
}

// splitAll runs the native splitter over data in chunks of size bytes.
func splitAll(data []byte, f lineFormat, size int) ([]string, error) {
	sp := newSplitter(f, &sliceChunks{data: data, size: size})
	var out []string
	for {
		tok, num, ok, err := sp.nextLine(context.Background(), true)
		if err != nil {
			return out, err
		}
		if !ok {
			return out, nil
		}
		if num < int64(len(out)+1) {
			return out, fmt.Errorf("line number %d after %d lines", num, len(out))
		}
		if cap(tok) != len(tok) {
			return out, fmt.Errorf("line %d: capacity not clipped", num)
		}
		out = append(out, string(tok))
	}
}

// benthosSplit is what Benthos's lines scanner does (scanner_lines.go): a
// bufio.Scanner with its buffer limit and, for a custom delimiter, its split
// function.
func benthosSplit(data []byte, f lineFormat) ([]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	if f.maxLen != bufio.MaxScanTokenSize {
		sc.Buffer([]byte{}, f.maxLen)
	}
	if !f.dropCR {
		delim := f.delim
		sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
			if atEOF && len(data) == 0 {
				return 0, nil, nil
			}
			if i := bytes.Index(data, delim); i >= 0 {
				return i + len(delim), data[0:i], nil
			}
			if atEOF {
				return len(data), data, nil
			}
			return 0, nil, nil
		})
	}
	var out []string
	for sc.Scan() {
		if f.omitEmpty && len(sc.Bytes()) == 0 {
			continue
		}
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

func formatWith(delim string, maxLen int, omitEmpty bool) lineFormat {
	f := defaultLineFormat()
	if delim != "" {
		f.delim, f.dropCR = []byte(delim), false
	}
	if maxLen > 0 {
		f.maxLen = maxLen
	}
	f.omitEmpty = omitEmpty
	return f
}

func TestSplitterMatchesBenthos(t *testing.T) {
	cases := []struct {
		name  string
		data  string
		delim string
		max   int
		omit  bool
	}{
		{"empty", "", "", 0, false},
		{"one unterminated", "abc", "", 0, false},
		{"one terminated", "abc\n", "", 0, false},
		{"just newline", "\n", "", 0, false},
		{"empty lines", "a\n\n\nb\n\n", "", 0, false},
		{"omit empty", "a\n\n\r\nb\n\n", "", 0, true},
		{"crlf", "a\r\nb\r\n\r\nc\r", "", 0, false},
		{"cr only inside", "a\rb\r\r\nc", "", 0, false},
		{"custom delim", "a||b||||c||", "||", 0, false},
		{"custom delim keeps cr", "a\r\n|b\r|", "|", 0, false},
		{"custom delim unterminated", "a||b|", "||", 0, false},
		{"custom delim overlapping", "a|||b||||c", "||", 0, false},
		{"three byte delim", "x<->y<-<->z<-", "<->", 0, false},
		{"custom newline", "a\r\nb\r\n", "\n", 0, false},
		{"max exact terminated", "abcd\nxy\n", "", 5, false},
		{"max exceeded terminated", "abcde\nxy\n", "", 5, false},
		{"max exact unterminated", "ab\nabcde", "", 5, false},
		{"max just under unterminated", "ab\nabcd", "", 5, false},
		{"max with crlf", "abc\r\n", "", 5, false},
		{"max crlf exceeded", "abcd\r\n", "", 5, false},
		{"max custom delim", "abc||de||", "||", 5, false},
		{"max custom delim exceeded", "abcd||", "||", 5, false},
		{"max later line", "a\nb\nccccccccccc\nd\n", "", 4, false},
		{"long lines default max", string(bytes.Repeat([]byte("x"), 70000)) + "\n", "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := formatWith(tc.delim, tc.max, tc.omit)
			want, wantErr := benthosSplit([]byte(tc.data), f)
			for _, size := range []int{1, 2, 3, 4, 5, 7, 16, 1 << 20} {
				got, err := splitAll([]byte(tc.data), f, size)
				if (err != nil) != (wantErr != nil) {
					t.Fatalf("chunk %d: error %v, Benthos %v", size, err, wantErr)
				}
				if err != nil {
					var tl *errLineTooLong
					if !errors.As(err, &tl) {
						t.Fatalf("chunk %d: error %v is not a line-too-long error", size, err)
					}
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
					t.Fatalf("chunk %d:\n got %q\nwant %q", size, got, want)
				}
			}
		})
	}
}

// TestSplitterRandom compares the splitter with Benthos's scanner on random
// data, delimiters, limits and chunk sizes.
func TestSplitterRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\r\n|")
	delims := []string{"", "\n", "|", "||", "a|", "\r\n", "|a|"}
	for i := 0; i < 3000; i++ {
		data := make([]byte, r.IntN(60))
		for j := range data {
			data[j] = alphabet[r.IntN(len(alphabet))]
		}
		f := formatWith(delims[r.IntN(len(delims))], []int{0, 3, 4, 6, 9}[r.IntN(5)], r.IntN(3) == 0)
		size := 1 + r.IntN(9)
		want, wantErr := benthosSplit(data, f)
		got, err := splitAll(data, f, size)
		if (err != nil) != (wantErr != nil) || (err == nil && fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want)) {
			t.Fatalf("data %q delim %q max %d omit %v chunk %d:\n got %q, %v\nwant %q, %v",
				data, f.delim, f.maxLen, f.omitEmpty, size, got, err, want, wantErr)
		}
		if err != nil && len(got) != len(want) {
			t.Fatalf("data %q delim %q max %d chunk %d: %d lines before the error, Benthos %d",
				data, f.delim, f.maxLen, size, len(got), len(want))
		}
	}
}

func TestSplitterLineNumbers(t *testing.T) {
	f := formatWith("", 0, true)
	sp := newSplitter(f, &sliceChunks{data: []byte("a\n\nb\r\n\nc"), size: 2})
	var nums []int64
	for {
		_, num, ok, err := sp.nextLine(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		nums = append(nums, num)
	}
	if fmt.Sprint(nums) != "[1 3 5]" {
		t.Fatalf("line numbers %v, want [1 3 5] (omitted empty lines still count)", nums)
	}
	_, err := splitAll([]byte("ok\ntoo long\n"), formatWith("", 5, false), 3)
	var tl *errLineTooLong
	if !errors.As(err, &tl) || tl.line != 2 || tl.field != "max_buffer_size" {
		t.Fatalf("error %#v, want line 2 max_buffer_size", err)
	}
}
