package poll

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithin(t *testing.T) {
	tests := []struct {
		name    string
		trueAt  int32 // the call that first returns true; 0 never
		timeout time.Duration
		want    bool
	}{
		{"at once", 1, time.Second, true},
		{"after a few calls", 4, 10 * time.Second, true},
		{"never", 0, 100 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			start := time.Now()
			got := Within(context.Background(), tt.timeout, 10*time.Millisecond, func() bool {
				n := calls.Add(1)
				return tt.trueAt != 0 && n >= tt.trueAt
			})
			took := time.Since(start)
			if got != tt.want {
				t.Fatalf("Within = %v after %d calls, want %v", got, calls.Load(), tt.want)
			}
			if tt.want && calls.Load() != tt.trueAt {
				t.Errorf("%d calls, want %d: it went on after cond held", calls.Load(), tt.trueAt)
			}
			if !tt.want && (took < tt.timeout || took > tt.timeout+5*time.Second) {
				t.Errorf("gave up after %v, want about %v", took, tt.timeout)
			}
		})
	}
}

// A condition met during the last interval counts: cond runs once more
// when the context ends.
func TestUntilChecksOnceMoreAtTheEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	got := Until(ctx, time.Hour, func() bool {
		if calls.Add(1) == 1 {
			cancel()
			return false
		}
		return true
	})
	if !got || calls.Load() != 2 {
		t.Fatalf("Until = %v after %d calls, want true after 2", got, calls.Load())
	}
}

func TestEventually(t *testing.T) {
	start := time.Now()
	took := Eventually(t, 10*time.Second, "ready", func() error {
		if time.Since(start) < 250*time.Millisecond {
			return context.DeadlineExceeded
		}
		return nil
	})
	if took < 250*time.Millisecond || took > 5*time.Second {
		t.Fatalf("Eventually took %v, want about 250ms", took)
	}
}
