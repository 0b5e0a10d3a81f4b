package registry

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// Recover runs call and turns a panic in it into an error naming what
// panicked. Registry and hook code runs in PID 1's goroutines (and in the
// Nacos helper's request handlers): a bug there must cost that step, never
// the process. It is the one panic-to-error recovery of the product.
func Recover(what string, call func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in %s: %v", what, p)
		}
	}()
	return call()
}

// Backoff is the one retry loop of registry and hook calls: attempts
// bounded each by Timeout, waits that start at First and double up to
// Limit, until the call succeeds, fails for good, ctx ends, or Attempts
// were made.
type Backoff struct {
	First, Limit time.Duration
	Timeout      time.Duration // bound on each attempt; 0: ctx's only
	Attempts     int           // 0: no limit but ctx
}

// Do calls step until it succeeds or final(err) says the error is for good
// (final may be nil: every error is retried), and calls retrying before
// each wait. It returns the attempts made and the error, if any: an
// attempt cut short by the end of ctx reports the error of the attempt
// before it, which says more about why the call failed than the
// cancellation.
func (b Backoff) Do(ctx context.Context, step func(context.Context) error, final func(error) bool,
	retrying func(attempt int, wait time.Duration, err error)) (int, error) {
	delay := b.First
	var last error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithCancel(ctx)
		if b.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, b.Timeout)
		}
		err := step(actx)
		cancel()
		if err == nil || final != nil && final(err) {
			return attempt, err
		}
		if ctx.Err() != nil || attempt == b.Attempts {
			return attempt, cmp.Or(last, err)
		}
		last = err
		if retrying != nil {
			retrying(attempt, delay, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		case <-t.C:
		}
		delay = min(2*delay, b.Limit)
	}
}

// Uncut is ctx without its cancellation (the stop's), keeping its deadline
// (a call's bound), or bounded by timeout when it has none. A write that
// puts an instance in rotation runs under it once sent: abandoned by the
// client at the stop, the server could still apply it after the offline
// step's write, so the offline step waits for its answer instead.
func Uncut(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.WithoutCancel(ctx), d)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}
