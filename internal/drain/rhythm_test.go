package drain

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// A recorded caller for the rule's tests: its calls (each some data
// segments) and its connections, as the samples of a Watcher would report
// them.
type script struct {
	addr  netip.Addr
	calls []scall
	// conns is how many long-lived connections it holds at d (from t0); nil
	// holds one from its first call on.
	conns func(d time.Duration) int
	// perRequest: each call opens (and closes) a connection of its own.
	perRequest bool
	// appCloses: the app closes its connections at this time (an idle
	// timeout); 0 never.
	appCloses time.Duration
}

type scall struct {
	at   time.Duration
	segs int
}

// bursts returns k calls 5ms apart every period from from to to.
func bursts(from, to, period time.Duration, k, segs int) []scall {
	var cs []scall
	for d := from; d < to; d += period {
		for i := range k {
			cs = append(cs, scall{d + time.Duration(i)*5*time.Millisecond, segs})
		}
	}
	return cs
}

func (s script) connsAt(d time.Duration) int {
	if s.perRequest {
		return 0
	}
	if s.conns != nil {
		return s.conns(d)
	}
	if len(s.calls) > 0 && d >= s.calls[0].at {
		return 1
	}
	return 0
}

// activity is what a sample at now saw of s since the one at prev.
func (s script) activity(prev, now time.Duration) (PeerActivity, bool) {
	a := PeerActivity{Addr: s.addr}
	for _, c := range s.calls {
		if c.at > prev && c.at <= now {
			a.Last = at(c.at)
			a.Count += max(c.segs, 1)
			if s.perRequest {
				a.Opened++
			}
		}
	}
	a.Conns = s.connsAt(now)
	a.Held = min(a.Conns, s.connsAt(prev))
	a.Opened += max(0, a.Conns-s.connsAt(prev))
	if s.appCloses > prev && s.appCloses <= now {
		a.AppClosed = s.connsAt(prev)
	}
	return a, a.Count > 0 || a.Conns > 0 || a.Opened > 0 || a.AppClosed > 0
}

// simulate learns from the scripts with a Learner's jittered samples every
// learnEvery until start, then drains as run does (a sample every 100ms,
// or at Next if sooner) with the offline 200ms after start. It returns
// when the drain ended, from t0, and the final decision.
func simulate(t *testing.T, scripts []script, learnEvery, start time.Duration, pol Policy) (time.Duration, Decision, *Peers) {
	t.Helper()
	ps := NewPeers(nil)
	rng := rand.New(rand.NewPCG(19, 19))
	sample := func(prev, now time.Duration) {
		var acts []PeerActivity
		for _, s := range scripts {
			if a, ok := s.activity(prev, now); ok {
				acts = append(acts, a)
			}
		}
		ps.Observe(at(now), acts)
	}
	prev := time.Duration(-1)
	for now := time.Duration(0); now < start; now += time.Duration(float64(learnEvery) * (0.8 + 0.4*rng.Float64())) {
		sample(prev, now)
		prev = now
	}
	ps.begin(at(start))
	offline := at(start + 200*time.Millisecond)
	now := start
	for range 100000 {
		sample(prev, now)
		off := time.Time{}
		if !at(now).Before(offline) {
			off = offline
		}
		d := ps.Decide(at(now), at(start), off, pol)
		if d.End {
			return now, d, ps
		}
		prev = now
		next := now + 100*time.Millisecond
		if n := d.Next.Sub(t0); n < next {
			next = n
		}
		if off.IsZero() && offline.Sub(t0) < next {
			next = offline.Sub(t0)
		}
		now = next
	}
	t.Fatal("the drain never ended")
	return 0, Decision{}, nil
}

func lastCall(s script) time.Duration { return s.calls[len(s.calls)-1].at }

