// Package drain decides when the drain window before the stop signal ends:
// after a fixed time, or once the app's ports have gone quiet.
//
// A quiet drain watches the app's TCP sockets through the kernel's
// sock_diag netlink interface (see Watcher): a new connection to one of the
// app's ports, or a byte received on one, is activity. The drain ends once
// there was none for Options.Quiet, but never before Options.Min and never
// after Options.Max. A connection that the client opens and closes between
// two samples is seen through the kernel's socket destroy messages, where
// the process has CAP_NET_ADMIN. Where sock_diag cannot be used (gVisor, a
// seccomp profile that forbids netlink, a kernel without inet_diag), the
// drain falls back to a fixed drain of Options.Max and says so once in the
// log.
package drain

import (
	"context"
	"log/slog"
	"net/netip"
	"time"
)

// Reason says why a drain ended.
type Reason string

const (
	ReasonQuiet     Reason = "quiet"     // no new connection and no received byte for Options.Quiet
	ReasonMax       Reason = "max"       // Options.Max elapsed (the whole of a fixed drain)
	ReasonCancelled Reason = "cancelled" // ctx ended first; the caller knows why
)

// Options shape one drain.
type Options struct {
	Max   time.Duration // longest drain; 0 means no drain
	Quiet time.Duration // 0 means a fixed drain of Max
	Min   time.Duration // with Quiet: never end before this
	Ports []int         // the app's listening ports, watched when Quiet > 0
	// Addrs, when set, limits the watch to sockets whose local address is
	// one of these: apps that share a network namespace (hostNetwork pods,
	// several instances on one machine) share their ports too.
	Addrs    []netip.Addr
	Interval time.Duration // sampling period; 0 means 100ms
}

// DefaultInterval is the sampling period when Options.Interval is 0.
const DefaultInterval = 100 * time.Millisecond

// minStep bounds how often the loop samples when a deadline is about to
// fall due, so that jiffy rounding in the kernel's timestamps cannot make
// it spin.
const minStep = 2 * time.Millisecond

// Result is the detailed outcome of a drain, for the supervisor's summary.
type Result struct {
	Reason  Reason
	Elapsed time.Duration // from the start of RunDetailed to its return
	// LastActivity is the time of the latest new connection or received
	// byte seen on the watched ports, estimated from the kernel's per-socket
	// timestamps (precise to a few milliseconds, not to the sample
	// interval). It may lie before the drain began. It is zero when
	// nothing was seen or the drain was not watched.
	LastActivity time.Time
	Samples      int  // sock_diag samples taken
	Fallback     bool // Quiet was asked for, but the drain ran (or finished) as a fixed drain because sock_diag failed
}

// Run blocks until the drain should end and says why. See RunDetailed.
func Run(ctx context.Context, o Options, log *slog.Logger) Reason {
	return RunDetailed(ctx, o, log).Reason
}

// RunDetailed blocks until the drain should end and reports why and what
// it saw.
//
// Max <= 0 returns ReasonMax at once. Quiet <= 0 is a fixed drain: it
// returns ReasonMax after Max. Otherwise it samples the sockets on Ports
// every Interval and returns ReasonQuiet at the first moment when Min has
// passed and nothing reached the ports for Quiet. The quiet time is counted
// from the later of the drain's start and the last activity, so a quiet
// drain lasts at least Quiet even for an app that was idle before it:
// consumers that still hold the instance in a cache get that long to show
// up. It returns ReasonMax after Max at the latest, and ReasonCancelled as
// soon as ctx is done. It starts no goroutines.
//
// Activity is dated from the kernel's per-socket timestamps and the loop
// takes a sample exactly when the quiet time would run out, so the drain
// ends within a few milliseconds of it whatever the Interval. The Interval
// bounds instead how long a connection can exist without being sampled. A
// connection that the client opens and closes between two samples leaves
// no socket behind; the kernel's destroy messages report it, and it is
// dated up to an Interval late, which can only lengthen the drain. Reading
// those messages takes CAP_NET_ADMIN in the network namespace: without it
// such a connection goes unseen (logged once at debug level).
func RunDetailed(ctx context.Context, o Options, log *slog.Logger) Result {
	return run(ctx, o, log, func(ports []int) (sampler, error) { return newSampler(ports, o.Addrs) })
}

