package drain

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The per-peer rule. A peer is a remote address of the app's connections.
// Each one is done once it has been quiet for max(Quiet, gapMultiple x its
// longest gap between calls in the last peerWindow); the drain ends when
// every peer is done. A caller that calls every 3 s is thus waited for 6 s
// after its last call, a busy one for Quiet. Two exceptions: a caller that
// let go of the instance (closed every long-lived connection after the
// offline, opened none since) is done letGoQuiet after that; a caller whose
// history is too short to know its gap is waited for as a rare caller.
const (
	gapMultiple = 2
	// peerWindow is how far back gaps are remembered, and how long a quiet
	// peer is kept at all: a caller whose gaps are longer looks new each
	// time.
	peerWindow = 5 * time.Minute
	// gapBuckets keep the longest gap of each minute of the window, so a
	// peer costs the same whatever its rate.
	gapBuckets = 5
	bucketLen  = peerWindow / gapBuckets
	// maxPeers bounds the memory: past it the longest-quiet peers go first.
	maxPeers = 4096
	// A peer's gap is known once its calls seen span historyGaps times its
	// longest gap, and historyMin: less history may hold none of its long
	// gaps (a rare caller seen once, a fan-out caller seen in one burst, a
	// caller seen for a moment before the drain).
	historyGaps = 3
	historyMin  = 5 * time.Second
	// letGoQuiet is the least time a caller that let go must stay away,
	// with --drain-quiet if longer: a pool that closes connections and opens
	// new ones within a second is reconnecting, not leaving.
	letGoQuiet = time.Second
)

// PeerActivity is what one sample saw of one peer. A Watcher reports every
// peer that was active or holds an open connection.
type PeerActivity struct {
	// Addr is the caller; the zero Addr stands for activity that the kernel
	// reported without a peer (lost destroy messages under heavy churn).
	Addr netip.Addr
	// Last is its latest call in the sample: a new connection or data
	// received (keepalives aside). Zero when it made none.
	Last time.Time
	// Count estimates its calls in the sample: new connections, and data
	// segments received on known ones (a request larger than one segment
	// counts more than once). At least 1 when Last is set.
	Count int
	// Conns is how many connections it holds open (ones it has not closed);
	// Held, how many of those the previous sample saw too: long-lived ones.
	Conns, Held int
	// Opened is how many connections it opened since the previous sample,
	// those already closed included.
	Opened int
	// AppClosed is how many of its connections the app closed since the
	// previous sample: an app's idle timeout, not the caller letting go.
	AppClosed int
}

type gapBucket struct {
	n      int64 // bucket number, time / bucketLen
	max    time.Duration
	calls  int // calls (Count) and
	opened int // connections opened: about equal for a caller that opens one per request
}

// peer is what the drain knows of one caller.
type peer struct {
	last  time.Time // its latest call; zero until it made one
	first time.Time // when it was first seen
	// anon: activity the kernel did not attribute (the zero Addr), dated
	// by samples: it has no rhythm to know, so no short history either.
	anon  bool
	calls int // calls seen, up to historyCalls
	gaps  [gapBuckets]gapBucket

	conns     int       // connections it holds open, at the latest sample
	held      bool      // it held a connection across two samples
	closedAt  time.Time // when its open connections went to none (the sample that saw it); zero while it holds some
	openedAt  time.Time // the latest sample that saw it open a connection
	appClosed time.Time // the latest sample that saw the app close one of its connections
	seen      time.Time // the latest sample that reported it

	drainCalls int  // samples with calls since the drain began (see Peers.begin)
	told       bool // Peers.NewlyKnown reported it
}

const historyCalls = 1 << 20

// gap is the longest gap recorded in the window ending at now; 0 when
// none was, as for a peer seen only once or only busy.
func (p *peer) gap(now time.Time) time.Duration {
	var g time.Duration
	p.window(now, func(b *gapBucket) { g = max(g, b.max) })
	return g
}

// perRequest reports whether the peer opens about one connection per call
// in the window: such a caller never holds one for long, and closing it
// says nothing about letting go.
func (p *peer) perRequest(now time.Time) bool {
	calls, opened := 0, 0
	p.window(now, func(b *gapBucket) { calls += b.calls; opened += b.opened })
	return opened > 0 && 2*opened >= calls
}

func (p *peer) window(now time.Time, f func(*gapBucket)) {
	cur := now.UnixNano() / int64(bucketLen)
	for i := range p.gaps {
		if b := &p.gaps[i]; b.n > cur-gapBuckets && b.n <= cur {
			f(b)
		}
	}
}

func (p *peer) bucket(at time.Time) *gapBucket {
	n := at.UnixNano() / int64(bucketLen)
	b := &p.gaps[n%gapBuckets]
	if b.n != n {
		*b = gapBucket{n: n}
	}
	return b
}

