// Package warmup sends synthetic local requests to the app after it is
// ready and before it goes online, so that the JVM has compiled its hot
// paths (and the app has filled its lazy caches and pools) before real
// traffic arrives. Its connections dial through selfconn, so the drain
// never counts them as a caller.
package warmup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry/httphook"
	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

// Defaults and bounds of the flags.
const (
	DefaultRequests    = 64 // a few dozen: enough for C1 to compile a small handler
	DefaultConcurrency = 4  // modest: a warm-up must not starve the app's own start
	DefaultTimeout     = 60 * time.Second
	MaxRequests        = 1_000_000
	MaxConcurrency     = 256
)

// bodyLimit bounds what is read of each answer: enough to make the app
// write it, not enough to matter if it is huge.
const bodyLimit = 1 << 20

// Options shape one warm-up.
type Options struct {
	Calls       []httphook.Call // sent in turn, round robin
	Requests    int             // in all; 0 means DefaultRequests
	Concurrency int             // requests in flight at once; 0 means DefaultConcurrency
	// Timeout bounds the whole warm-up: past it the requests in flight
	// are cut and the app goes online anyway. 0 means DefaultTimeout.
	Timeout time.Duration
	Log     *slog.Logger
}

// Result is what a warm-up did, for the log and the cost measurement.
type Result struct {
	Sent     int           // requests whose answer (or failure) came back
	Failed   int           // transport errors, redirects and answers of 400 or more
	Took     time.Duration // the whole warm-up
	TimedOut bool          // cut short by Timeout or the caller's context (a stop)
	FirstErr string        // the first failure, for the log
	// Latencies of the answered requests, in the order they were sent.
	Latencies []time.Duration
}

func (o Options) withDefaults() Options {
	if o.Requests <= 0 {
		o.Requests = DefaultRequests
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	o.Concurrency = min(o.Concurrency, o.Requests)
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Run sends the warm-up and returns when it is over: every request
// answered, Timeout passed, or ctx ended (the stop sequence began). It
// never fails: failures are counted and logged.
func Run(ctx context.Context, o Options) Result {
	o = o.withDefaults()
	start := time.Now()
	if len(o.Calls) == 0 {
		return Result{}
	}
	stopped := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tr := &http.Transport{
		Proxy:               nil, // local requests: never through a proxy
		DialContext:         selfconn.DialContext,
		MaxIdleConnsPerHost: o.Concurrency,
		IdleConnTimeout:     time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	o.Log.Info("warm-up started", "requests", o.Requests, "concurrency", o.Concurrency, "timeout", o.Timeout, "calls", callNames(o.Calls))
	var (
		next      atomic.Int64
		done      atomic.Int64
		failed    atomic.Int64
		mu        sync.Mutex
		firstErr  string
		latencies = make([]time.Duration, o.Requests)
		answered  = make([]bool, o.Requests)
	)
	step := max(o.Requests/4, 1)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= o.Requests {
					return
				}
				t0 := time.Now()
				err := send(ctx, hc, o.Calls[i%len(o.Calls)])
				if ctx.Err() != nil && err != nil {
					return // cut short: not the app's failure
				}
				latencies[i], answered[i] = time.Since(t0), true
				if err != nil {
					if failed.Add(1) == 1 {
						mu.Lock()
						firstErr = err.Error()
						mu.Unlock()
					}
				}
				if n := done.Add(1); n%int64(step) == 0 && int(n) < o.Requests {
					o.Log.Info("warm-up progress", "done", n, "of", o.Requests, "failed", failed.Load(), "elapsed", time.Since(start).Round(time.Millisecond))
				}
			}
		}()
	}
	wg.Wait()
	res := Result{Sent: int(done.Load()), Failed: int(failed.Load()), Took: time.Since(start), FirstErr: firstErr}
	res.TimedOut = res.Sent < o.Requests
	for i, ok := range answered {
		if ok {
			res.Latencies = append(res.Latencies, latencies[i])
		}
	}
	attrs := []any{"sent", res.Sent, "of", o.Requests, "failed", res.Failed, "elapsed", res.Took.Round(time.Millisecond)}
	if len(res.Latencies) > 0 {
		attrs = append(attrs, "first_ms", ms(res.Latencies[0]), "last_median_ms", ms(median(res.Latencies[max(len(res.Latencies)-10, 0):])))
	}
	switch {
	case res.TimedOut && stopped.Err() != nil:
		// The stop sequence began: the app never goes online.
		o.Log.Info("warm-up stopped: the stop sequence began", attrs...)
	case res.TimedOut && len(res.Latencies) == 0:
		// More time would not help a URL that never answers.
		o.Log.Warn("warm-up cut short with no request answered: the app goes online now, cold; check that --warmup-http reaches the app and answers quickly",
			append(attrs, "timeout", o.Timeout, "first_error", cmp.Or(firstErr, "-"))...)
	case res.TimedOut:
		o.Log.Warn("warm-up cut short: the app goes online now; raise --warmup-timeout or lower --warmup-requests",
			append(attrs, "timeout", o.Timeout, "first_error", cmp.Or(firstErr, "-"))...)
	case res.Failed > 0:
		o.Log.Warn("warm-up requests failed: check --warmup-http", append(attrs, "first_error", firstErr)...)
	default:
		o.Log.Info("warm-up done", attrs...)
	}
	return res
}

// send makes one request and reads its answer; an answer of 400 or more,
// or a redirect, is a failure.
func send(ctx context.Context, hc *http.Client, c httphook.Call) error {
	req, err := c.NewRequest(ctx)
	if err != nil {
		return fmt.Errorf("%s: %v", c, redact.Text(err.Error()))
	}
	req.Header.Set("User-Agent", "gracefulinit-warmup")
	resp, err := hc.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return fmt.Errorf("%s: %v", c, redact.Text(err.Error()))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, bodyLimit))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 400:
		return fmt.Errorf("%s: HTTP %d", c, resp.StatusCode)
	case resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified:
		// Not followed (it may lead anywhere), so it warmed nothing.
		return fmt.Errorf("%s: HTTP %d to %s: redirects are not followed: warm the URL it points to", c, resp.StatusCode, redact.URL(resp.Header.Get("Location")))
	}
	return nil
}

func callNames(calls []httphook.Call) string {
	names := make([]string, len(calls))
	for i, c := range calls {
		names[i] = c.String()
	}
	return strings.Join(names, "; ")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
