package cli

import (
	"math/bits"
	"time"
)

// histogram counts latencies in log-linear buckets: exact below 128ns, then
// 64 buckets per power of two, so a reported percentile is within 1/64
// (1.6%) of the true one. It has a fixed size, so a long benchmark uses no
// more memory than a short one.
type histogram struct {
	counts [histogramBuckets]uint64
	total  uint64
}

const (
	subBucketBits    = 6
	subBuckets       = 1 << subBucketBits
	histogramBuckets = (64-subBucketBits)*subBuckets + 2*subBuckets
)

// bucketOf returns the bucket of v: v itself below 2*subBuckets; above,
// the top subBucketBits+1 bits of v and the shift that keeps them.
func bucketOf(v uint64) int {
	n := bits.Len64(v)
	if n <= subBucketBits+1 {
		return int(v)
	}
	shift := n - subBucketBits - 1
	return shift*subBuckets + int(v>>shift)
}

// bucketMax returns the largest value in bucket i.
func bucketMax(i int) uint64 {
	if i < 2*subBuckets {
		return uint64(i)
	}
	shift := i/subBuckets - 1
	mantissa := uint64(i - shift*subBuckets)
	return (mantissa+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the latency at or below which a fraction q of the
// recorded ones lie (the upper edge of its bucket); 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = max(1, min(rank, h.total))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketMax(i))
		}
	}
	return time.Duration(bucketMax(histogramBuckets - 1))
}
