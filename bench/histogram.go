package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram buckets: values below 2*histSub are exact; above, each power of
// two is split into histSub equal buckets (HDR-style log-linear), so a
// bucket is at most 1/histSub ≈ 3% wide relative to its lower bound.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	// histMaxShift caps the range at 2^(histMaxShift+histSubBits+1) ns,
	// about 18 minutes; larger values land in the last bucket (Max stays exact).
	histMaxShift = 34
	histBuckets  = (histMaxShift + 2) * histSub
)

// Histogram records non-negative int64 values (nanoseconds) into fixed
// log-linear buckets. Record is safe for concurrent use and never
// allocates; the zero value is ready to use.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Int64
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 2*histSub {
		return int64(i), int64(i)
	}
	shift := i/histSub - 1
	sub := int64(i%histSub + histSub)
	return sub << shift, (sub+1)<<shift - 1
}

// Record adds one value; negative values count as zero.
func (h *Histogram) Record(v int64) {
	v = max(v, 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value, or 0.
func (h *Histogram) Max() int64 { return h.max.Load() }

// Mean returns the average recorded value, or 0.
func (h *Histogram) Mean() float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Merge adds every value recorded in o to h. It is not atomic with respect
// to concurrent Records into o.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	for {
		m, v := h.max.Load(), o.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Quantile returns the value at quantile q (0 < q <= 1): the highest value
// of the bucket holding the ceil(q*count)-th smallest value, capped at Max,
// so it overstates by at most one bucket width (~3%). It returns 0 when
// nothing is recorded.
func (h *Histogram) Quantile(q float64) int64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketBounds(i)
			return min(hi, h.max.Load())
		}
	}
	return h.max.Load()
}

// shardedHistogram spreads concurrent Records over several histograms so
// the reader goroutines of different connections rarely share a cache line.
type shardedHistogram []Histogram

func newShardedHistogram(shards int) shardedHistogram {
	return make(shardedHistogram, max(shards, 1))
}

// shard returns the histogram connection i records into.
func (s shardedHistogram) shard(i int) *Histogram { return &s[i%len(s)] }

// count returns the total recorded over all shards.
func (s shardedHistogram) count() uint64 {
	var n uint64
	for i := range s {
		n += s[i].Count()
	}
	return n
}

// merged returns one histogram holding every shard's values.
func (s shardedHistogram) merged() *Histogram {
	h := new(Histogram)
	for i := range s {
		h.Merge(&s[i])
	}
	return h
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary returns h's count, mean, percentiles and max in milliseconds.
func (h *Histogram) Summary() Latency {
	ms := func(ns int64) float64 { return float64(ns) / float64(time.Millisecond) }
	return Latency{
		Count: h.Count(),
		Mean:  h.Mean() / float64(time.Millisecond),
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}
