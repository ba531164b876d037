package window

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
)

func TestDistinct(t *testing.T) {
	for _, n := range []int{0, 1, 100, 256, 257, 1000, 10_000, 200_000} {
		var a, b Distinct
		for i := 0; i < n; i++ {
			h := KeyHash([]byte(strconv.Itoa(i)))
			a.Add(h)
			a.Add(h) // duplicates do not count
			if i%2 == 0 {
				b.Add(h)
			}
		}
		got := a.Estimate()
		// Exact up to 256; within 5 % (three standard errors) beyond.
		if n <= hllSparseMax && got != float64(n) || math.Abs(got-float64(n)) > 0.05*float64(n) {
			t.Errorf("n=%d: estimate %v", n, got)
		}
		// Merging a subset changes nothing; merging into an empty one copies.
		b.Merge(&a)
		var c Distinct
		c.Merge(&a)
		if b.Estimate() != got || c.Estimate() != got {
			t.Errorf("n=%d: merged %v, %v, want %v", n, b.Estimate(), c.Estimate(), got)
		}
	}
}

func TestQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range []struct {
		name string
		gen  func() float64
	}{
		{"normal around 20", func() float64 { return 20 + 3*r.NormFloat64() }},
		{"signed", func() float64 { return r.NormFloat64() * 100 }},
		{"wide", func() float64 { return math.Exp(r.Float64()*40 - 20) }},
		{"with zeros", func() float64 {
			if r.IntN(3) == 0 {
				return 0
			}
			return r.Float64()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var a, b Quantiles
			var xs []float64
			for i := 0; i < 20_000; i++ {
				x := c.gen()
				xs = append(xs, x)
				if i%2 == 0 {
					a.Add(x)
				} else {
					b.Add(x)
				}
			}
			a.Merge(&b)
			sort.Float64s(xs)
			for _, q := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.99, 1} {
				want := xs[int(q*float64(len(xs)-1))]
				got := a.Quantile(q)
				if math.Abs(got-want) > qAlpha*math.Abs(want)+1e-12 {
					t.Errorf("q=%v: %v, want %v within 1 %%", q, got, want)
				}
			}
		})
	}
	var e Quantiles
	if !math.IsNaN(e.Quantile(0.5)) {
		t.Error("empty sketch")
	}
}

// TestQuantileBucketCap: more than 2048 buckets of range collapse the
// smallest magnitudes; large values stay accurate.
func TestQuantileBucketCap(t *testing.T) {
	var q Quantiles
	for e := -300; e <= 300; e++ {
		q.Add(math.Pow(10, float64(e)))
	}
	if n := len(q.pos.counts); n > qMaxBuckets {
		t.Fatalf("%d buckets", n)
	}
	if got := q.Quantile(1); math.Abs(got-1e300) > qAlpha*1e300 {
		t.Fatalf("max %v", got)
	}
	total := uint64(0)
	for _, c := range q.pos.counts {
		total += c
	}
	if total+q.zeros != 601 || q.n != 601 {
		t.Fatalf("counts %d, n %d", total, q.n)
	}
}
