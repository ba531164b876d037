package window

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestFloorDiv(t *testing.T) {
	for _, c := range [][3]int64{{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {-1, 5, -1}, {-5, 5, -1}, {-6, 5, -2}, {5, 5, 1}} {
		if got := FloorDiv(c[0], c[1]); got != c[2] {
			t.Errorf("FloorDiv(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

func TestTumbling(t *testing.T) {
	cases := []struct {
		size, offset, ts int64
		want             Window
	}{
		{10, 0, 0, Window{0, 10}},
		{10, 0, 9, Window{0, 10}},
		{10, 0, 10, Window{10, 20}}, // a record exactly at End belongs to the next window
		{10, 0, -15, Window{-20, -10}},
		{10, 0, -10, Window{-10, 0}},
		{10, 0, -1, Window{-10, 0}},
		{10, 3, 2, Window{-7, 3}},
		{10, 3, 3, Window{3, 13}},
		{10, -3, 6, Window{-3, 7}},
		{10, -3, 7, Window{7, 17}},
		{5000, 0, 1700000004999, Window{1700000000000, 1700000005000}},
	}
	for _, c := range cases {
		tw := Tumbling{Size: c.size, Offset: c.offset}
		if err := tw.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := tw.Assign(c.ts); got != c.want {
			t.Errorf("Tumbling(%d,%d).Assign(%d) = %v, want %v", c.size, c.offset, c.ts, got, c.want)
		}
		if got := tw.Assign(c.ts); !got.Contains(c.ts) || got.MaxTimestamp() != got.End-1 {
			t.Errorf("%v does not contain %d", got, c.ts)
		}
	}
	for _, bad := range []Tumbling{{0, 0}, {-5, 0}, {10, 10}, {10, -10}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestSliding checks Assign against a brute-force enumeration of every
// window start, for slides below, equal to and above the size, with
// offsets and negative times.
func TestSliding(t *testing.T) {
	for _, s := range []Sliding{{10, 2, 0}, {10, 3, 1}, {10, 10, 0}, {10, 4, -3}, {3, 5, 0}, {3, 5, 4}, {10000, 2000, 0}} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		for ts := int64(-60); ts <= 60; ts++ {
			var want []Window
			// every start k*slide+offset with start <= ts < start+size, latest first
			for k := FloorDiv(ts-s.Offset, s.Slide) + 1; k > FloorDiv(ts-s.Offset, s.Slide)-s.Size/s.Slide-2; k-- {
				start := k*s.Slide + s.Offset
				if start <= ts && ts < start+s.Size {
					want = append(want, Window{start, start + s.Size})
				}
			}
			got := s.Assign(nil, ts)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%+v.Assign(%d) = %v, want %v", s, ts, got, want)
			}
			if s.Count(ts) != len(want) {
				t.Fatalf("%+v.Count(%d) = %d, want %d", s, ts, s.Count(ts), len(want))
			}
			if n := len(got); s.Slide <= s.Size && n != int(s.Size/s.Slide) && n != int((s.Size+s.Slide-1)/s.Slide) {
				t.Fatalf("%+v: %d windows for %d, want floor or ceil of size/slide", s, n, ts)
			}
		}
	}
	// slide > size: some times belong to no window
	s := Sliding{Size: 3, Slide: 5}
	if s.Count(3) != 0 || s.Count(4) != 0 || s.Count(5) != 1 || s.Count(-2) != 0 || s.Count(-5) != 1 {
		t.Errorf("gaps of a sliding window with slide > size are wrong")
	}
}

// TestSessionsData runs testdata/sessions.txt.
func TestSessionsData(t *testing.T) {
	f, err := os.Open("testdata/sessions.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var s *Sessions
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		fields := strings.Fields(l)
		switch fields[0] {
		case "gap":
			g, _ := strconv.ParseInt(fields[1], 10, 64)
			s = &Sessions{Gap: g}
		case "add":
			ts, _ := strconv.ParseInt(fields[1], 10, 64)
			w, merged := s.Add(ts)
			got := fmt.Sprintf("add %d => %v merged", ts, w)
			for _, m := range merged {
				got += " " + m.String()
			}
			if got != l {
				t.Errorf("line %d:\n got %s\nwant %s", line, got, l)
			}
		case "sessions":
			got := "sessions"
			for _, w := range s.Windows() {
				got += " " + w.String()
			}
			if got != l {
				t.Errorf("line %d:\n got %s\nwant %s", line, got, l)
			}
		default:
			t.Fatalf("line %d: unknown directive %q", line, fields[0])
		}
	}
}

func TestSessionsRemove(t *testing.T) {
	s := &Sessions{Gap: 10}
	s.Add(0)
	s.Add(100)
	if !s.Remove(Window{0, 10}) || s.Remove(Window{0, 10}) || len(s.Windows()) != 1 {
		t.Fatalf("remove: %v", s.Windows())
	}
}
