package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecover(t *testing.T) {
	if err := Recover("x", func() error { return nil }); err != nil {
		t.Fatalf("no panic: %v", err)
	}
	want := errors.New("plain")
	if err := Recover("x", func() error { return want }); err != want {
		t.Fatalf("an error passes through: %v", err)
	}
	for _, p := range []any{"boom", errors.New("boom"), 42} {
		err := Recover("nacos offline", func() error { panic(p) })
		if err == nil || !strings.HasPrefix(err.Error(), "panic in nacos offline: ") {
			t.Fatalf("panic(%v) gave %v, want an error naming the step", p, err)
		}
	}
}

// TestBackoff: waits double up to the limit, a final error stops at once,
// Attempts caps the tries, each attempt is bounded by Timeout, and an
// attempt cut short by ctx reports the error before it.
func TestBackoff(t *testing.T) {
	fail := errors.New("down")
	b := Backoff{First: time.Millisecond, Limit: 4 * time.Millisecond, Attempts: 5}
	var waits []time.Duration
	n, err := b.Do(context.Background(), func(context.Context) error { return fail }, nil,
		func(_ int, wait time.Duration, _ error) { waits = append(waits, wait) })
	if n != 5 || err != fail {
		t.Fatalf("attempts %d err %v, want 5 and the error", n, err)
	}
	if want := []time.Duration{1, 2, 4, 4}; len(waits) != len(want) || waits[0] != time.Millisecond || waits[2] != 4*time.Millisecond || waits[3] != 4*time.Millisecond {
		t.Fatalf("waits %v, want 1ms 2ms 4ms 4ms", waits)
	}
	notFound := errors.New("not found")
	n, err = Backoff{First: time.Millisecond, Limit: time.Millisecond}.Do(context.Background(),
		func(context.Context) error { return notFound }, func(e error) bool { return e == notFound }, nil)
	if n != 1 || err != notFound {
		t.Fatalf("final error: attempts %d err %v, want 1", n, err)
	}
	calls := 0
	n, err = Backoff{First: time.Millisecond, Limit: time.Millisecond}.Do(context.Background(), func(context.Context) error {
		calls++
		if calls < 3 {
			return fail
		}
		return nil
	}, nil, nil)
	if n != 3 || err != nil {
		t.Fatalf("success on the third: attempts %d err %v", n, err)
	}
	// Each attempt bounded; the step's own deadline error is retried.
	var sawDeadline bool
	_, _ = Backoff{First: time.Millisecond, Limit: time.Millisecond, Timeout: 5 * time.Millisecond, Attempts: 1}.Do(context.Background(),
		func(ctx context.Context) error {
			_, sawDeadline = ctx.Deadline()
			<-ctx.Done()
			return ctx.Err()
		}, nil, nil)
	if !sawDeadline {
		t.Fatal("an attempt had no deadline with Timeout set")
	}
	// ctx ends during the second attempt: the first attempt's error says why.
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	_, err = Backoff{First: time.Millisecond, Limit: time.Millisecond}.Do(ctx, func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return fail
		}
		cancel()
		return ctx.Err()
	}, nil, nil)
	if err != fail {
		t.Fatalf("cut short: %v, want the earlier error", err)
	}
}