// sampler is what run needs from a Watcher; tests substitute failing ones.
type sampler interface {
	Sample() (Sample, error)
	Close() error
}

// goneReporter is the Linux Watcher's: why it cannot see the connections
// that open and close between two samples, nil while it can.
type goneReporter interface {
	goneUnwatched() error
}

func newSampler(ports []int, addrs []netip.Addr) (sampler, error) {
	w, err := newWatcherAddrs(ports, addrs)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func run(ctx context.Context, o Options, log *slog.Logger, newW func([]int) (sampler, error)) Result {
	start := time.Now()
	res := Result{Reason: ReasonMax}
	finish := func(r Reason) Result {
		res.Reason = r
		res.Elapsed = time.Since(start)
		return res
	}
	if o.Max <= 0 {
		return finish(ReasonMax)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxAt := start.Add(o.Max)
	if o.Quiet <= 0 {
		return finish(waitUntil(ctx, maxAt))
	}
	if ctx.Err() != nil {
		return finish(ReasonCancelled)
	}
	w, err := newW(o.Ports)
	if err != nil {
		log.Warn("drain: cannot watch the app's connections; draining for the full time instead of until quiet",
			"err", err, "drain", o.Max)
		res.Fallback = true
		return finish(waitUntil(ctx, maxAt))
	}
	defer func() {
		if err := w.Close(); err != nil {
			log.Debug("drain: closing the sock_diag socket", "err", err)
		}
	}()

	interval := o.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	minAt := start.Add(o.Min)
	gone, _ := w.(goneReporter)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s, err := w.Sample()
		if err != nil {
			log.Warn("drain: watching the app's connections failed; draining for the rest of the full time",
				"err", err, "drain", o.Max)
			res.Fallback = true
			return finish(waitUntil(ctx, maxAt))
		}
		res.Samples++
		res.LastActivity = s.LastActivity
		if gone != nil {
			if err := gone.goneUnwatched(); err != nil {
				// Debug: without CAP_NET_ADMIN, as in most pods, this is
				// every drain's lot, and keep-alive traffic is seen anyway.
				log.Debug("drain: cannot read the kernel's socket destroy messages; a connection the client opens and closes between two samples goes unseen",
					"err", err, "interval", interval)
				gone = nil
			}
		}
		if res.Samples == 1 && s.Listeners == 0 {
			log.Warn("drain: nothing listens on the watched ports; is --port right?", "ports", o.Ports)
		}

		quietFrom := start
		if s.LastActivity.After(quietFrom) {
			quietFrom = s.LastActivity
		}
		endAt := quietFrom.Add(o.Quiet)
		if endAt.Before(minAt) {
			endAt = minAt
		}
		now := s.At
		if !now.Before(endAt) {
			return finish(ReasonQuiet)
		}
		if !now.Before(maxAt) {
			return finish(ReasonMax)
		}
		// Sleep to the next sample, or exactly to the moment the drain would
		// end if nothing happens meanwhile: the sample taken then confirms
		// the silence, so the drain ends within a sample's cost of the quiet
		// deadline instead of up to an interval after it.
		next := now.Add(interval)
		if endAt.Before(next) {
			next = endAt
		}
		if maxAt.Before(next) {
			next = maxAt
		}
		if d := next.Sub(now); d < minStep {
			next = now.Add(minStep)
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return finish(ReasonCancelled)
		case <-timer.C:
		}
	}
}

// waitUntil blocks until t (ReasonMax) or until ctx is done (ReasonCancelled).
func waitUntil(ctx context.Context, t time.Time) Reason {
	if ctx.Err() != nil {
		return ReasonCancelled
	}
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return ReasonMax
	case <-ctx.Done():
		return ReasonCancelled
	}
}
