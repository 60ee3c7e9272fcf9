package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	prev := -1
	check := func(v int64) {
		t.Helper()
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Fatalf("bucketOf(%d) = %d with bounds [%d, %d]", v, i, lo, hi)
		}
		if i < prev || i > prev+1 {
			t.Fatalf("bucketOf(%d) = %d after %d: buckets must be contiguous", v, i, prev)
		}
		if width := hi - lo + 1; lo >= 2*histSub && float64(width)/float64(lo) > 1.0/histSub {
			t.Fatalf("bucket %d [%d, %d] is %.3f wide, want <= %.3f", i, lo, hi, float64(width)/float64(lo), 1.0/histSub)
		}
		prev = i
	}
	for v := range int64(100_000) {
		check(v)
	}
	// Every bucket boundary from there up to the last bucket.
	for i := bucketOf(100_000) + 1; i < histBuckets; i++ {
		lo, hi := bucketBounds(i)
		check(lo)
		check(hi)
	}
	if got := bucketOf(math.MaxInt64); got != histBuckets-1 {
		t.Errorf("bucketOf(MaxInt64) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestQuantileExactForSmallValues(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 50; v++ {
		h.Record(v)
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.01, 1}, {0.5, 25}, {0.9, 45}, {0.99, 50}, {1, 50}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) of 1..50 = %d, want %d", tc.q, got, tc.want)
		}
	}
	if h.Count() != 50 || h.Max() != 50 || h.Mean() != 25.5 {
		t.Errorf("Count, Max, Mean = %d, %d, %v; want 50, 50, 25.5", h.Count(), h.Max(), h.Mean())
	}
}

func TestQuantileWithinBucketError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		// Log-uniform from 1µs to 10s, like latencies.
		vals[i] = int64(math.Exp(rng.Float64()*math.Log(1e7)) * 1e3)
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/histSub {
			t.Errorf("Quantile(%v) = %d, exact %d: want within +%.1f%%", q, got, exact, 100.0/histSub)
		}
	}
	if h.Max() != vals[len(vals)-1] {
		t.Errorf("Max = %d, want %d", h.Max(), vals[len(vals)-1])
	}
	if got := h.Quantile(1); got != h.Max() {
		t.Errorf("Quantile(1) = %d, want Max %d", got, h.Max())
	}
}

func TestEmptyAndNegative(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Errorf("empty histogram: p99 %d mean %v max %d, want zeros", h.Quantile(0.99), h.Mean(), h.Max())
	}
	h.Record(-5)
	if h.Count() != 1 || h.Quantile(0.5) != 0 {
		t.Errorf("after Record(-5): count %d p50 %d, want 1 and 0", h.Count(), h.Quantile(0.5))
	}
}

func TestShardedMerge(t *testing.T) {
	s := newShardedHistogram(4)
	for i := range 1000 {
		s.shard(i).Record(int64(i + 1))
	}
	if s.count() != 1000 {
		t.Fatalf("count = %d, want 1000", s.count())
	}
	m := s.merged()
	if m.Count() != 1000 || m.Max() != 1000 {
		t.Errorf("merged count %d max %d, want 1000 and 1000", m.Count(), m.Max())
	}
	if p50 := m.Quantile(0.5); p50 < 500 || p50 > 500+500/histSub {
		t.Errorf("merged p50 = %d, want 500 within one bucket", p50)
	}
	sum := m.Summary()
	if sum.Count != 1000 || sum.P99 < sum.P50 || sum.Max < sum.P999 {
		t.Errorf("Summary %+v: want count 1000 and ordered percentiles", sum)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	v := int64(12345)
	if n := testing.AllocsPerRun(1000, func() { h.Record(v); v += 977 }); n != 0 {
		t.Errorf("Record allocates %v times per call, want 0", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	v := int64(1)
	for b.Loop() {
		h.Record(v)
		v = (v * 31) & (1<<30 - 1)
	}
}
