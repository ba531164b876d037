package window

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

// op is what the window operators share.
type op interface {
	Add(key []byte, ts int64, vals []float64, present uint64, emit func(*Result)) Outcome
	Advance(wm int64, emit func(*Result))
	Open() int
}

func TestOperatorData(t *testing.T) {
	for _, file := range []string{"testdata/operator.txt", "testdata/session_operator.txt"} {
		t.Run(file, func(t *testing.T) { operatorData(t, file) })
	}
}

func operatorData(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	var op op
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("bad number %q", s)
		}
		return n
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "  ") {
			t.Fatalf("line %d: result without a directive: %s", i+1, l)
		}
		var got []string
		emit := func(r *Result) {
			kind := "fire"
			if r.Update {
				kind = "update"
			}
			if r.Early {
				kind = "early"
			}
			got = append(got, fmt.Sprintf("  %s %s %v n=%d sum=%g", kind, r.Key, r.Window, r.N, r.M[0].Total()))
		}
		f := strings.Fields(l)
		switch f[0] {
		case "tumbling":
			tw := Tumbling{Size: num(f[1]), Offset: num(f[2])}
			o := &Operator{Assign: func(dst []Window, ts int64) []Window { return append(dst, tw.Assign(ts)) }, Lateness: num(f[4]), Fields: 1}
			if len(f) == 8 && f[5] == "every" { // every N records | every N ms
				if f[7] == "records" {
					o.EveryRecords = num(f[6])
				} else {
					o.EveryMs = num(f[6])
				}
			}
			op = o
		case "sliding":
			sw := Sliding{Size: num(f[1]), Slide: num(f[2])}
			op = &Operator{Assign: sw.Assign, Lateness: num(f[4]), Fields: 1}
		case "session":
			o := &SessionOperator{Gap: num(f[1]), Lateness: num(f[3]), Fields: 1, Need: NeedMoments}
			for k := 4; k+2 < len(f) && f[k] == "every"; k += 3 { // every N records | every N ms
				if f[k+2] == "records" {
					o.EveryRecords = num(f[k+1])
				} else {
					o.EveryMs = num(f[k+1])
				}
			}
			op = o
		case "open":
			if got := op.Open(); got != int(num(f[1])) {
				t.Errorf("line %d: %d open windows, want %s", i+1, got, f[1])
			}
		case "add":
			out := op.Add([]byte(f[1]), num(f[2]), []float64{float64(num(f[3]))}, 1, emit)
			want := f[5]
			gotOut := map[Outcome]string{Added: "added", Late: "late", NoWindow: "nowindow"}[out]
			if gotOut != want {
				t.Errorf("line %d: %s: outcome %s, want %s", i+1, l, gotOut, want)
			}
		case "wm":
			op.Advance(num(f[1]), emit)
		default:
			t.Fatalf("line %d: unknown directive %q", i+1, f[0])
		}
		var want []string
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  ") {
			i++
			want = append(want, lines[i])
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("line %d: %s\n got:\n%s\nwant:\n%s", i+1, l, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestOperatorCleansUp: state for closed windows is dropped, so memory
// follows open windows, not history.
func TestOperatorCleansUp(t *testing.T) {
	tw := Tumbling{Size: 10}
	op := &Operator{Assign: func(dst []Window, ts int64) []Window { return append(dst, tw.Assign(ts)) }}
	fired := 0
	for ts := int64(0); ts < 100000; ts++ {
		op.Add([]byte(fmt.Sprint(ts%100)), ts, nil, 0, func(*Result) { fired++ })
		if ts%50 == 0 {
			op.Advance(ts-1, func(*Result) { fired++ })
		}
	}
	if op.Open() > 400 {
		t.Fatalf("%d window states open; cleanup is not happening", op.Open())
	}
	op.Advance(EndOfTime, func(*Result) { fired++ })
	// 10 consecutive times have 10 different keys, so every record opens
	// its own (key, window): 100,000 firings, none late.
	if op.Open() != 0 || op.Keys() != 0 || fired != 100000 {
		t.Fatalf("open %d, fired %d", op.Open(), fired)
	}
}

// TestOperatorSweepsIdleKeys: keys without open windows are kept for reuse
// for Retain (counted from their last window's cleanup), then dropped, so
// the key index follows the keys in use.
func TestOperatorSweepsIdleKeys(t *testing.T) {
	tw := Tumbling{Size: 10}
	op := &Operator{Assign: func(dst []Window, ts int64) []Window { return append(dst, tw.Assign(ts)) }, Retain: 10_000}
	nop := func(*Result) {}
	for i := int64(0); i < 5000; i++ {
		op.Add([]byte(fmt.Sprint("k", i)), i, nil, 0, nop)
	}
	op.Advance(5009, nop)
	if op.Keys() != 0 || op.keys.n != 5000 {
		t.Fatalf("after firing: %d active, %d indexed (idle keys are kept for Retain)", op.Keys(), op.keys.n)
	}
	// A key that comes back reuses its state.
	op.Add([]byte("k1"), 16000, nil, 0, nop)
	op.Advance(16100, nop)
	if op.keys.n != 1 {
		t.Fatalf("after Retain: %d keys indexed, want the one seen since", op.keys.n)
	}
	if op.Keys() != 0 {
		t.Fatalf("%d active keys after every window fired", op.Keys())
	}
}

// TestKeyIndex: keys with one hash share a probe run; removing any keeps the
// others findable; and over random inserts and removals (many colliding in
// the table's low bits) the index agrees with a Go map.
func TestKeyIndex(t *testing.T) {
	var x keyIndex
	a, b, c := newKeyState([]byte("a"), 7), newKeyState([]byte("b"), 7), newKeyState([]byte(strings.Repeat("long", 10)), 7)
	for _, ks := range []*keyState{a, b, c} {
		x.insert(ks)
	}
	x.remove(b)
	if x.find(7, []byte("a")) != a || x.find(7, []byte("b")) != nil || x.find(7, []byte(strings.Repeat("long", 10))) != c {
		t.Fatal("remove of the middle key")
	}
	x.remove(a)
	x.remove(c)
	if x.n != 0 || x.find(7, []byte("a")) != nil {
		t.Fatal("remove of the rest")
	}
	want := map[string]*keyState{}
	rng := rand.New(rand.NewPCG(3, 4))
	for step := range 200_000 {
		k := fmt.Sprint("k", rng.IntN(5000))
		h := uint64(rng.IntN(64)) << 40 // only 64 distinct hashes, all 0 in the low bits
		h = uint64(len(k))*0x9e3779b97f4a7c15 ^ h
		if ks, ok := want[k]; ok {
			h = ks.hash
		}
		got := x.find(h, []byte(k))
		if got != want[k] {
			t.Fatalf("step %d: find %s: %p, want %p", step, k, got, want[k])
		}
		if got == nil {
			ks := newKeyState([]byte(k), h)
			x.insert(ks)
			want[k] = ks
		} else if rng.IntN(2) == 0 {
			x.remove(got)
			delete(want, k)
		}
		if step%50_000 == 0 {
			x.retain(func(ks *keyState) bool {
				keep := ks.key[len(ks.key)-1] != '7'
				if !keep {
					delete(want, ks.key)
				}
				return keep
			})
		}
	}
	if x.n != len(want) {
		t.Fatalf("%d indexed, want %d", x.n, len(want))
	}
	for k, ks := range want {
		if x.find(ks.hash, []byte(k)) != ks {
			t.Fatalf("%s lost", k)
		}
	}
}

// TestCountOperator: a window per key every Count records, the event-time
// span as its bounds, partial windows at the end of the input.
func TestCountOperator(t *testing.T) {
	o := &CountOperator{Count: 3, Fields: 1, Need: NeedMoments}
	var got []string
	emit := func(r *Result) {
		got = append(got, fmt.Sprintf("%s %v n=%d sum=%g", r.Key, r.Window, r.N, r.M[0].Total()))
	}
	for i, k := range []string{"a", "b", "a", "a", "a", "b"} {
		o.Add([]byte(k), int64(10-i), []float64{float64(i)}, 1, emit)
	}
	if want := "a [7,11) n=3 sum=5"; len(got) != 1 || got[0] != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	if !o.AdvanceN(100, 0, emit) || len(got) != 1 || o.Open() != 2 {
		t.Fatalf("a watermark fires nothing: %v, open %d", got, o.Open())
	}
	if !o.AdvanceN(EndOfTime, 0, emit) {
		t.Fatal("not done")
	}
	// The partial windows fire in the order they opened: b's, then a's second.
	want := []string{"a [7,11) n=3 sum=5", "b [5,10) n=2 sum=6", "a [6,7) n=1 sum=4"}
	if strings.Join(got, "|") != strings.Join(want, "|") || o.Open() != 0 {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// held is the number of key states kept (it follows the windows in
// progress).
func (o *CountOperator) held() int { return len(o.keys) + len(o.order) }

// TestCountOperatorDropsFiredKeys: a key whose window fired keeps no state,
// so memory follows the windows in progress, not every key ever seen.
func TestCountOperatorDropsFiredKeys(t *testing.T) {
	o := &CountOperator{Count: 2, Fields: 1}
	fired := 0
	emit := func(*Result) { fired++ }
	for i := range 100_000 {
		k := []byte(fmt.Sprint("k", i/2)) // each key exactly Count records
		o.Add(k, int64(i), []float64{1}, 1, emit)
	}
	o.Add([]byte("tail"), 1, []float64{1}, 1, emit)
	if fired != 50_000 || o.Open() != 1 || o.held() > 3000 {
		t.Fatalf("fired %d, open %d, held %d", fired, o.Open(), o.held())
	}
	if !o.AdvanceN(EndOfTime, 0, emit) || fired != 50_001 || o.Open() != 0 {
		t.Fatalf("final firing: %d fired, %d open", fired, o.Open())
	}
}