// known reports whether the peer's history is long enough for its longest
// gap to be known (see historyGaps).
func (p *peer) known(gap time.Duration) bool {
	return p.calls >= 2 && p.last.Sub(p.first) >= max(historyMin, historyGaps*gap)
}

// letGo reports when a peer let go of the instance after the offline: it
// held long-lived connections, does not open one per call, closed every
// one of them itself after offline and opened none since. Zero if it did
// not.
func (p *peer) letGo(now, offline time.Time) time.Time {
	if offline.IsZero() || !p.held || p.conns > 0 || p.closedAt.IsZero() || p.closedAt.Before(offline) {
		return time.Time{}
	}
	if p.openedAt.After(p.closedAt) || !p.appClosed.Before(offline) || p.perRequest(now) {
		return time.Time{}
	}
	return p.closedAt
}

// Peers learns each caller's habits from samples and decides when a drain
// ends. It makes no system calls and reads no clock: observations and the
// time come in, decisions go out. Not safe for concurrent use.
type Peers struct {
	m      map[netip.Addr]*peer
	ignore []netip.Prefix
	at     time.Time // the latest sample
	start  time.Time // the drain's start; zero while learning
}

// NewPeers returns an empty Peers that leaves out the callers in ignore.
func NewPeers(ignore []netip.Prefix) *Peers {
	return &Peers{m: make(map[netip.Addr]*peer), ignore: ignore}
}

