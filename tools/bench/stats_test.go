package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInterleave(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		giveUp      int
		failing     int // subject whose every call fails
		wantCalls   []int
		wantSamples []int
		wantFails   []int
	}{
		{"never give up", -1, 1, []int{4, 4, 4}, []int{4, 0, 4}, []int{0, 4, 0}},
		{"give up after more than 2 failures", 2, 1, []int{4, 3, 4}, []int{4, 0, 4}, []int{0, 3, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := make([]int, 3)
			got, err := interleave(context.Background(), 3, 4, tt.giveUp, func(i int) (time.Duration, error) {
				calls[i]++
				if i == tt.failing {
					return 0, errBoom
				}
				return time.Duration(i), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if calls[i] != tt.wantCalls[i] || len(got.samples[i]) != tt.wantSamples[i] || got.fails[i] != tt.wantFails[i] {
					t.Errorf("subject %d: %d calls, %d samples, %d fails; want %d, %d, %d",
						i, calls[i], len(got.samples[i]), got.fails[i], tt.wantCalls[i], tt.wantSamples[i], tt.wantFails[i])
				}
			}
			if got.lastErr[tt.failing] != errBoom || got.lastErr[0] != nil {
				t.Errorf("lastErr = %v", got.lastErr)
			}
		})
	}
}

func TestInterleaveStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := interleave(ctx, 2, 100, -1, func(int) (time.Duration, error) {
		calls++
		cancel()
		return 0, nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("interleave = %v after %d calls, want context.Canceled after 1", err, calls)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{4, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := medianOf(tt.in); got != tt.want {
			t.Errorf("medianOf(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := medianOf([]int64{5, 1, 4, 2}); got != 3 {
		t.Errorf("medianOf(int64 5,1,4,2) = %d, want 3", got)
	}
	if got := median([]time.Duration{1, 2, 3, 10}); got != 2 {
		t.Errorf("median(durations 1,2,3,10) = %v, want 2ns", got)
	}
}
