package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// sampled is what interleave gathered, indexed by subject.
type sampled struct {
	samples [][]time.Duration
	fails   []int
	lastErr []error
}

// interleave calls measure(i) rounds times for every subject i < n, in a
// fresh random order each round, so that drift in the machine's load
// spreads over all subjects. A failed call counts in fails and lastErr; a
// subject that failed more than giveUp times is not called again (giveUp
// < 0: never give up). It stops with ctx's error when ctx ends.
func interleave(ctx context.Context, n, rounds, giveUp int, measure func(i int) (time.Duration, error)) (sampled, error) {
	s := sampled{samples: make([][]time.Duration, n), fails: make([]int, n), lastErr: make([]error, n)}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	for range rounds {
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, i := range order {
			if err := ctx.Err(); err != nil {
				return s, err
			}
			if giveUp >= 0 && s.fails[i] > giveUp {
				continue
			}
			d, err := measure(i)
			if err != nil {
				s.fails[i]++
				s.lastErr[i] = err
				continue
			}
			s.samples[i] = append(s.samples[i], d)
		}
	}
	return s, nil
}

// Stats summarises samples in microseconds.
type Stats struct {
	N        int     `json:"n"`
	MedianUS float64 `json:"median_us"`
	P90US    float64 `json:"p90_us"`
	P99US    float64 `json:"p99_us"`
	MinUS    float64 `json:"min_us"`
	MaxUS    float64 `json:"max_us"`
	MeanUS   float64 `json:"mean_us"`
}

// summarize computes Stats with nearest-rank percentiles.
func summarize(samples []time.Duration) Stats {
	if len(samples) == 0 {
		return Stats{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Stats{
		N:        len(s),
		MedianUS: us(median(s)),
		P90US:    us(rank(s, 0.90)),
		P99US:    us(rank(s, 0.99)),
		MinUS:    us(s[0]),
		MaxUS:    us(s[len(s)-1]),
		MeanUS:   us(sum / time.Duration(len(s))),
	}
}

// rank is the nearest-rank percentile of sorted samples.
func rank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median of sorted samples: the mean of the middle two for an even count.
func median[T ~int64 | ~float64](sorted []T) T {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// medianOf is the median of unsorted v, 0 for none.
func medianOf[T ~int64 | ~float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return median(s)
}

// ratio is a/b, or 0 when b is 0 (rendered as "-").
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
