package drain

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	busy  = netip.MustParseAddr("10.0.0.1")
	rare  = netip.MustParseAddr("10.0.0.2")
	probe = netip.MustParseAddr("10.0.0.9")
)

func at(d time.Duration) time.Time { return t0.Add(d) }

// calls is a peer's calls at these offsets from t0, one request each.
type calls struct {
	addr netip.Addr
	at   []time.Duration
}

// every returns calls from from to to (exclusive) every period.
func every(addr netip.Addr, from, to, period time.Duration) calls {
	c := calls{addr: addr}
	for d := from; d < to; d += period {
		c.at = append(c.at, d)
	}
	return c
}

// feed samples the calls every interval from the first call to until, as
// a Watcher would: each sample reports each peer's latest call since the
// previous sample and how many it made.
func feed(ps *Peers, until, interval time.Duration, cs ...calls) {
	prev := time.Duration(-1)
	for s := time.Duration(0); s <= until; s += interval {
		var acts []PeerActivity
		for _, c := range cs {
			a := PeerActivity{Addr: c.addr}
			for _, d := range c.at {
				if d > prev && d <= s {
					if at(d).After(a.Last) {
						a.Last = at(d)
					}
					a.Count++
				}
			}
			if a.Count > 0 {
				acts = append(acts, a)
			}
		}
		ps.Observe(at(s), acts)
		prev = s
	}
}

func TestPeersLearnGaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		interval time.Duration
		calls    calls
		want     time.Duration // the learned gap, to the millisecond
	}{
		{"rare caller every 3s, sampled every 5s", 5 * time.Second, every(rare, 100*time.Millisecond, time.Minute, 3*time.Second), 3 * time.Second},
		{"rare caller every 3s, sampled every 100ms", 100 * time.Millisecond, every(rare, 100*time.Millisecond, 20*time.Second, 3*time.Second), 3 * time.Second},
		// 200 req/s: the mean gap of a sample's requests.
		{"busy caller, sampled every 5s", 5 * time.Second, every(busy, 0, 30*time.Second, 5*time.Millisecond), 5 * time.Millisecond},
		{"seen once: nothing to learn", 5 * time.Second, calls{addr: rare, at: []time.Duration{time.Second}}, 0},
		// Lost destroy messages, noted at each 10s sample: no habit.
		{"unattributed", 10 * time.Second, every(netip.Addr{}, 0, time.Minute, 10*time.Second), 0},
		// Gaps longer than the window are no habit.
		{"back after ten minutes", time.Second, calls{addr: rare, at: []time.Duration{0, 10 * time.Minute}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := NewPeers(nil)
			end := tt.calls.at[len(tt.calls.at)-1] + tt.interval
			feed(ps, end, tt.interval, tt.calls)
			rs := ps.Slowest(at(end), time.Time{}, time.Time{}, Policy{}, 5)
			if len(rs) != 1 || rs[0].Addr != tt.calls.addr {
				t.Fatalf("peers %v, want just %v", rs, tt.calls.addr)
			}
			if got := rs[0].Gap.Round(time.Millisecond); got != tt.want {
				t.Errorf("learned gap %v, want %v", got, tt.want)
			}
			if want := at(tt.calls.at[len(tt.calls.at)-1]); !rs[0].Last.Equal(want) {
				t.Errorf("last call %v, want %v", rs[0].Last, want)
			}
		})
	}
}

func TestPeersForget(t *testing.T) {
	t.Parallel()
	ps := NewPeers(nil)
	feed(ps, 10*time.Second, time.Second, every(rare, 0, 10*time.Second, 2*time.Second))
	if ps.Len() != 1 {
		t.Fatalf("%d peers, want 1", ps.Len())
	}
	ps.Observe(at(10*time.Second+peerWindow), nil)
	if ps.Len() != 0 {
		t.Errorf("%d peers after %v of silence, want 0", ps.Len(), peerWindow)
	}
	ps = NewPeers(nil)
	var acts []PeerActivity
	for i := range maxPeers + 10 {
		acts = append(acts, PeerActivity{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Last: at(time.Duration(i) * time.Millisecond), Count: 1})
	}
	ps.Observe(at(time.Minute), acts)
	if ps.Len() != maxPeers {
		t.Errorf("%d peers, want the cap %d", ps.Len(), maxPeers)
	}
	if _, ok := ps.m[acts[0].Addr]; ok {
		t.Errorf("the longest-quiet peer %v was kept past the cap", acts[0].Addr)
	}
}

