// Package poll waits for conditions that nothing signals, such as a
// registry's view of an instance or a line in another process's output,
// by checking them at an interval. It serves tests and the harnesses.
package poll

import (
	"context"
	"testing"
	"time"
)

// Until calls cond, and again an interval after each false answer, until it returns true or ctx
// ends, and reports whether it returned true. When ctx ends cond runs once
// more, so a condition met during the last interval still counts.
func Until(ctx context.Context, interval time.Duration, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-time.After(interval):
		}
	}
}

// Within is Until ending after timeout at the latest.
func Within(ctx context.Context, timeout, interval time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return Until(ctx, interval, cond)
}

// Eventually calls cond every 100 ms until it returns nil and returns how
// long that took. After within it fails t with what and cond's last error.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	if !Within(context.Background(), within, 100*time.Millisecond, func() bool { err = cond(); return err == nil }) {
		t.Fatalf("%s: not within %v: %v", what, within, err)
	}
	return time.Since(start)
}
