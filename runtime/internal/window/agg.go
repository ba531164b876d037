package window

import "math"

// Moments is the mergeable accumulator behind count, sum, min, max, mean,
// variance and standard deviation of one field in one window. It is
// numerically stable: the mean and the sum of squared deviations (M2) are
// updated with Welford's method and merged with Chan et al.'s formula, so a
// series with a large offset (1e9 + small noise) keeps its variance, where
// sum(x^2)/n - mean^2 would lose it; the sum is compensated (Neumaier).
// Merging is what session windows need, and what lets state move between
// workers.
type Moments struct {
	N        int64
	Mean, M2 float64
	Sum, c   float64 // Neumaier sum and its compensation
	Min, Max float64
}

// Add folds one value in.
func (m *Moments) Add(x float64) {
	if m.N == 0 {
		m.Min, m.Max = x, x
	} else {
		m.Min = math.Min(m.Min, x)
		m.Max = math.Max(m.Max, x)
	}
	m.N++
	d := x - m.Mean
	m.Mean += d / float64(m.N)
	m.M2 += d * (x - m.Mean)
	m.addSum(x)
}

// addMinMax folds x into the count, sum, min and max only (no mean or M2).
func (m *Moments) addMinMax(x float64) {
	if m.N == 0 {
		m.Min, m.Max = x, x
	} else {
		m.Min = math.Min(m.Min, x)
		m.Max = math.Max(m.Max, x)
	}
	m.N++
	m.addSum(x)
}

// Avg is the mean from the compensated sum (for accumulators kept without
// NeedMoments); NaN when empty.
func (m *Moments) Avg() float64 {
	if m.N == 0 {
		return math.NaN()
	}
	return m.Total() / float64(m.N)
}

func (m *Moments) addSum(x float64) { m.Sum, m.c = neumaier(m.Sum, m.c, x) }

// neumaier adds x to the compensated sum (sum, c).
func neumaier(sum, c, x float64) (float64, float64) {
	t := sum + x
	if math.Abs(sum) >= math.Abs(x) {
		c += (sum - t) + x
	} else {
		c += (x - t) + sum
	}
	return t, c
}

// Merge folds another accumulator in (the order of merges does not change
// the result beyond rounding).
func (m *Moments) Merge(o Moments) {
	if o.N == 0 {
		return
	}
	if m.N == 0 {
		*m = o
		return
	}
	n := m.N + o.N
	d := o.Mean - m.Mean
	m.Mean += d * float64(o.N) / float64(n)
	m.M2 += o.M2 + d*d*float64(m.N)*float64(o.N)/float64(n)
	m.N = n
	m.Min = math.Min(m.Min, o.Min)
	m.Max = math.Max(m.Max, o.Max)
	m.addSum(o.Sum)
	m.c += o.c
}

// Total is the compensated sum.
func (m *Moments) Total() float64 { return m.Sum + m.c }

// VariancePop is the mean squared deviation (divides by n); NaN when empty.
func (m *Moments) VariancePop() float64 {
	if m.N == 0 {
		return math.NaN()
	}
	return m.M2 / float64(m.N)
}

// VarianceSample divides by n - 1; NaN below two values.
func (m *Moments) VarianceSample() float64 {
	if m.N < 2 {
		return math.NaN()
	}
	return m.M2 / float64(m.N-1)
}

// StddevPop and StddevSample are the square roots of the variances.
func (m *Moments) StddevPop() float64    { return math.Sqrt(m.VariancePop()) }
func (m *Moments) StddevSample() float64 { return math.Sqrt(m.VarianceSample()) }

// FirstLast keeps the value with the earliest and the latest event time; on
// equal times the one seen first stays first and the one seen last is last.
type FirstLast struct {
	Set                 bool
	FirstTime, LastTime int64
	First, Last         float64
}

// Add folds in value v at event time t.
func (f *FirstLast) Add(t int64, v float64) {
	if !f.Set {
		*f = FirstLast{Set: true, FirstTime: t, LastTime: t, First: v, Last: v}
		return
	}
	if t < f.FirstTime {
		f.FirstTime, f.First = t, v
	}
	if t >= f.LastTime {
		f.LastTime, f.Last = t, v
	}
}

// Merge folds in o, which holds later arrivals than f on equal times.
func (f *FirstLast) Merge(o FirstLast) {
	if !o.Set {
		return
	}
	if !f.Set {
		*f = o
		return
	}
	if o.FirstTime < f.FirstTime {
		f.FirstTime, f.First = o.FirstTime, o.First
	}
	if o.LastTime >= f.LastTime {
		f.LastTime, f.Last = o.LastTime, o.Last
	}
}
