// Package drain decides when the drain window before the stop signal ends:
// after a fixed time, or once every caller of the app has stopped calling.
//
// A watched drain reads the app's TCP sockets through the kernel's
// sock_diag netlink interface (see Watcher): a new connection to one of the
// app's ports, or a byte received on one, is activity of the connection's
// remote address, its peer. While the app runs a Learner samples now and
// then and learns each peer's longest gap between calls (see Peers); after
// the stop signal the drain samples often and ends once every peer has been
// quiet for max(Options.Quiet, twice its gap), never before Options.Min and
// never after Options.Max. Peers still calling Options.CacheMax after the
// registry offline are not waited for. A connection that the client opens
// and closes between two samples is seen through the kernel's socket
// destroy messages, where the process has CAP_NET_ADMIN. Where sock_diag
// cannot be used (gVisor, a seccomp profile that forbids netlink, a kernel
// without inet_diag), the drain falls back to a fixed drain of Options.Max
// and says so once in the log.
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
	ReasonAllQuiet  Reason = "all-quiet" // every peer was done (see Peers.Decide)
	ReasonCacheMax  Reason = "cache-max" // Options.CacheMax passed since the offline; peers still calling were not waited for
	ReasonCeiling   Reason = "ceiling"   // Options.Max elapsed (the whole of a fixed drain)
	ReasonCancelled Reason = "cancelled" // ctx ended first; the caller knows why
)

// Options shape one drain: its numbers (Policy, the one place they live in
// this package) and what to watch.
type Options struct {
	// Policy: Max is the longest drain (0: no drain); Quiet 0 means a
	// fixed drain of Max; Min, CacheMax and Global apply with Quiet. A
	// registry consumer keeps the instance in a cache for at most CacheMax
	// after the offline: callers still calling after that are not registry
	// consumers and are not waited for (0: off).
	Policy
	// Offline delivers the moment the registry offline took effect, from
	// which CacheMax counts; nil means CacheMax counts from the drain's
	// start. Nothing delivered (the offline failed): CacheMax never applies.
	Offline <-chan time.Time
	// Ignore leaves these callers out entirely: known probers, such as the
	// kubelet on the node's address.
	Ignore []netip.Prefix
	Ports  []int // the app's listening ports, watched when Quiet > 0
	// Addrs, when set, limits the watch to sockets whose local address is
	// one of these: apps that share a network namespace (hostNetwork pods,
	// several instances on one machine) share their ports too.
	Addrs    []netip.Addr
	Interval time.Duration // sampling period of the drain; 0 means 100ms
	// LearnInterval fixes a Learner's sampling period while the app runs;
	// 0 paces it by what a sample costs (see DefaultLearnInterval).
	LearnInterval time.Duration
}

// DefaultInterval is the sampling period when Options.Interval is 0.
const DefaultInterval = 100 * time.Millisecond

// A sample's cost grows with the connections on the watched ports (the
// kernel describes each, with its tcp_info): about 1 ms with 50, 13 ms with
// 10,000 on a 2-core machine. The drain stretches its period to keep that
// under drainBudget of a core, never beyond maxInterval. Ends stay exact
// (a sample is taken at each deadline), and activity stays dated by the
// kernel's stamps; a longer period only sees new activity later, which
// can only lengthen the drain.
const (
	drainBudget = 0.015
	maxInterval = 2 * time.Second
)

// paced returns the period after a sample that cost cost: base, or longer
// to stay within budget, never beyond maxInterval.
func paced(base, cost time.Duration, budget float64) time.Duration {
	return min(max(base, time.Duration(float64(cost)/budget)), max(base, maxInterval))
}

// minStep bounds how often the loop samples when a deadline is about to
// fall due, so that jiffy rounding in the kernel's timestamps cannot make
// it spin.
const minStep = 2 * time.Millisecond

// slowestShown is how many peers a Result names.
const slowestShown = 3

// Result is the detailed outcome of a drain, for the supervisor's summary.
type Result struct {
	Reason  Reason
	Elapsed time.Duration // from the start of RunDetailed to its return
	At      time.Time     // when it returned
	// LastActivity is the time of the latest new connection or received
	// byte seen on the watched ports, estimated from the kernel's per-socket
	// timestamps (precise to a few milliseconds, not to the sample
	// interval). It may lie before the drain began. It is zero when
	// nothing was seen or the drain was not watched.
	LastActivity time.Time
	Samples      int  // sock_diag samples taken during the drain
	Fallback     bool // Quiet was asked for, but the drain ran (or finished) as a fixed drain because sock_diag failed
	// Slowest are the peers due last, slowest first: who held the drain.
	Slowest []PeerReport
	// Pending are the peers not done when it ended: not waited for after
	// cache-max, or still calling at the ceiling.
	Pending []PeerReport
	// NonConsumers are those of Pending that kept their rhythm through the
	// drain: scrapers, probers, clients of the pod's address (see
	// NonConsumers), to be named with the fix.
	NonConsumers []PeerReport
	// TrafficAtEnd: the drain reached its ceiling while a peer not done
	// yet had called within its usual gap (at least Quiet): traffic was
	// still arriving, and the stop signal cut into it.
	TrafficAtEnd bool
	Peers        int // peers known at the end
}

// Run blocks until the drain should end and says why. See RunDetailed.
func Run(ctx context.Context, o Options, log *slog.Logger) Reason {
	return RunDetailed(ctx, o, log).Reason
}