// TestRhythm drives the rule with recorded callers, each learned for five
// minutes at a busy app's learning period (about 10s) before the drain.
// Every consumer keeps calling at its rhythm for a while after the drain
// begins (its cache still holds the instance), then stops: the drain must
// not end before its last call, and should end within twice its longest
// gap (or Quiet) after it. Under the rule before issue 19 (a mean of the
// gaps between data segments) the burst, multi-segment, pooled and
// multiplexed callers all ended the drain in a gap between their calls.
func TestRhythm(t *testing.T) {
	t.Parallel()
	const start = 5 * time.Minute
	pol := Policy{Quiet: 2 * time.Second, Max: 40 * time.Second, CacheMax: 30 * time.Second}
	stop := start + 7*time.Second // consumers' caches let go of the instance
	tests := []struct {
		name string
		s    script
		gap  time.Duration // its longest gap between calls
	}{
		// A fan-out caller: 5 calls back to back every 4s. Mean spacing
		// 0.8s, so 2s of quiet after a burst looked like the end.
		{"bursts", script{addr: rare, calls: bursts(1037*time.Millisecond, stop, 4*time.Second, 5, 1)}, 4 * time.Second},
		// One request of 6 segments every 3s: 0.5s a segment.
		{"multi-segment requests", script{addr: rare, calls: bursts(1037*time.Millisecond, stop, 3*time.Second, 1, 6)}, 3 * time.Second},
		// A pool of 4 connections, one call on each at once every 3s.
		{"pooled connections", script{addr: rare, calls: bursts(1037*time.Millisecond, stop, 3*time.Second, 4, 1), conns: func(d time.Duration) int { return 4 }}, 3 * time.Second},
		// gRPC: 8 calls of 2 segments (headers, data) multiplexed on one
		// connection every 5s.
		{"multiplexed calls", script{addr: rare, calls: bursts(1037*time.Millisecond, stop, 5*time.Second, 8, 2)}, 5 * time.Second},
		// Busy: every 5ms; waited for Quiet, as before.
		{"busy", script{addr: busy, calls: bursts(0, stop, 5*time.Millisecond, 1, 1)}, 5 * time.Millisecond},
		// A connection per request every 3s keeps the gap rule.
		{"connection per request", script{addr: rare, calls: bursts(1037*time.Millisecond, stop, 3*time.Second, 1, 1), perRequest: true}, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			end, d, _ := simulate(t, []script{tt.s}, 10*time.Second, start, pol)
			last := lastCall(tt.s)
			if d.Reason != ReasonAllQuiet {
				t.Fatalf("ended %v after the start with %s, want %s (pending %s)", end-start, d.Reason, ReasonAllQuiet, FormatPeers(d.Pending, at(end)))
			}
			if end <= last {
				t.Fatalf("ended %v after the start, before the caller's last call at %v: its next calls fail", end-start, last-start)
			}
			if hi := last + max(pol.Quiet, gapMultiple*tt.gap) + 100*time.Millisecond; end > hi {
				t.Errorf("ended %v after its last call, want at most %v (twice its longest gap %v, or Quiet)", end-last, hi-last, tt.gap)
			}
		})
	}
}

// TestRhythmLetGo: a caller that held long-lived connections and closed
// them all after the offline is done a second (or Quiet) later, not twice
// its gap after its last call. One that opens a connection per request,
// or whose connections the app closed, keeps the gap rule.
func TestRhythmLetGo(t *testing.T) {
	t.Parallel()
	const start = 5 * time.Minute
	pol := Policy{Quiet: 500 * time.Millisecond, Max: 40 * time.Second, CacheMax: 30 * time.Second}
	closes := start + 3*time.Second
	held := func(d time.Duration) int {
		if d < closes {
			return 2
		}
		return 0
	}
	calls := bursts(time.Second, closes, 5*time.Second, 1, 1)
	tests := []struct {
		name string
		s    script
		lo   time.Duration // earliest end, from the close
		hi   time.Duration
	}{
		// Sampled every 100ms: the close is seen up to 100ms late.
		{"let go", script{addr: rare, calls: calls, conns: held}, letGoQuiet, letGoQuiet + 100*time.Millisecond},
		{"connection per request", script{addr: rare, calls: calls, perRequest: true}, lastCall(script{calls: calls}) + 10*time.Second - closes, 40 * time.Second},
		{"the app closed them", script{addr: rare, calls: calls, conns: held, appCloses: closes}, lastCall(script{calls: calls}) + 10*time.Second - closes, 40 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			end, d, _ := simulate(t, []script{tt.s}, 10*time.Second, start, pol)
			if d.Reason != ReasonAllQuiet {
				t.Fatalf("ended with %s, want %s", d.Reason, ReasonAllQuiet)
			}
			within(t, tt.name+": close to the drain's end", end-closes, tt.lo, tt.hi)
		})
	}
}