// TestDecide drives the rule with a drain that starts at 60s after a
// minute of learning; the offline takes effect at 60.2s.
func TestDecide(t *testing.T) {
	t.Parallel()
	const start = 60 * time.Second
	offline := at(start + 200*time.Millisecond)
	pol := Policy{Quiet: 2 * time.Second, Max: 30 * time.Second, CacheMax: 20 * time.Second}
	type want struct {
		end     time.Duration // drain end, from start
		reason  Reason
		pending []netip.Addr // not done at the end
	}
	tests := []struct {
		name    string
		pol     Policy
		ignore  []netip.Prefix
		offline time.Time
		calls   []calls
		want    want
	}{
		{
			name:  "nobody calls: Quiet after the start",
			calls: nil,
			want:  want{2 * time.Second, ReasonAllQuiet, nil},
		},
		{
			name:  "busy caller stops 3s in: Quiet after its last call",
			calls: []calls{every(busy, 0, start+3*time.Second, 5*time.Millisecond)},
			want:  want{3*time.Second - 5*time.Millisecond + 2*time.Second, ReasonAllQuiet, nil},
		},
		{
			// The global quiet window would end 2s after its last call;
			// it calls every 3s, so it is waited for 6s.
			name:  "rare caller every 3s stops 10s in",
			calls: []calls{every(rare, 500*time.Millisecond, start+10*time.Second, 3*time.Second)},
			want:  want{9500*time.Millisecond + 6*time.Second, ReasonAllQuiet, nil},
		},
		{
			name: "busy and rare: the rare one decides",
			calls: []calls{
				every(busy, 0, start+5*time.Second, 5*time.Millisecond),
				every(rare, 500*time.Millisecond, start+10*time.Second, 3*time.Second),
			},
			want: want{9500*time.Millisecond + 6*time.Second, ReasonAllQuiet, nil},
		},
		{
			name: "a prober never stops: cache-max after the offline",
			calls: []calls{
				every(busy, 0, start+5*time.Second, 5*time.Millisecond),
				every(probe, 0, start+time.Hour, time.Second),
			},
			want: want{20*time.Second + 200*time.Millisecond, ReasonCacheMax, []netip.Addr{probe}},
		},
		{
			name:   "an ignored prober is left out",
			ignore: []netip.Prefix{netip.MustParsePrefix("10.0.0.8/30")},
			calls: []calls{
				every(busy, 0, start+5*time.Second, 5*time.Millisecond),
				every(probe, 0, start+time.Hour, time.Second),
			},
			want: want{5*time.Second - 5*time.Millisecond + 2*time.Second, ReasonAllQuiet, nil},
		},
		{
			name:    "offline never took effect: no cache-max, the ceiling",
			offline: time.Time{},
			calls:   []calls{every(probe, 0, start+time.Hour, time.Second)},
			want:    want{30 * time.Second, ReasonCeiling, []netip.Addr{probe}},
		},
		{
			// The rule before per-peer drains: Quiet after anyone's last call.
			name:  "global window ends in the rare caller's gap",
			pol:   Policy{Quiet: 2 * time.Second, Max: 30 * time.Second, Global: true},
			calls: []calls{every(rare, 500*time.Millisecond, start+10*time.Second, 3*time.Second)},
			want:  want{500*time.Millisecond + 2*time.Second, ReasonAllQuiet, nil},
		},
		{
			name:  "min holds an early end",
			pol:   Policy{Quiet: 2 * time.Second, Min: 8 * time.Second, Max: 30 * time.Second},
			calls: []calls{every(busy, 0, start+3*time.Second, 5*time.Millisecond)},
			want:  want{8 * time.Second, ReasonAllQuiet, nil},
		},
		{
			name:  "min holds cache-max too",
			pol:   Policy{Quiet: 2 * time.Second, Min: 25 * time.Second, Max: 30 * time.Second, CacheMax: 20 * time.Second},
			calls: []calls{every(probe, 0, start+time.Hour, time.Second)},
			want:  want{25 * time.Second, ReasonCacheMax, []netip.Addr{probe}},
		},
		{
			name:  "cache-max beyond the ceiling",
			pol:   Policy{Quiet: 2 * time.Second, Max: 15 * time.Second, CacheMax: 20 * time.Second},
			calls: []calls{every(probe, 0, start+time.Hour, time.Second)},
			want:  want{15 * time.Second, ReasonCeiling, []netip.Addr{probe}},
		},
		{
			// Every caller through one address (a sidecar on loopback):
			// one busy peer, so the global quiet window, which ends 2s
			// after the busy traffic and loses the rare call at 6.5s.
			name:  "one address for all",
			calls: []calls{every(busy, 0, start+4*time.Second, 5*time.Millisecond), every(busy, 500*time.Millisecond, start+10*time.Second, 3*time.Second)},
			want:  want{4*time.Second - 5*time.Millisecond + 2*time.Second, ReasonAllQuiet, nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pol
			if tt.pol != (Policy{}) {
				p = tt.pol
			}
			off := offline
			if strings.HasPrefix(tt.name, "offline never") {
				off = tt.offline
			}
			ps := NewPeers(tt.ignore)
			// Merge calls from one address, as a Watcher would see them.
			merged := map[netip.Addr]*calls{}
			var cs []calls
			for _, c := range tt.calls {
				if m, ok := merged[c.addr]; ok {
					m.at = append(m.at, c.at...)
					continue
				}
				cc := c
				merged[c.addr] = &cc
			}
			for _, c := range merged {
				cs = append(cs, *c)
			}
			// Learn before the drain at the learning interval, then decide
			// as the drain does: sample every 100ms, or at Next if sooner.
			feed(ps, start-DefaultLearnInterval, DefaultLearnInterval, cs...)
			prev := start - DefaultLearnInterval
			now := at(start)
			for range 10000 {
				var acts []PeerActivity
				for _, c := range cs {
					a := PeerActivity{Addr: c.addr}
					for _, d := range c.at {
						if at(d).After(at(prev)) && !at(d).After(now) {
							if at(d).After(a.Last) {
								a.Last = at(d)
							}
							a.Count++
						}
					}
					if a.Count > 0 {
						acts = append(acts, a)
					}
				}
				ps.Observe(now, acts)
				d := ps.Decide(now, at(start), off, p)
				if d.End {
					if got := now.Sub(at(start)); got != tt.want.end || d.Reason != tt.want.reason {
						t.Errorf("ended %v after the start with %s, want %v with %s (pending %s)", got, d.Reason, tt.want.end, tt.want.reason, FormatPeers(d.Pending, now))
					}
					var pend []netip.Addr
					for _, r := range d.Pending {
						pend = append(pend, r.Addr)
					}
					if len(pend) != len(tt.want.pending) || (len(pend) > 0 && pend[0] != tt.want.pending[0]) {
						t.Errorf("pending at the end %v, want %v", pend, tt.want.pending)
					}
					return
				}
				if !d.Next.After(now) {
					t.Fatalf("Decide at %v: no end, and next %v is not later", now, d.Next)
				}
				prev = now.Sub(t0)
				next := now.Add(100 * time.Millisecond)
				if d.Next.Before(next) {
					next = d.Next
				}
				// Sample when each call lands too, so that ends are exact.
				for _, c := range cs {
					for _, dd := range c.at {
						if at(dd).After(now) && at(dd).Before(next) {
							next = at(dd)
						}
					}
				}
				now = next
			}
			t.Fatal("the drain never ended")
		})
	}
}