// Ignored reports whether a is left out of the rule.
func (ps *Peers) Ignored(a netip.Addr) bool {
	for _, p := range ps.ignore {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// begin marks the drain's start: calls from then on are counted per peer,
// to name the ones that keep calling through it.
func (ps *Peers) begin(start time.Time) { ps.start = start }

// Observe records one sample taken at at: acts holds every peer that was
// active or holds a connection; one missing holds none.
//
// A caller's quiet period is what the samples measure: at each one, at
// minus its latest call is how long it has been quiet. When it calls
// again, the quiet period it ended is at least what the previous sample
// measured (the new call came after it), and at least the mean spacing of
// the calls in between; exactly their span when the sample saw one call.
// The longest over the window is a lower bound of its longest gap that
// converges on it as samples fall at varied points of its rhythm: unlike
// a mean of calls, bursts, requests of several segments, calls spread over
// pooled connections and calls multiplexed on one all leave it long,
// while a busy caller, never quiet for long, keeps it short.
func (ps *Peers) Observe(at time.Time, acts []PeerActivity) {
	prevAt := ps.at
	ps.at = at
	for _, a := range acts {
		addr := a.Addr.Unmap()
		if addr.IsValid() && ps.Ignored(addr) {
			continue
		}
		p := ps.m[addr]
		if p == nil {
			p = &peer{first: at, anon: !addr.IsValid()}
			if !a.Last.IsZero() && a.Last.Before(at) {
				p.first = a.Last
			}
			ps.m[addr] = p
		}
		ps.conns(p, a, at)
		if a.Last.IsZero() || !a.Last.After(p.last) {
			continue
		}
		if !ps.start.IsZero() && !a.Last.Before(ps.start) {
			p.drainCalls++
		}
		n := max(a.Count, 1)
		p.calls = min(p.calls+n, historyCalls)
		if p.last.IsZero() {
			p.last = a.Last
			p.bucket(a.Last).calls += n
			continue
		}
		span := a.Last.Sub(p.last)
		g := span
		if n > 1 {
			g = span / time.Duration(n)
			if !prevAt.IsZero() && prevAt.After(p.last) {
				g = max(g, min(prevAt.Sub(p.last), span))
			}
		}
		p.last = a.Last
		b := p.bucket(a.Last)
		b.calls += n
		// Unattributed activity is dated when a sample found the kernel's
		// messages lost, not when calls came: its spacing is the samples'.
		if !addr.IsValid() || span > peerWindow {
			continue // back after a long absence: no habit to learn from that
		}
		b.max = max(b.max, g)
	}
	// A peer not reported holds no connection any more.
	for _, p := range ps.m {
		if !p.seen.Equal(at) && p.conns > 0 {
			p.conns = 0
			p.closedAt = at
		}
	}
	ps.forget(at)
}

// KnownCaller is a caller whose rhythm became known: its longest gap.
type KnownCaller struct {
	Addr netip.Addr
	Gap  time.Duration
}

// NewlyKnown returns, once each, the callers whose history became long
// enough at the latest sample for their gap to be known (see historyGaps):
// from then on the drain waits for them by their gap, not as rare ones.
func (ps *Peers) NewlyKnown() []KnownCaller {
	var out []KnownCaller
	for a, p := range ps.m {
		if p.told || p.anon {
			continue
		}
		if g := p.gap(ps.at); p.known(g) {
			p.told = true
			out = append(out, KnownCaller{Addr: a, Gap: g})
		}
	}
	return out
}

// conns records what a sample saw of a peer's connections.
func (ps *Peers) conns(p *peer, a PeerActivity, at time.Time) {
	p.seen = at
	if a.Held > 0 {
		p.held = true
	}
	if a.Opened > 0 {
		p.openedAt = at
		p.bucket(at).opened += a.Opened
	}
	if a.AppClosed > 0 {
		p.appClosed = at
	}
	switch {
	case a.Conns > 0:
		p.closedAt = time.Time{}
	case p.conns > 0:
		p.closedAt = at
	}
	p.conns = a.Conns
}

// forget drops peers quiet for the whole window that hold no connection,
// and the longest-quiet ones past maxPeers.
func (ps *Peers) forget(now time.Time) {
	for a, p := range ps.m {
		if now.Sub(later(p.last, p.first)) > peerWindow && p.conns == 0 {
			delete(ps.m, a)
		}
	}
	if len(ps.m) <= maxPeers {
		return
	}
	type seen struct {
		addr netip.Addr
		at   time.Time
	}
	all := make([]seen, 0, len(ps.m))
	for a, p := range ps.m {
		all = append(all, seen{a, later(p.last, p.first)})
	}
	slices.SortFunc(all, func(x, y seen) int { return x.at.Compare(y.at) })
	for _, s := range all[:len(all)-maxPeers] {
		delete(ps.m, s.addr)
	}
}

// Len is the number of peers known.
func (ps *Peers) Len() int { return len(ps.m) }

// Policy holds the numbers of one drain.
type Policy struct {
	Quiet    time.Duration // a peer is quiet for at least this long before it is done
	Min      time.Duration // the drain never ends before this
	Max      time.Duration // the ceiling
	CacheMax time.Duration // after this from the offline, peers still calling are not waited for; 0: never
	// Global drops the learned gaps: every peer is done Quiet after its
	// last call, so the drain ends Quiet after the last call of anyone, the
	// rule before per-peer drains.
	Global bool
}

// due is when a peer counts as done if it stays quiet, and why, for a
// drain that began at start with the offline at offline (zero: unknown).
func (pol Policy) due(p *peer, now, start, offline time.Time) (time.Time, Rule, time.Duration) {
	if pol.Global {
		return p.last.Add(pol.Quiet), RuleGap, 0
	}
	g := p.gap(now)
	if t := p.letGo(now, offline); !t.IsZero() {
		return t.Add(max(pol.Quiet, letGoQuiet)), RuleLetGo, g
	}
	due := p.last.Add(max(pol.Quiet, gapMultiple*g))
	if p.known(g) || start.IsZero() || pol.CacheMax <= 0 || p.anon {
		return due, RuleGap, g
	}
	// Too little history to know its gap: a rare caller, waited for until
	// registry consumers have let go (cache-max after the offline), or the
	// ceiling while the offline has not taken effect. Without cache-max
	// (no registry) there is no such bound, and the gap rule stands.
	rare := start.Add(pol.Max)
	if !offline.IsZero() {
		rare = later(start, offline.Add(pol.CacheMax))
	}
	return later(due, rare), RuleShortHistory, g
}

// Rule names the rule that set a peer's due time.
type Rule string

const (
	RuleGap          Rule = "gap"           // quiet for max(Quiet, 2 x its longest gap)
	RuleLetGo        Rule = "let-go"        // closed its connections after the offline
	RuleShortHistory Rule = "short-history" // too little seen of it to know its gap
)

// PeerReport is one peer as a decision sees it.
type PeerReport struct {
	Addr netip.Addr    // the zero Addr: activity the kernel did not attribute
	Last time.Time     // its latest activity
	Gap  time.Duration // its longest gap in the window; 0 if none was seen
	Due  time.Time     // when it is done if it stays quiet
	Rule Rule          // what set Due
	// DrainCalls counts the samples that saw it call since the drain
	// began: a caller still at its rhythm through the drain is no
	// registry consumer.
	DrainCalls int
}

func (r PeerReport) name() string {
	if !r.Addr.IsValid() {
		return "unattributed"
	}
	return r.Addr.String()
}

func (ps *Peers) reports(now, start, offline time.Time, pol Policy) []PeerReport {
	out := make([]PeerReport, 0, len(ps.m))
	for a, p := range ps.m {
		if p.last.IsZero() {
			continue // holds a connection, never called while watched
		}
		due, rule, g := pol.due(p, now, start, offline)
		out = append(out, PeerReport{Addr: a, Last: p.last, Gap: g, Due: due, Rule: rule, DrainCalls: p.drainCalls})
	}
	return out
}

// Slowest returns up to n peers, latest due first: the ones that held the
// drain longest.
func (ps *Peers) Slowest(now, start, offline time.Time, pol Policy, n int) []PeerReport {
	all := ps.reports(now, start, offline, pol)
	sortSlowest(all)
	return all[:min(n, len(all))]
}

func sortSlowest(rs []PeerReport) {
	slices.SortFunc(rs, func(x, y PeerReport) int {
		if c := y.Due.Compare(x.Due); c != 0 {
			return c
		}
		return cmp.Compare(x.name(), y.name())
	})
}

// Decision is what Decide concluded.
type Decision struct {
	End    bool
	Reason Reason // when End
	// Next is when to decide again if nothing new is seen: the moment the
	// drain would end then.
	Next time.Time
	// Pending are the peers not done yet: the ones still awaited, or when
	// the drain ends, the ones it did not wait for, slowest first.
	Pending []PeerReport
}

// Decide says whether a drain that began at start ends at now. offline is
// when the registry offline took effect, zero while unknown; cache-max
// counts from it.
//
// The drain ends with ReasonCeiling at start+Max; with ReasonAllQuiet once
// every peer is done, Min has passed, and Quiet has passed since start (so
// consumers that still hold the instance get that long to show up even if
// the app was idle); with ReasonCacheMax once CacheMax has passed since the
// offline and Min since start, whoever is still calling: a registry
// consumer's cache has let go of the instance by then, so a caller that
// keeps calling is not one (a kubelet probe, a scraper, a client of the
// pod IP) and would hold every drain to its ceiling.
func (ps *Peers) Decide(now, start, offline time.Time, pol Policy) Decision {
	var pending []PeerReport
	lastDue := time.Time{}
	for _, r := range ps.reports(now, start, offline, pol) {
		if r.Due.After(now) {
			pending = append(pending, r)
			if r.Due.After(lastDue) {
				lastDue = r.Due
			}
		}
	}
	ceiling := start.Add(pol.Max)
	if !now.Before(ceiling) {
		sortSlowest(pending) // only an ending decision names them: not every 100 ms
		return Decision{End: true, Reason: ReasonCeiling, Next: now, Pending: pending}
	}
	minAt := start.Add(pol.Min)
	floor := start.Add(max(pol.Quiet, pol.Min))
	if len(pending) == 0 && !now.Before(floor) {
		return Decision{End: true, Reason: ReasonAllQuiet, Next: now}
	}
	next := ceiling
	if quietAt := later(floor, lastDue); quietAt.Before(next) {
		next = quietAt
	}
	if pol.CacheMax > 0 && !offline.IsZero() {
		cacheAt := later(offline.Add(pol.CacheMax), minAt)
		if len(pending) > 0 && !now.Before(cacheAt) {
			sortSlowest(pending)
			return Decision{End: true, Reason: ReasonCacheMax, Next: now, Pending: pending}
		}
		if cacheAt.Before(next) {
			next = cacheAt
		}
	}
	return Decision{Next: next, Pending: pending}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// FormatPeers describes peers for a log line, as seen at now:
// "10.0.3.7 last 1.2s ago gap 3s; 10.0.3.9 last 4s ago gap 0s (short
// history); ...".
func FormatPeers(rs []PeerReport, now time.Time) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s last %s ago gap %s", r.name(), now.Sub(r.Last).Round(time.Millisecond), r.Gap.Round(time.Millisecond))
		switch r.Rule {
		case RuleShortHistory:
			parts[i] += " (short history)"
		case RuleLetGo:
			parts[i] += " (let go)"
		}
	}
	return strings.Join(parts, "; ")
}

// FormatRhythm describes callers that kept calling through a drain, with
// their rhythm and the fix: "10.0.3.7 every ~15s, 3 calls during the drain
// (--drain-ignore 10.0.3.7/32)".
func FormatRhythm(rs []PeerReport) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		every := "busy"
		if r.Gap >= time.Millisecond {
			every = "every ~" + r.Gap.Round(time.Millisecond).String()
		}
		fix := "-"
		if r.Addr.IsValid() {
			fix = netip.PrefixFrom(r.Addr, r.Addr.BitLen()).String()
		}
		parts[i] = fmt.Sprintf("%s %s, %d calls during the drain (--drain-ignore %s)", r.name(), every, r.DrainCalls, fix)
	}
	return strings.Join(parts, "; ")
}

// NonConsumers picks, of the peers a drain did not wait for, those that
// kept their rhythm through it: called at least twice since it began and
// were due again within their gap of its end. A registry consumer stops
// once its cache lets go of the instance; these are scrapers, probers or
// clients of the pod's address.
func NonConsumers(pending []PeerReport, now time.Time) []PeerReport {
	var out []PeerReport
	for _, r := range pending {
		if r.Addr.IsValid() && r.DrainCalls >= 2 && now.Sub(r.Last) <= max(gapMultiple*r.Gap, time.Second) {
			out = append(out, r)
		}
	}
	return out
}