// RunDetailed blocks until the drain should end and reports why and what
// it saw. It knows no peer's habits from before it started: see Learner.
//
// Max <= 0 returns ReasonCeiling at once. Quiet <= 0 is a fixed drain: it
// returns ReasonCeiling after Max. Otherwise it samples the sockets on
// Ports every Interval and returns as Peers.Decide says: ReasonAllQuiet,
// ReasonCacheMax or ReasonCeiling, and ReasonCancelled as soon as ctx is
// done. It starts no goroutines.
//
// Activity is dated from the kernel's per-socket timestamps and the loop
// takes a sample exactly when the drain would end, so it ends within a few
// milliseconds of that whatever the Interval. The Interval bounds instead
// how long a connection can exist without being sampled. A connection
// that the client opens and closes between two samples leaves no socket
// behind; the kernel's destroy messages report it, and it is dated up to an
// Interval late, which can only lengthen the drain. Reading those messages
// takes CAP_NET_ADMIN in the network namespace: without it such a
// connection goes unseen (logged once at debug level).
func RunDetailed(ctx context.Context, o Options, log *slog.Logger) Result {
	return run(ctx, o, log, learned{}, func(ports []int) (sampler, error) { return newSampler(ports, o.Addrs) })
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

// opener is the Linux Watcher's: the sample taken when it was opened.
type opener interface {
	firstSample() Sample
}

func newSampler(ports []int, addrs []netip.Addr) (sampler, error) {
	w, err := newWatcherAddrs(ports, addrs)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// learned is what a Learner hands over to the drain: its open sampler (nil
// if it has none) and what it learned.
type learned struct {
	w     sampler
	peers *Peers
}

func run(ctx context.Context, o Options, log *slog.Logger, st learned, newW func([]int) (sampler, error)) Result {
	start := time.Now()
	res := Result{Reason: ReasonCeiling}
	pol := o.Policy
	peers := st.peers
	if peers == nil {
		peers = NewPeers(o.Ignore)
	}
	w := st.w
	// Whoever returns owns the sampler now.
	defer func() {
		if w == nil {
			return
		}
		if err := w.Close(); err != nil {
			log.Debug("drain: closing the sock_diag socket", "err", err)
		}
	}()
	finish := func(r Reason) Result {
		res.Reason = r
		res.At = time.Now()
		res.Elapsed = res.At.Sub(start)
		return res
	}
	if o.Max <= 0 {
		return finish(ReasonCeiling)
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
	if w == nil {
		var err error
		if w, err = newW(o.Ports); err != nil {
			log.Warn("drain: cannot watch the app's connections; draining for the full time instead of until quiet",
				"err", err, "drain", o.Max)
			res.Fallback = true
			return finish(waitUntil(ctx, maxAt))
		}
		if f, ok := w.(opener); ok {
			s := f.firstSample()
			peers.Observe(s.At, s.Peers)
			res.LastActivity = s.LastActivity
		}
	}

	interval := o.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	offline := time.Time{}
	offlineCh := o.Offline
	if offlineCh == nil {
		offline = start
	}
	gone, _ := w.(goneReporter)
	peers.begin(start)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var cost time.Duration // a recent sample's cost, smoothed
	for {
		var s Sample
		var err error
		if c := cpuCost(func() { s, err = w.Sample() }); cost == 0 {
			cost = c
		} else {
			cost = (3*cost + c) / 4
		}
		if err != nil {
			log.Warn("drain: watching the app's connections failed; draining for the rest of the full time",
				"err", err, "drain", o.Max)
			res.Fallback = true
			return finish(waitUntil(ctx, maxAt))
		}
		res.Samples++
		res.LastActivity = s.LastActivity
		peers.Observe(s.At, s.Peers)
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

		now := s.At
		d := peers.Decide(now, start, offline, pol)
		if d.End {
			res.Slowest = peers.Slowest(now, start, offline, pol, slowestShown)
			res.Pending = d.Pending
			res.NonConsumers = NonConsumers(d.Pending, now)
			res.TrafficAtEnd = d.Reason == ReasonCeiling && stillCalling(d.Pending, start, now, o.Quiet)
			res.Peers = peers.Len()
			return finish(d.Reason)
		}
		// Sleep to the next sample, or exactly to the moment the drain would
		// end if nothing happens meanwhile: the sample taken then confirms
		// the silence, so the drain ends within a sample's cost of its
		// deadline instead of up to an interval after it.
		next := now.Add(paced(interval, cost, drainBudget))
		if d.Next.Before(next) {
			next = d.Next
		}
		if dt := next.Sub(now); dt < minStep {
			next = now.Add(minStep)
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			res.Slowest = peers.Slowest(time.Now(), start, offline, pol, slowestShown)
			res.Peers = peers.Len()
			return finish(ReasonCancelled)
		case t := <-offlineCh:
			// cache-max counts from here; decide again at once.
			// (Since Go 1.23 a stopped timer's channel holds nothing stale.)
			offline, offlineCh = t, nil
			timer.Stop()
		case <-timer.C:
		}
	}
}

// StillCalling picks, of the peers not done yet, those that called within
// their usual gap (at least quiet) before now, and since the drain began
// at start: traffic still arriving, not a caller whose silence is still
// being confirmed, nor one quiet for longer than the drain has run.
func StillCalling(pending []PeerReport, start, now time.Time, quiet time.Duration) []PeerReport {
	var out []PeerReport
	for _, r := range pending {
		if ago := now.Sub(r.Last); ago <= max(quiet, r.Gap) && ago <= now.Sub(start) {
			out = append(out, r)
		}
	}
	return out
}

func stillCalling(pending []PeerReport, start, now time.Time, quiet time.Duration) bool {
	return len(StillCalling(pending, start, now, quiet)) > 0
}

// waitUntil blocks until t (ReasonCeiling) or until ctx is done (ReasonCancelled).
func waitUntil(ctx context.Context, t time.Time) Reason {
	if ctx.Err() != nil {
		return ReasonCancelled
	}
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return ReasonCeiling
	case <-ctx.Done():
		return ReasonCancelled
	}
}
