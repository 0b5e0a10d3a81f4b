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
// after its last call, a busy one for Quiet.
const (
	gapMultiple = 2
	// peerWindow is how far back gaps are remembered, and how long a quiet
	// peer is kept at all: a caller whose gaps are longer looks new each
	// time, and gets Quiet.
	peerWindow = 5 * time.Minute
	// gapBuckets keep the longest gap of each minute of the window, so a
	// peer costs the same whatever its rate.
	gapBuckets = 5
	bucketLen  = peerWindow / gapBuckets
	// maxPeers bounds the memory: past it the longest-quiet peers go first.
	maxPeers = 4096
)

// PeerActivity is what one sample saw of one peer.
type PeerActivity struct {
	// Addr is the caller; the zero Addr stands for activity that the kernel
	// reported without a peer (lost destroy messages under heavy churn).
	Addr netip.Addr
	Last time.Time // its latest new connection or received data in the sample
	// Count estimates its requests in the sample: new connections, and
	// data segments received on known ones (a request larger than one
	// segment counts more than once). At least 1.
	Count int
}

type gapBucket struct {
	n   int64 // bucket number, time / bucketLen
	max time.Duration
}

// peer is what the drain knows of one caller.
type peer struct {
	last time.Time
	gaps [gapBuckets]gapBucket
}

// gap is the longest gap recorded in the window ending at now; 0 when
// none was, as for a peer seen only once or only busy.
func (p *peer) gap(now time.Time) time.Duration {
	cur := now.UnixNano() / int64(bucketLen)
	var g time.Duration
	for _, b := range p.gaps {
		if b.n > cur-gapBuckets && b.n <= cur {
			g = max(g, b.max)
		}
	}
	return g
}

func (p *peer) record(g time.Duration, at time.Time) {
	n := at.UnixNano() / int64(bucketLen)
	b := &p.gaps[n%gapBuckets]
	if b.n != n {
		*b = gapBucket{n: n}
	}
	b.max = max(b.max, g)
}

// Peers learns each caller's habits from samples and decides when a drain
// ends. It makes no system calls and reads no clock: observations and the
// time come in, decisions go out. Not safe for concurrent use.
type Peers struct {
	m      map[netip.Addr]*peer
	ignore []netip.Prefix
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

// Observe records the activity of one sample taken at at.
//
// A gap is the time from a peer's previous latest activity to its latest
// in this sample, spread over the requests counted in between: exact for
// a single request, the mean for several. Samples date activity to the
// millisecond but see only the latest of each connection, so this is
// what can be known between two of them.
func (ps *Peers) Observe(at time.Time, acts []PeerActivity) {
	for _, a := range acts {
		addr := a.Addr.Unmap()
		if addr.IsValid() && ps.Ignored(addr) {
			continue
		}
		p := ps.m[addr]
		if p == nil {
			p = &peer{last: a.Last}
			ps.m[addr] = p
			continue
		}
		if !a.Last.After(p.last) {
			continue
		}
		span := a.Last.Sub(p.last)
		p.last = a.Last
		// Unattributed activity is dated when a sample found the kernel's
		// messages lost, not when calls came: its spacing is the samples'.
		if !addr.IsValid() || span > peerWindow {
			continue // back after a long absence: no habit to learn from that
		}
		p.record(span/time.Duration(max(a.Count, 1)), a.Last)
	}
	ps.forget(at)
}

// forget drops peers quiet for the whole window, and the longest-quiet
// ones past maxPeers.
func (ps *Peers) forget(now time.Time) {
	for a, p := range ps.m {
		if now.Sub(p.last) > peerWindow {
			delete(ps.m, a)
		}
	}
	if len(ps.m) <= maxPeers {
		return
	}
	all := ps.reports(now, Policy{})
	slices.SortFunc(all, func(x, y PeerReport) int { return x.Last.Compare(y.Last) })
	for _, r := range all[:len(all)-maxPeers] {
		delete(ps.m, r.Addr)
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

// due is when a peer counts as done if it stays quiet.
func (pol Policy) due(last time.Time, gap time.Duration) time.Time {
	if pol.Global {
		return last.Add(pol.Quiet)
	}
	return last.Add(max(pol.Quiet, gapMultiple*gap))
}

// PeerReport is one peer as a decision sees it.
type PeerReport struct {
	Addr netip.Addr    // the zero Addr: activity the kernel did not attribute
	Last time.Time     // its latest activity
	Gap  time.Duration // its longest gap in the window; 0 if none was seen
	Due  time.Time     // when it is done if it stays quiet
}

func (r PeerReport) name() string {
	if !r.Addr.IsValid() {
		return "unattributed"
	}
	return r.Addr.String()
}

func (ps *Peers) reports(now time.Time, pol Policy) []PeerReport {
	out := make([]PeerReport, 0, len(ps.m))
	for a, p := range ps.m {
		g := p.gap(now)
		out = append(out, PeerReport{Addr: a, Last: p.last, Gap: g, Due: pol.due(p.last, g)})
	}
	return out
}

// Slowest returns up to n peers, latest due first: the ones that held the
// drain longest.
func (ps *Peers) Slowest(now time.Time, pol Policy, n int) []PeerReport {
	all := ps.reports(now, pol)
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
	for _, r := range ps.reports(now, pol) {
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
// "10.0.3.7 last 1.2s ago gap 3s; ...".
func FormatPeers(rs []PeerReport, now time.Time) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s last %s ago gap %s", r.name(), now.Sub(r.Last).Round(time.Millisecond), r.Gap.Round(time.Millisecond))
	}
	return strings.Join(parts, "; ")
}
