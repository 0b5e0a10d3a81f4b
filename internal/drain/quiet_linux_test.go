//go:build linux

package drain

import (
	"context"
	"runtime"
	"testing"
	"time"
)

func TestQuietDrainEndsAfterTrafficStops(t *testing.T) {
	t.Parallel()
	const quiet = 500 * time.Millisecond
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, f, serveRead)
			c := dial(t, srv)
			log, buf := testLogger(t)
			o := Options{Policy: Policy{Max: 10 * time.Second, Quiet: quiet}, Ports: []int{srv.port}}
			start, ch := runAsync(t.Context(), o, log)

			var last span
			for range 8 {
				last = sendSpan(t, c)
				time.Sleep(100 * time.Millisecond)
			}
			res := await(t, ch, 15*time.Second)
			end := start.Add(res.Elapsed)
			if res.Reason != ReasonAllQuiet || res.Fallback {
				t.Fatalf("result = %+v, want ReasonAllQuiet without fallback", res)
			}
			within(t, "end - last request - quiet", end.Sub(last.before)-quiet, -stampSlack, last.after.Sub(last.before)+lateSlack+slack)
			stamped(t, "LastActivity: the last request", res.LastActivity, last, 0)
			if res.Samples < 5 {
				t.Errorf("Samples = %d, want at least 5", res.Samples)
			}
			if n := countLines(buf.String(), "level=WARN"); n != 0 {
				t.Errorf("unexpected warnings:\n%s", buf)
			}
		})
	}
}

func TestQuietDrainContinuesWhileTrafficFlows(t *testing.T) {
	t.Parallel()
	const max = 2500 * time.Millisecond
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, f, serveRead)
			c := dial(t, srv)
			log, _ := testLogger(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// Quiet far longer than the client's period: a loaded machine
			// can hold the client back for a second.
			o := Options{Policy: Policy{Max: max, Quiet: 2 * time.Second}, Ports: []int{srv.port}}
			_, ch := runAsync(ctx, o, log)

			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				tick := time.NewTicker(300 * time.Millisecond)
				defer tick.Stop()
				for {
					if _, err := c.Write(request); err != nil {
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
			}()
			res := await(t, ch, 10*time.Second)
			cancel()
			<-stopped
			if res.Reason != ReasonCeiling || res.Fallback {
				t.Fatalf("result = %+v, want ReasonCeiling without fallback", res)
			}
			within(t, "elapsed", res.Elapsed, max, max+slack)
		})
	}
}

func TestNewConnectionIsActivity(t *testing.T) {
	t.Parallel()
	// Far longer than the wait before the connection, which a loaded
	// machine can stretch: the drain must still be running then.
	const quiet = time.Second
	modes := []struct {
		name string
		mode serverMode
	}{
		{"accepted", serveRead},
		{"in accept queue", serveNoAccept},
	}
	for _, f := range families {
		for _, m := range modes {
			t.Run(f.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, f, m.mode)
				log, _ := testLogger(t)
				o := Options{Policy: Policy{Max: 10 * time.Second, Quiet: quiet}, Ports: []int{srv.port}}
				start, ch := runAsync(t.Context(), o, log)

				time.Sleep(400 * time.Millisecond)
				_, dialled := dialSpan(t, srv) // no data: the connection itself is the activity
				res := await(t, ch, 15*time.Second)
				end := start.Add(res.Elapsed)
				if res.Reason != ReasonAllQuiet {
					t.Fatalf("result = %+v, want ReasonAllQuiet", res)
				}
				within(t, "end - connect - quiet", end.Sub(dialled.before)-quiet, -stampSlack, dialled.after.Sub(dialled.before)+lateSlack+slack)
				stamped(t, "LastActivity: the connection", res.LastActivity, dialled, 0)
			})
		}
	}
}

func TestQuietCountsFromDrainStart(t *testing.T) {
	t.Parallel()
	const quiet = 400 * time.Millisecond
	srv := startServer(t, families[0], serveRead)
	c := dial(t, srv)
	old := sendSpan(t, c) // before the drain: not enough to end it early
	time.Sleep(quiet + 100*time.Millisecond)
	log, _ := testLogger(t)
	start := time.Now()
	res := RunDetailed(t.Context(), Options{Policy: Policy{Max: 10 * time.Second, Quiet: quiet}, Ports: []int{srv.port}}, log)
	if res.Reason != ReasonAllQuiet {
		t.Fatalf("result = %+v, want ReasonAllQuiet", res)
	}
	within(t, "elapsed", time.Since(start), quiet, quiet+slack)
	stamped(t, "LastActivity: the request before the drain", res.LastActivity, old, 0)
}

