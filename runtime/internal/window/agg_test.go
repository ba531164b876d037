package window

import (
	"math"
	"math/rand"
	"testing"
)

// exact computes the reference with a two-pass algorithm in extended care.
func exact(xs []float64) (mean, varPop, sum float64) {
	for _, x := range xs {
		sum += x
	}
	mean = sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, ss / float64(len(xs)), sum
}

func close(a, b, rel float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))
}

func TestMomentsAgainstTwoPass(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, offset := range []float64{0, -40, 1e6, 1e9} {
		xs := make([]float64, 10000)
		for i := range xs {
			xs[i] = offset + rng.NormFloat64()*2.5
		}
		var m Moments
		for _, x := range xs {
			m.Add(x)
		}
		mean, v, sum := exact(xs)
		if m.N != 10000 || !close(m.Mean, mean, 1e-12) || !close(m.VariancePop(), v, 1e-6) || !close(m.Total(), sum, 1e-12) {
			t.Errorf("offset %g: mean %v/%v var %v/%v sum %v/%v", offset, m.Mean, mean, m.VariancePop(), v, m.Total(), sum)
		}
		if !close(m.VarianceSample(), v*10000/9999, 1e-6) || !close(m.StddevPop(), math.Sqrt(v), 1e-6) {
			t.Errorf("offset %g: sample variance or stddev off", offset)
		}
	}
}

// TestMomentsMerge: splitting the data anywhere and merging gives the
// sequential result within 1e-9 relative (sessions and rescaling rely on it).
func TestMomentsMerge(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	xs := make([]float64, 2000)
	for i := range xs {
		xs[i] = 1e6 + rng.Float64()*100
	}
	var seq Moments
	for _, x := range xs {
		seq.Add(x)
	}
	for _, cut := range []int{0, 1, 7, 1000, 1999, 2000} {
		var a, b Moments
		for _, x := range xs[:cut] {
			a.Add(x)
		}
		for _, x := range xs[cut:] {
			b.Add(x)
		}
		a.Merge(b)
		if a.N != seq.N || !close(a.Mean, seq.Mean, 1e-9) || !close(a.VariancePop(), seq.VariancePop(), 1e-9) ||
			!close(a.Total(), seq.Total(), 1e-9) || a.Min != seq.Min || a.Max != seq.Max {
			t.Errorf("cut %d: merged %+v, sequential %+v", cut, a, seq)
		}
	}
	var empty Moments
	if !math.IsNaN(empty.VariancePop()) || !math.IsNaN(empty.VarianceSample()) {
		t.Error("empty variance should be NaN")
	}
	one := Moments{}
	one.Add(4)
	if one.VariancePop() != 0 || !math.IsNaN(one.VarianceSample()) || one.Min != 4 || one.Max != 4 {
		t.Errorf("one value: %+v", one)
	}
}

func TestFirstLast(t *testing.T) {
	var f FirstLast
	for _, r := range []struct {
		t int64
		v float64
	}{{10, 1}, {5, 2}, {20, 3}, {20, 4}, {5, 5}} {
		f.Add(r.t, r.v)
	}
	if f.First != 2 || f.FirstTime != 5 || f.Last != 4 || f.LastTime != 20 {
		t.Fatalf("%+v", f)
	}
	var a, b FirstLast
	a.Add(10, 1)
	b.Add(10, 2)
	b.Add(3, 9)
	a.Merge(b)
	if a.First != 9 || a.Last != 2 {
		t.Fatalf("merge %+v", a)
	}
}