// TestRhythmShortHistory: a caller seen once (or for a moment) before the
// drain cannot have shown its gap yet; it is waited for as a rare caller,
// until cache-max after the offline, not for Quiet. A busy caller first
// seen just before is waited for until its history is long enough to
// know it is busy.
func TestRhythmShortHistory(t *testing.T) {
	t.Parallel()
	const start = 5 * time.Minute
	pol := Policy{Quiet: 2 * time.Second, Max: 40 * time.Second, CacheMax: 20 * time.Second}
	offline := start + 200*time.Millisecond
	tests := []struct {
		name     string
		s        script
		lo, hi   time.Duration // the drain's end, from the start
		reason   Reason
		learnGap time.Duration // the learning period
	}{
		// The rare caller: one call 3s before SIGTERM.
		{"seen once", script{addr: rare, calls: []scall{{start - 3*time.Second, 1}}}, offline + pol.CacheMax - start, offline + pol.CacheMax - start, ReasonAllQuiet, 10 * time.Second},
		// One burst of a fan-out caller: five calls, but no gap yet.
		{"one burst", script{addr: rare, calls: bursts(start-2*time.Second, start-time.Second, 4*time.Second, 5, 1)}, offline + pol.CacheMax - start, offline + pol.CacheMax - start, ReasonAllQuiet, 10 * time.Second},
		// Busy from 1s before the drain to 6s into it: known as busy once
		// its calls span historyMin, then done Quiet after its last call.
		{"busy, first seen just before", script{addr: busy, calls: bursts(start-time.Second, start+6*time.Second, 5*time.Millisecond, 1, 1)}, 7900 * time.Millisecond, 8*time.Second + 100*time.Millisecond, ReasonAllQuiet, 250 * time.Millisecond},
		// Busy for 3s only: never known, a rare caller's wait.
		{"busy for a moment", script{addr: busy, calls: bursts(start-time.Second, start+2*time.Second, 5*time.Millisecond, 1, 1)}, offline + pol.CacheMax - start, offline + pol.CacheMax - start, ReasonAllQuiet, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			end, d, _ := simulate(t, []script{tt.s}, tt.learnGap, start, pol)
			if d.Reason != tt.reason {
				t.Fatalf("ended %v after the start with %s, want %s", end-start, d.Reason, tt.reason)
			}
			within(t, tt.name+": the drain", end-start, tt.lo, tt.hi)
		})
	}
}

// TestRhythmNonConsumer: a scraper keeps its 5s rhythm through the drain.
// The drain stops waiting for it at cache-max and names it with its
// rhythm; the consumer next to it, which stopped, is not named.
func TestRhythmNonConsumer(t *testing.T) {
	t.Parallel()
	const start = 5 * time.Minute
	pol := Policy{Quiet: 2 * time.Second, Max: 40 * time.Second, CacheMax: 20 * time.Second}
	scraper := script{addr: probe, calls: bursts(time.Second, start+time.Hour, 5*time.Second, 1, 1)}
	consumer := script{addr: rare, calls: bursts(time.Second, start+3*time.Second, 2*time.Second, 1, 1)}
	end, d, _ := simulate(t, []script{scraper, consumer}, 10*time.Second, start, pol)
	if d.Reason != ReasonCacheMax {
		t.Fatalf("ended %v after the start with %s, want %s", end-start, d.Reason, ReasonCacheMax)
	}
	nc := NonConsumers(d.Pending, at(end))
	if len(nc) != 1 || nc[0].Addr != probe {
		t.Fatalf("non-consumers %s, want just the scraper %v", FormatRhythm(nc), probe)
	}
	got := FormatRhythm(nc)
	want := "10.0.0.9 every ~5s, 4 calls during the drain (--drain-ignore 10.0.0.9/32)"
	if got != want {
		t.Errorf("FormatRhythm = %q, want %q", got, want)
	}
}

