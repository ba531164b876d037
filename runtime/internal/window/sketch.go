package window

import (
	"math"
	"math/bits"
)

// Sketches for the aggregates that cannot be kept exactly in bounded
// memory: distinct counts and quantiles. Both merge (sessions, and state
// moving between workers), and both state their error.

// Sketches are the sketches one field keeps in one window.
type Sketches struct {
	D *Distinct
	Q *Quantiles
}

// Sketch kinds a field can keep (Operator.Sketch).
const (
	SketchDistinct  uint8 = 1 << iota // distinct count of the field's values
	SketchQuantiles                   // quantiles of its numeric values
)

func newSketches(kind uint8) *Sketches {
	if kind == 0 {
		return nil
	}
	s := &Sketches{}
	if kind&SketchDistinct != 0 {
		s.D = &Distinct{}
	}
	if kind&SketchQuantiles != 0 {
		s.Q = &Quantiles{}
	}
	return s
}

// merge folds o in.
func (s *Sketches) merge(o *Sketches) {
	if s == nil || o == nil {
		return
	}
	if s.D != nil && o.D != nil {
		s.D.Merge(o.D)
	}
	if s.Q != nil && o.Q != nil {
		s.Q.Merge(o.Q)
	}
}

// foldSketches adds one record to the sketches of one window (per field).
func foldSketches(sk []*Sketches, vals []float64, present uint64, hashes []uint64, hashed uint64) {
	for f, s := range sk {
		if s == nil {
			continue
		}
		if s.Q != nil && present&(1<<f) != 0 {
			s.Q.Add(vals[f])
		}
		if s.D != nil && hashed&(1<<f) != 0 {
			s.D.Add(hashes[f])
		}
	}
}

// hllP is the HyperLogLog precision: 2^12 registers, a standard error of
// 1.04 / sqrt(4096) = 1.6 %.
const hllP = 12

// hllSparseMax is how many distinct hashes a Distinct keeps exactly before
// it switches to registers: small sets are counted exactly.
const hllSparseMax = 256

// Distinct estimates the number of distinct values. Up to 256 distinct
// values it is exact (it keeps their 64-bit hashes); beyond, it is a
// HyperLogLog with 4096 one-byte registers (standard error 1.6 %).
type Distinct struct {
	hashes []uint64 // sparse: the distinct hashes, while regs is nil
	regs   []uint8
}

// Add adds a value by its 64-bit hash (window.KeyHash of its text).
func (d *Distinct) Add(h uint64) {
	if d.regs == nil {
		for _, x := range d.hashes {
			if x == h {
				return
			}
		}
		if len(d.hashes) < hllSparseMax {
			d.hashes = append(d.hashes, h)
			return
		}
		d.dense()
	}
	d.addReg(h)
}

func (d *Distinct) dense() {
	d.regs = make([]uint8, 1<<hllP)
	for _, x := range d.hashes {
		d.addReg(x)
	}
	d.hashes = nil
}

func (d *Distinct) addReg(h uint64) {
	i := h >> (64 - hllP)
	rho := uint8(bits.LeadingZeros64(h<<hllP|1<<(hllP-1)) + 1)
	if rho > d.regs[i] {
		d.regs[i] = rho
	}
}

// Merge folds o in.
func (d *Distinct) Merge(o *Distinct) {
	if o.regs == nil {
		for _, h := range o.hashes {
			d.Add(h)
		}
		return
	}
	if d.regs == nil {
		d.dense()
	}
	for i, r := range o.regs {
		if r > d.regs[i] {
			d.regs[i] = r
		}
	}
}