func TestMinIsRespected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		quiet    time.Duration
		min      time.Duration
		wantLo   time.Duration
		wantHi   time.Duration
		traffic  bool
		wantWhat Reason
	}{
		{"min longer than quiet", 200 * time.Millisecond, time.Second, time.Second, time.Second + slack, false, ReasonAllQuiet},
		{"min shorter than quiet", 600 * time.Millisecond, 200 * time.Millisecond, 600 * time.Millisecond, 600*time.Millisecond + slack, false, ReasonAllQuiet},
		{"min beyond max", 200 * time.Millisecond, 5 * time.Second, 1500 * time.Millisecond, 1500*time.Millisecond + slack, false, ReasonCeiling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, families[0], serveRead)
			dial(t, srv)
			log, _ := testLogger(t)
			o := Options{Policy: Policy{Max: 1500 * time.Millisecond, Quiet: tt.quiet, Min: tt.min}, Ports: []int{srv.port}}
			res := RunDetailed(t.Context(), o, log)
			if res.Reason != tt.wantWhat {
				t.Errorf("Reason = %q, want %q", res.Reason, tt.wantWhat)
			}
			within(t, "elapsed", res.Elapsed, tt.wantLo, tt.wantHi)
		})
	}
}

func TestQuietDrainWatchesSeveralPorts(t *testing.T) {
	t.Parallel()
	const quiet = 500 * time.Millisecond
	a := startServer(t, families[0], serveRead)
	b := startServer(t, families[1], serveRead)
	other := startServer(t, families[0], serveRead) // not watched
	ca, cb, co := dial(t, a), dial(t, b), dial(t, other)
	log, _ := testLogger(t)
	o := Options{Policy: Policy{Max: 10 * time.Second, Quiet: quiet}, Ports: []int{a.port, b.port}}
	start, ch := runAsync(t.Context(), o, log)

	send(t, ca)
	time.Sleep(300 * time.Millisecond)
	last := sendSpan(t, cb)
	for range 6 { // traffic elsewhere does not count
		time.Sleep(150 * time.Millisecond)
		send(t, co)
	}
	res := await(t, ch, 15*time.Second)
	if res.Reason != ReasonAllQuiet {
		t.Fatalf("result = %+v, want ReasonAllQuiet", res)
	}
	within(t, "end - last watched request - quiet", start.Add(res.Elapsed).Sub(last.before)-quiet, -stampSlack, last.after.Sub(last.before)+lateSlack+slack)
}

func TestRunStartsNoGoroutines(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	srv := startServer(t, families[0], serveRead)
	dial(t, srv)
	time.Sleep(50 * time.Millisecond) // let the server's goroutines start
	before := runtime.NumGoroutine()
	log, _ := testLogger(t)
	seen := 0
	res := run(t.Context(), Options{Policy: Policy{Max: 5 * time.Second, Quiet: 300 * time.Millisecond}, Ports: []int{srv.port}}, log, learned{},
		func(ports []int) (sampler, error) {
			w, err := NewWatcher(ports)
			if err != nil {
				return nil, err
			}
			return countingSampler{w, &seen, before, t}, nil
		})
	if res.Reason != ReasonAllQuiet || seen == 0 {
		t.Fatalf("result %+v after %d checked samples, want ReasonAllQuiet", res, seen)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines after the drain, %d before", after, before)
	}
}

// countingSampler checks, at every sample, that the drain runs on the
// caller's goroutine alone.
type countingSampler struct {
	*Watcher
	seen   *int
	before int
	t      *testing.T
}

func (c countingSampler) Sample() (Sample, error) {
	*c.seen++
	if n := runtime.NumGoroutine(); n > c.before {
		c.t.Errorf("sample %d: %d goroutines, %d before the drain", *c.seen, n, c.before)
	}
	return c.Watcher.Sample()
}
