package drain

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Slack for timing assertions: the machine is shared and small.
const slack = 300 * time.Millisecond

func TestNoDrain(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		o    Options
	}{
		{"zero", t.Context(), Options{}},
		{"negative", t.Context(), Options{Policy: Policy{Max: -time.Second}}},
		{"zero with quiet", t.Context(), Options{Policy: Policy{Quiet: time.Second}, Ports: []int{1}}},
		{"negative with quiet", t.Context(), Options{Policy: Policy{Max: -time.Second, Quiet: time.Second, Min: time.Second}, Ports: []int{1}}},
		{"zero and cancelled", cancelled, Options{Policy: Policy{Quiet: time.Second}, Ports: []int{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, _ := testLogger(t)
			start := time.Now()
			res := RunDetailed(tt.ctx, tt.o, log)
			if res.Reason != ReasonCeiling || res.Samples != 0 || res.Fallback {
				t.Errorf("RunDetailed = %+v, want ReasonCeiling without samples", res)
			}
			within(t, "elapsed", time.Since(start), 0, 50*time.Millisecond)
			if r := Run(tt.ctx, tt.o, log); r != ReasonCeiling {
				t.Errorf("Run = %q, want %q", r, ReasonCeiling)
			}
		})
	}
}

func TestFixedDrain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    Options
	}{
		{"plain", Options{Policy: Policy{Max: 700 * time.Millisecond}}},
		{"min without quiet is ignored", Options{Policy: Policy{Max: 700 * time.Millisecond, Min: 5 * time.Second}}},
		{"ports without quiet are not watched", Options{Policy: Policy{Max: 700 * time.Millisecond}, Ports: []int{8080}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, _ := testLogger(t)
			start := time.Now()
			res := RunDetailed(t.Context(), tt.o, log)
			elapsed := time.Since(start)
			if res.Reason != ReasonCeiling || res.Samples != 0 || res.Fallback {
				t.Errorf("RunDetailed = %+v, want ReasonCeiling without samples", res)
			}
			within(t, "elapsed", elapsed, tt.o.Max, tt.o.Max+slack)
			within(t, "Result.Elapsed", res.Elapsed, tt.o.Max, elapsed)
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    Options
		// serve starts a server whose port the drain watches.
		serve bool
	}{
		{"fixed", Options{Policy: Policy{Max: 10 * time.Second}}, false},
		{"quiet", Options{Policy: Policy{Max: 10 * time.Second, Quiet: 5 * time.Second}}, true},
		{"quiet, waiting for min", Options{Policy: Policy{Max: 10 * time.Second, Quiet: 100 * time.Millisecond, Min: 8 * time.Second}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := tt.o
			if tt.serve {
				o.Ports = []int{startServer(t, families[0], serveRead).port}
			}
			log, _ := testLogger(t)

			ctx, cancel := context.WithCancel(t.Context())
			start, ch := runAsync(ctx, o, log)
			time.Sleep(200 * time.Millisecond)
			cancel()
			cancelledAt := time.Now()
			res := await(t, ch, 5*time.Second)
			if res.Reason != ReasonCancelled {
				t.Errorf("Reason = %q, want %q", res.Reason, ReasonCancelled)
			}
			within(t, "return after cancel", time.Since(cancelledAt), 0, 100*time.Millisecond)
			within(t, "elapsed", res.Elapsed, 200*time.Millisecond, time.Since(start))

			// Already cancelled: no wait at all.
			start = time.Now()
			if r := Run(ctx, o, log); r != ReasonCancelled {
				t.Errorf("Run with a done ctx = %q, want %q", r, ReasonCancelled)
			}
			within(t, "Run with a done ctx", time.Since(start), 0, 50*time.Millisecond)
		})
	}
}

// failingSampler works for ok samples, then fails.
type failingSampler struct {
	ok     int
	closed bool
}

func (f *failingSampler) Sample() (Sample, error) {
	if f.ok == 0 {
		return Sample{}, errors.New("forced sample failure")
	}
	f.ok--
	return Sample{At: time.Now(), Listeners: 1}, nil
}

func (f *failingSampler) Close() error {
	f.closed = true
	return nil
}

func TestFallbackToFixedDrain(t *testing.T) {
	t.Parallel()
	const max = 600 * time.Millisecond
	tests := []struct {
		name        string
		newW        func(*failingSampler) func([]int) (sampler, error)
		wantSamples int
		wantLog     string
	}{
		{
			name: "unavailable",
			newW: func(*failingSampler) func([]int) (sampler, error) {
				return func([]int) (sampler, error) {
					return nil, fmt.Errorf("%w: forced: protocol not supported", ErrUnavailable)
				}
			},
			wantLog: "cannot watch the app's connections",
		},
		{
			name: "fails after two samples",
			newW: func(f *failingSampler) func([]int) (sampler, error) {
				return func([]int) (sampler, error) { return f, nil }
			},
			wantSamples: 2,
			wantLog:     "watching the app's connections failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, buf := testLogger(t)
			f := &failingSampler{ok: 2}
			o := Options{Policy: Policy{Max: max, Quiet: 10 * time.Second}, Ports: []int{8080}, Interval: 20 * time.Millisecond}
			start := time.Now()
			res := run(t.Context(), o, log, learned{}, tt.newW(f))
			elapsed := time.Since(start)
			if res.Reason != ReasonCeiling || !res.Fallback || res.Samples != tt.wantSamples {
				t.Errorf("run = %+v, want ReasonCeiling, Fallback, %d samples", res, tt.wantSamples)
			}
			within(t, "elapsed", elapsed, max, max+slack)
			if n := countLines(buf.String(), tt.wantLog); n != 1 {
				t.Errorf("log has %d lines with %q, want 1:\n%s", n, tt.wantLog, buf)
			}
			if n := countLines(buf.String(), "level=WARN"); n != 1 {
				t.Errorf("log has %d warnings, want 1:\n%s", n, buf)
			}
			if tt.wantSamples > 0 && !f.closed {
				t.Error("the sampler was not closed")
			}
		})
	}
}

func TestFallbackHonoursCancel(t *testing.T) {
	t.Parallel()
	log, _ := testLogger(t)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	o := Options{Policy: Policy{Max: 10 * time.Second, Quiet: time.Second}, Ports: []int{8080}}
	res := run(ctx, o, log, learned{}, func([]int) (sampler, error) { return nil, ErrUnavailable })
	if res.Reason != ReasonCancelled || !res.Fallback {
		t.Errorf("run = %+v, want ReasonCancelled with Fallback", res)
	}
	within(t, "elapsed", res.Elapsed, 150*time.Millisecond, 150*time.Millisecond+slack)
}

func TestNilLogger(t *testing.T) {
	t.Parallel()
	o := Options{Policy: Policy{Max: 50 * time.Millisecond, Quiet: time.Second}, Ports: []int{8080}}
	res := run(t.Context(), o, nil, learned{}, func([]int) (sampler, error) { return nil, ErrUnavailable })
	if res.Reason != ReasonCeiling || !res.Fallback {
		t.Errorf("run = %+v, want ReasonCeiling with Fallback", res)
	}
}