// Estimate is the distinct count: exact in sparse mode, HyperLogLog with
// linear counting for small ranges otherwise.
func (d *Distinct) Estimate() float64 {
	if d.regs == nil {
		return float64(len(d.hashes))
	}
	m := float64(len(d.regs))
	sum, zeros := 0.0, 0
	for _, r := range d.regs {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := 0.7213 / (1 + 1.079/m) * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return math.Round(e)
}

// Quantiles is a DDSketch-style quantile sketch: values go to buckets whose
// bounds grow geometrically by gamma = (1 + a) / (1 - a) with a = 1 %, so a
// reported quantile is within 1 % (relative) of a value whose rank is the
// requested one. Negative values and zeros have their own stores. Each
// store keeps at most 2048 buckets; beyond, the buckets of the smallest
// magnitudes collapse into one (their relative error is then unbounded,
// which only matters for data spanning more than 18 orders of magnitude).
type Quantiles struct {
	pos, neg qstore
	zeros    uint64
	n        uint64
}

const (
	qAlpha      = 0.01
	qMaxBuckets = 2048
)

var (
	qGamma   = (1 + qAlpha) / (1 - qAlpha)
	qLnGamma = math.Log(qGamma)
)

// qstore counts values by bucket index in [off, off+len(counts)).
type qstore struct {
	off    int
	counts []uint64
}

func (s *qstore) add(i int, c uint64) {
	if len(s.counts) == 0 {
		s.off = i
		s.counts = append(s.counts, c)
		return
	}
	if i < s.off {
		if s.off+len(s.counts)-i > qMaxBuckets {
			// collapse: the smallest magnitudes share the lowest bucket
			i = s.off
		} else {
			grow := s.off - i
			s.counts = append(make([]uint64, grow, grow+len(s.counts)), s.counts...)
			s.off = i
		}
	}
	if need := i - s.off + 1; need > len(s.counts) {
		if need > qMaxBuckets {
			// Slide the range up: the lowest buckets fold into the new
			// lowest one.
			shift := need - qMaxBuckets
			total := uint64(0)
			for k := 0; k <= shift && k < len(s.counts); k++ {
				total += s.counts[k]
			}
			if shift < len(s.counts) {
				n := copy(s.counts, s.counts[shift:])
				s.counts = s.counts[:n]
			} else {
				s.counts = s.counts[:1]
			}
			s.counts[0] = total
			s.off += shift
		}
		for len(s.counts) < i-s.off+1 {
			s.counts = append(s.counts, 0)
		}
	}
	s.counts[i-s.off] += c
}

func qindex(x float64) int { return int(math.Ceil(math.Log(x) / qLnGamma)) }

// qvalue is the value reported for bucket i: within alpha of every value
// the bucket holds.
func qvalue(i int) float64 { return 2 * math.Pow(qGamma, float64(i)) / (qGamma + 1) }

// Add adds one value (NaN is ignored).
func (q *Quantiles) Add(x float64) {
	switch {
	case math.IsNaN(x):
		return
	case x > 1e-300:
		q.pos.add(qindex(x), 1)
	case x < -1e-300:
		q.neg.add(qindex(-x), 1)
	default:
		q.zeros++
	}
	q.n++
}

// Merge folds o in.
func (q *Quantiles) Merge(o *Quantiles) {
	for i, c := range o.pos.counts {
		if c > 0 {
			q.pos.add(o.pos.off+i, c)
		}
	}
	for i, c := range o.neg.counts {
		if c > 0 {
			q.neg.add(o.neg.off+i, c)
		}
	}
	q.zeros += o.zeros
	q.n += o.n
}

// Quantile returns the q-quantile (0 <= q <= 1) by the rank floor(q (n-1)),
// or NaN when empty.
func (q *Quantiles) Quantile(p float64) float64 {
	if q.n == 0 {
		return math.NaN()
	}
	rank := uint64(p * float64(q.n-1))
	seen := uint64(0)
	for i := len(q.neg.counts) - 1; i >= 0; i-- { // most negative first
		seen += q.neg.counts[i]
		if seen > rank {
			return -qvalue(q.neg.off + i)
		}
	}
	seen += q.zeros
	if seen > rank {
		return 0
	}
	for i, c := range q.pos.counts {
		seen += c
		if seen > rank {
			return qvalue(q.pos.off + i)
		}
	}
	return qvalue(q.pos.off + len(q.pos.counts) - 1)
}
