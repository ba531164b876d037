package window

// CountOperator is the global window with a count trigger: per key, every
// Count records form one result (Flink's count window). There is no event
// time in its firing, so no record is ever late; its result reports the
// event-time span of its records as the window, [first, last + 1), and
// carries event time last. At the end of a bounded input (the watermark at
// EndOfTime) the windows still short of Count fire too; their count says
// how many records they hold.
type CountOperator struct {
	Count  int64 // > 0
	Fields int
	Need   Need
	// Sketch, Hashes and Hashed are as in Operator.
	Sketch []uint8
	Hashes []uint64
	Hashed uint64
	// Touch is as in Operator: each window gets an AccBox (a new one after
	// every firing) and Touch is called with it for each record.
	Touch func(b *AccBox)

	keys  map[string]*countState
	order []*countState // windows in progress in the order they opened (and fired ones, skipped), for the final firing
	dead  int           // fired states still in order
	res   Result
}

type countState struct {
	key        string
	fired      bool // fired and dropped from keys; skipped in order
	n          int64
	start, end int64 // min and max event time + 1
	m          []Moments
	fl         []FirstLast
	sk         []*Sketches
	box        *AccBox // with Touch
}

func (o *CountOperator) reset(s *countState) {
	s.n = 0
	clear(s.m)
	clear(s.fl)
	for f := range s.sk {
		if o.Sketch != nil {
			s.sk[f] = newSketches(o.Sketch[f])
		}
	}
}

// Add folds a record into its key's current window and fires the window
// when it reaches Count records (see Operator.Add for vals and present).
func (o *CountOperator) Add(key []byte, ts int64, vals []float64, present uint64, emit func(*Result)) Outcome {
	if o.keys == nil {
		o.keys = map[string]*countState{}
	}
	s := o.keys[string(key)]
	if s == nil {
		s = &countState{key: string(key), m: make([]Moments, o.Fields)}
		if o.Need&NeedFirstLast != 0 {
			s.fl = make([]FirstLast, o.Fields)
		}
		if o.Sketch != nil {
			s.sk = make([]*Sketches, o.Fields)
		}
		o.reset(s)
		o.keys[s.key] = s
		o.order = append(o.order, s)
	}
	if s.n == 0 || ts < s.start {
		s.start = ts
	}
	if s.n == 0 || ts+1 > s.end {
		s.end = ts + 1
	}
	s.n++
	for f := range s.m {
		if present&(1<<f) != 0 {
			s.m[f].Add(vals[f])
			if s.fl != nil {
				s.fl[f].Add(ts, vals[f])
			}
		}
	}
	if s.sk != nil {
		foldSketches(s.sk, vals, present, o.Hashes, o.Hashed)
	}
	if o.Touch != nil {
		if s.box == nil {
			s.box = &AccBox{}
		}
		o.Touch(s.box)
	}
	if s.n == o.Count {
		emit(o.result(s))
		// Drop the key's state: memory follows the windows in progress,
		// not every key ever seen. Its entry in order is skipped, and
		// compacted away once fired entries are the majority.
		s.fired = true
		delete(o.keys, s.key)
		o.dead++
		if o.dead > 1024 && o.dead > len(o.order)/2 {
			live := o.order[:0]
			for _, x := range o.order {
				if !x.fired {
					live = append(live, x)
				}
			}
			clear(o.order[len(live):])
			o.order, o.dead = live, 0
		}
	}
	return Added
}

func (o *CountOperator) result(s *countState) *Result {
	r := &o.res
	r.Key, r.Window, r.N, r.M, r.FL, r.SK, r.Update, r.Early = s.key, Window{Start: s.start, End: s.end}, s.n, s.m, s.fl, s.sk, false, false
	r.Box = s.box
	return r
}

// AdvanceN fires the partial windows at the end of the input (wm ==
// EndOfTime), in the order they opened; otherwise it does
// nothing. See Operator.AdvanceN for max.
func (o *CountOperator) AdvanceN(wm int64, max int, emit func(*Result)) bool {
	if wm != EndOfTime {
		return true
	}
	n := 0
	for len(o.order) > 0 {
		if max > 0 && n == max {
			return false
		}
		s := o.order[0]
		o.order = o.order[1:]
		if s.fired {
			o.dead--
			continue
		}
		if s.n > 0 {
			emit(o.result(s))
			n++
		}
		delete(o.keys, s.key)
	}
	return true
}

// Open is the number of keys with a window in progress.
func (o *CountOperator) Open() int {
	n := 0
	for _, s := range o.keys {
		if s.n > 0 {
			n++
		}
	}
	return n
}