func TestFormatPeers(t *testing.T) {
	t.Parallel()
	now := at(10 * time.Second)
	rs := []PeerReport{
		{Addr: rare, Last: at(8 * time.Second), Gap: 3 * time.Second},
		{Last: at(9 * time.Second)},
	}
	got := FormatPeers(rs, now)
	want := "10.0.0.2 last 2s ago gap 3s; unattributed last 1s ago gap 0s"
	if got != want {
		t.Errorf("FormatPeers = %q, want %q", got, want)
	}
	if got := FormatPeers(nil, now); got != "-" {
		t.Errorf("FormatPeers(nil) = %q, want -", got)
	}
}

func TestStillCalling(t *testing.T) {
	t.Parallel()
	now := at(time.Minute)
	tests := []struct {
		name    string
		pending []PeerReport
		want    bool
	}{
		{"nobody pending", nil, false},
		{"a prober called 0.4s ago", []PeerReport{{Addr: probe, Last: now.Add(-400 * time.Millisecond), Gap: 500 * time.Millisecond}}, true},
		{"a rare caller within its gap", []PeerReport{{Addr: rare, Last: now.Add(-2 * time.Second), Gap: 3 * time.Second}}, true},
		// Past its gap, the drain only waits to be sure it stopped.
		{"a rare caller being confirmed", []PeerReport{{Addr: rare, Last: now.Add(-4 * time.Second), Gap: 3 * time.Second}}, false},
		{"a busy caller 1.5s ago, quiet 2s", []PeerReport{{Addr: busy, Last: now.Add(-1500 * time.Millisecond), Gap: 10 * time.Millisecond}}, true},
		// The drain began 20s ago: a caller quiet for longer is not
		// still calling, whatever gap it was given (issue 19's 127.0.0.1
		// "last 42.606s ago gap 48.397s" in a pod that lived 24s).
		{"quiet for longer than the drain ran", []PeerReport{{Addr: rare, Last: now.Add(-42 * time.Second), Gap: 48 * time.Second}}, false},
	}
	for _, tt := range tests {
		if got := stillCalling(tt.pending, now.Add(-20*time.Second), now, 2*time.Second); got != tt.want {
			t.Errorf("%s: stillCalling = %v, want %v", tt.name, got, tt.want)
		}
	}
}
