//go:build linux

package drain

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// caller sends a request every period on a keep-alive connection from its
// own loopback address, until stopped; it returns when it last sent. Its
// connection stays open (idle in its pool) until closed, or the test ends.
type caller struct {
	addr   netip.Addr
	conn   net.Conn
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	last   time.Time
}

func startCaller(t *testing.T, srv *server, from string, period time.Duration) *caller {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", srv.addr, from, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cl := &caller{addr: netip.MustParseAddr(from), conn: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			// Read before the write: after it, a loaded machine can add
			// its wait for a CPU, and the call look later than it was.
			at := time.Now()
			if _, err := c.Write(request); err != nil {
				return
			}
			cl.mu.Lock()
			cl.last = at
			cl.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cl.stop(); _ = c.Close() })
	return cl
}

func (c *caller) stop() time.Time {
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// TestLearnerWaitsForRareCaller: a busy caller and a rare one (every
// 600ms) call from their own addresses while the app runs; after the drain
// starts both go on for a while, then stop. A global quiet window of 300ms
// would end in the rare caller's next gap; the learned drain waits twice
// its gap after its last call, and names it.
func TestLearnerWaitsForRareCaller(t *testing.T) {
	t.Parallel()
	srv := startServer(t, families[0], serveRead)
	const rareGap = 600 * time.Millisecond
	busy := startCaller(t, srv, "127.0.100.1", 20*time.Millisecond)
	rare := startCaller(t, srv, "127.0.100.2", rareGap)
	prober := startCaller(t, srv, "127.0.100.3", 100*time.Millisecond)
	log, _ := testLogger(t)
	o := Options{Policy: Policy{Max: 20 * time.Second, Quiet: 300 * time.Millisecond}, Ports: []int{srv.port}, LearnInterval: 500 * time.Millisecond, Ignore: []netip.Prefix{netip.MustParsePrefix("127.0.100.3/32")}}
	l := Learn(o, log)
	t.Cleanup(l.Stop)
	time.Sleep(4 * time.Second)
	ch := make(chan Result, 1)
	start := time.Now()
	go func() { ch <- l.Drain(t.Context(), o, log) }()
	time.Sleep(time.Second)
	busyLast := busy.stop()
	time.Sleep(time.Second)
	rareLast := rare.stop()
	res := await(t, ch, 15*time.Second)
	end := start.Add(res.Elapsed)
	prober.stop()
	if res.Reason != ReasonAllQuiet {
		t.Fatalf("drain ended with %s, want %s (%+v)", res.Reason, ReasonAllQuiet, res)
	}
	t.Logf("busy stopped %v, rare %v after the start; drain ended after %v; slowest: %s",
		busyLast.Sub(start), rareLast.Sub(start), res.Elapsed, FormatPeers(res.Slowest, end))
	if len(res.Slowest) == 0 || res.Slowest[0].Addr != rare.addr {
		t.Fatalf("slowest peers %s, want %v first", FormatPeers(res.Slowest, end), rare.addr)
	}
	// Its longest gap: 600ms, or more where the loaded machine held a
	// call back, never less.
	gap := res.Slowest[0].Gap
	within(t, "rare caller's learned gap", gap, rareGap-50*time.Millisecond, 3*rareGap)
	// Twice that after its last call, give or take the dating of the call.
	within(t, "rare caller's last call to the drain's end", end.Sub(rareLast), 2*gap-stampSlack, 2*gap+lateSlack+500*time.Millisecond)
	for _, r := range res.Slowest {
		if r.Addr == prober.addr {
			t.Errorf("the ignored prober %v is among the slowest peers", prober.addr)
		}
	}
}

// TestLearnerStop: Stop ends the learning goroutine, and a Drain after it
// still drains, knowing nothing.
func TestLearnerStop(t *testing.T) {
	t.Parallel()
	srv := startServer(t, families[0], serveRead)
	o := Options{Policy: Policy{Max: 2 * time.Second, Quiet: 200 * time.Millisecond}, Ports: []int{srv.port}, LearnInterval: 50 * time.Millisecond}
	l := Learn(o, nil)
	time.Sleep(200 * time.Millisecond)
	l.Stop()
	l.Stop()
	res := l.Drain(t.Context(), o, nil)
	if res.Reason != ReasonAllQuiet || res.Samples == 0 {
		t.Errorf("drain after Stop: %+v, want a watched all-quiet end", res)
	}
}

// TestLearnerIgnoresConnectionsClosedBeforeIt: TIME_WAIT sockets on the
// app's port that a previous process left (a container restarted in the
// same pod's network namespace, an app restarted on a host) were closed
// before the app started. They are no caller of this app: the drain does
// not wait for them as rare callers up to its ceiling, and never names a
// caller quiet for longer than the pod has lived.
func TestLearnerIgnoresConnectionsClosedBeforeIt(t *testing.T) {
	t.Parallel()
	srv := startServer(t, families[0], serveWriteClose)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.100.9")}, Timeout: 5 * time.Second}
	for range 3 {
		c, err := d.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		_, _ = io.ReadAll(c) // the server writes a byte and closes first: TIME_WAIT on its side
		_ = c.Close()
	}
	time.Sleep(300 * time.Millisecond) // closed well before the learner starts
	log, _ := testLogger(t)
	o := Options{Policy: Policy{Max: 4 * time.Second, Quiet: 200 * time.Millisecond, CacheMax: 40 * time.Second}, Ports: []int{srv.port}, LearnInterval: 100 * time.Millisecond}
	l := Learn(o, log)
	t.Cleanup(l.Stop)
	time.Sleep(500 * time.Millisecond)
	res := l.Drain(t.Context(), o, log)
	if res.Reason != ReasonAllQuiet || len(res.Slowest) > 0 {
		t.Fatalf("drain ended with %s after %v, slowest %s: want %s and no caller (the connections were closed before learning began)",
			res.Reason, res.Elapsed, FormatPeers(res.Slowest, res.At), ReasonAllQuiet)
	}
}