// TestRhythmUnattributed: activity the kernel could not attribute (lost
// destroy messages in one storm of connections a minute before the drain)
// has no rhythm to learn; it never counts as a caller with short history
// that would hold the drain to cache-max.
func TestRhythmUnattributed(t *testing.T) {
	t.Parallel()
	const start = 5 * time.Minute
	pol := Policy{Quiet: 2 * time.Second, Max: 40 * time.Second, CacheMax: 20 * time.Second}
	storm := script{addr: netip.Addr{}, calls: bursts(start-time.Minute, start-time.Minute+time.Second, 100*time.Millisecond, 1, 1), perRequest: true}
	end, d, _ := simulate(t, []script{storm}, 250*time.Millisecond, start, pol)
	if d.Reason != ReasonAllQuiet || end != start+pol.Quiet {
		t.Errorf("ended %v after the start with %s, want %v with %s", end-start, d.Reason, pol.Quiet, ReasonAllQuiet)
	}
}

// TestPace: the drain's period stretches to keep a costly sample within
// its budget, up to maxInterval; the learner's stays within its budget,
// samples more often in the pod's first minutes, and varies by a fifth.
func TestPace(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cost, want time.Duration
	}{
		{0, DefaultInterval},
		{time.Millisecond, DefaultInterval},
		{3 * time.Millisecond, 200 * time.Millisecond},
		{15 * time.Millisecond, time.Second},
		{time.Second, maxInterval},
	} {
		if got := paced(DefaultInterval, tt.cost, drainBudget); got != tt.want {
			t.Errorf("paced(%v) = %v, want %v", tt.cost, got, tt.want)
		}
	}
	for _, tt := range []struct {
		cost, since, want time.Duration
	}{
		{0, 0, earlyFloor},
		{100 * time.Microsecond, time.Minute, earlyFloor},
		{time.Millisecond, time.Minute, 2 * time.Second},
		{100 * time.Microsecond, time.Hour, lateFloor},
		{2 * time.Millisecond, time.Hour, 4 * time.Second},
		{time.Second, time.Hour, 3 * DefaultLearnInterval},
	} {
		if got := learnPace(tt.cost, tt.since, 0.5); got != tt.want {
			t.Errorf("learnPace(%v, %v) = %v, want %v", tt.cost, tt.since, got, tt.want)
		}
		if lo, hi := learnPace(tt.cost, tt.since, 0), learnPace(tt.cost, tt.since, 0.999); lo != tt.want*8/10 || hi <= tt.want || hi > tt.want*12/10 {
			t.Errorf("learnPace(%v, %v) varies from %v to %v, want %v ± a fifth", tt.cost, tt.since, lo, hi, tt.want)
		}
	}
}

// TestNewlyKnown: a caller is reported once, when its calls seen first
// span historyMin (and historyGaps of its gap); a caller seen for a moment
// is not.
func TestNewlyKnown(t *testing.T) {
	t.Parallel()
	ps := NewPeers(nil)
	t0 := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("127.0.0.7"), netip.MustParseAddr("127.0.0.8")
	var got []KnownCaller
	for i := 0; i <= 30; i++ { // a sample every 250 ms; a calls every 250 ms, b only in the first second
		at := t0.Add(time.Duration(i) * 250 * time.Millisecond)
		acts := []PeerActivity{{Addr: a, Last: at.Add(-time.Millisecond), Count: 1, Conns: 1, Held: 1}}
		if i < 4 {
			acts = append(acts, PeerActivity{Addr: b, Last: at.Add(-time.Millisecond), Count: 1, Conns: 1, Held: 1})
		}
		ps.Observe(at, acts)
		k := ps.NewlyKnown()
		if len(k) > 0 && at.Sub(t0) < historyMin {
			t.Fatalf("%v known after %v, before historyMin %v", k, at.Sub(t0), historyMin)
		}
		got = append(got, k...)
	}
	if len(got) != 1 || got[0].Addr != a || got[0].Gap <= 0 || got[0].Gap > time.Second {
		t.Fatalf("newly known %+v, want %v once with its ~250ms gap", got, a)
	}
}
