// Package window assigns event times to windows, following
// ../shared/design/semantics.md (the Flink model):
//
//   - Intervals are half-open, [Start, End): a record exactly at End belongs
//     to the next window.
//   - Tumbling(size, offset): start = floor((t - offset) / size) * size + offset,
//     with a real floor, so negative times land in the right window
//     (t = -15, size 10 -> [-20, -10), not [-10, 0)).
//   - Sliding(size, slide, offset): the last start is the tumbling start for
//     `slide`; then every start > t - size, stepping back by `slide`. With
//     slide > size some times belong to no window.
//   - Sessions(gap): each record opens [t, t + gap); windows that overlap or
//     touch merge into their cover, so two records exactly `gap` apart are
//     one session.
//
// This file is the pure assignment logic; operators, state and firing build
// on it (issue "windowing").
package window

import (
	"errors"
	"fmt"
)

// Window is the half-open interval [Start, End) in event-time milliseconds.
type Window struct {
	Start, End int64
}

// MaxTimestamp is the event time of a window's result: End - 1.
func (w Window) MaxTimestamp() int64 { return w.End - 1 }

// Contains reports whether t falls in [Start, End).
func (w Window) Contains(t int64) bool { return t >= w.Start && t < w.End }

// Intersects reports whether w and o overlap or touch (session merging).
func (w Window) Intersects(o Window) bool { return w.Start <= o.End && o.Start <= w.End }

// Cover is the smallest window holding both.
func (w Window) Cover(o Window) Window {
	return Window{Start: min(w.Start, o.Start), End: max(w.End, o.End)}
}

func (w Window) String() string { return fmt.Sprintf("[%d,%d)", w.Start, w.End) }

// FloorDiv is a / b rounded toward negative infinity (b > 0). Go's / and %
// truncate toward zero, which is wrong for negative times.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Tumbling assigns fixed, non-overlapping windows.
type Tumbling struct {
	Size   int64 // > 0
	Offset int64 // |Offset| < Size
}

// Validate checks the parameters.
func (t Tumbling) Validate() error {
	if t.Size <= 0 {
		return errors.New("window: tumbling size must be positive")
	}
	if t.Offset <= -t.Size || t.Offset >= t.Size {
		return fmt.Errorf("window: tumbling offset %d must satisfy |offset| < size (%d)", t.Offset, t.Size)
	}
	return nil
}

// Start is the start of the window holding ts.
func (t Tumbling) Start(ts int64) int64 {
	return FloorDiv(ts-t.Offset, t.Size)*t.Size + t.Offset
}

// Assign returns the window holding ts.
func (t Tumbling) Assign(ts int64) Window {
	s := t.Start(ts)
	return Window{Start: s, End: s + t.Size}
}

// Sliding assigns overlapping windows of Size every Slide.
type Sliding struct {
	Size   int64 // > 0
	Slide  int64 // > 0
	Offset int64 // |Offset| < Slide
}

// Validate checks the parameters.
func (s Sliding) Validate() error {
	if s.Size <= 0 || s.Slide <= 0 {
		return errors.New("window: sliding size and slide must be positive")
	}
	if s.Offset <= -s.Slide || s.Offset >= s.Slide {
		return fmt.Errorf("window: sliding offset %d must satisfy |offset| < slide (%d)", s.Offset, s.Slide)
	}
	return nil
}

// Assign appends the windows holding ts to dst, latest start first (as
// Flink lists them), and returns dst. With Slide > Size it may append none:
// the caller counts such records (semantics.md).
func (s Sliding) Assign(dst []Window, ts int64) []Window {
	last := FloorDiv(ts-s.Offset, s.Slide)*s.Slide + s.Offset
	for start := last; start > ts-s.Size; start -= s.Slide {
		dst = append(dst, Window{Start: start, End: start + s.Size})
	}
	return dst
}

// Count is how many windows hold ts (floor or ceil of Size/Slide, or 0).
func (s Sliding) Count(ts int64) int {
	last := FloorDiv(ts-s.Offset, s.Slide)*s.Slide + s.Offset
	if last <= ts-s.Size {
		return 0
	}
	return int(FloorDiv(last-(ts-s.Size)-1, s.Slide)) + 1
}

// Sessions is the set of session windows of one key, kept merged: no two
// windows in it overlap or touch. It is the merging-window set of the
// session operator.
type Sessions struct {
	Gap int64 // > 0
	ws  []Window
}

// Add puts the record at ts into the set. It returns the session that now
// holds ts and the earlier sessions that were merged into it (their state
// must be merged into the result's; a merged session that had fired fires
// again). A record inside an existing session returns that session and no
// merges. ts's own window [ts, ts+Gap) merges with every session it
// overlaps or touches: a late record can bridge two sessions.
func (s *Sessions) Add(ts int64) (w Window, merged []Window) {
	w = Window{Start: ts, End: ts + s.Gap}
	keep := s.ws[:0:0]
	for _, x := range s.ws {
		if x.Intersects(w) {
			merged = append(merged, x)
			w = w.Cover(x)
			continue
		}
		keep = append(keep, x)
	}
	if len(merged) == 1 && merged[0] == w {
		// ts fell inside an existing session: nothing merges.
		merged = nil
	}
	// Insert w in start order.
	i := 0
	for i < len(keep) && keep[i].Start < w.Start {
		i++
	}
	keep = append(keep, Window{})
	copy(keep[i+1:], keep[i:])
	keep[i] = w
	s.ws = keep
	return w, merged
}

// Windows are the current sessions in start order.
func (s *Sessions) Windows() []Window { return s.ws }

// Remove drops a session (after it was cleaned up).
func (s *Sessions) Remove(w Window) bool {
	for i, x := range s.ws {
		if x == w {
			s.ws = append(s.ws[:i], s.ws[i+1:]...)
			return true
		}
	}
	return false
}
