//go:build linux

package drain

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requestOnce sends one request on a connection of its own, reads the
// answer and hangs up first, as curl does. It returns when the request
// was handed to the kernel.
func requestOnce(addr string) (span, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return span{}, err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	before := time.Now()
	if _, err := c.Write(request); err != nil {
		return span{}, err
	}
	sent := span{before, time.Now()}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return span{}, err
	}
	return sent, nil
}

// oneShotClient sends a request on a new connection every interval until
// ctx ends, and records the last one sent.
type oneShotClient struct {
	mu   sync.Mutex
	last span
	n    int
	err  error
	done chan struct{}
}

func startOneShotClient(ctx context.Context, addr string, interval time.Duration) *oneShotClient {
	c := &oneShotClient{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			sent, err := requestOnce(addr)
			c.mu.Lock()
			if err != nil && c.err == nil {
				c.err = err
			}
			if err == nil {
				c.last, c.n = sent, c.n+1
			}
			c.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return c
}

// wait waits for the client to stop and returns its last request, the
// number of requests and its first error.
func (c *oneShotClient) wait() (span, int, error) {
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.n, c.err
}

// TestQuietDrainClientClosesFirst is the traffic of a script or curl: a
// new connection per request, which the client closes once it has the
// answer, every 150 ms. The app's socket is gone within milliseconds, long
// before the next sample, and leaves no TIME_WAIT; the drain must see the
// traffic all the same, and end about Quiet after it stops.
func TestQuietDrainClientClosesFirst(t *testing.T) {
	t.Parallel()
	const (
		quiet = time.Second
		every = 150 * time.Millisecond
	)
	tests := []struct {
		name    string
		traffic time.Duration // how long the client goes on after the drain starts; 0: until it ends
		max     time.Duration
		want    Reason
	}{
		{"ends quiet after the traffic stops", 2 * time.Second, 10 * time.Second, ReasonAllQuiet},
		{"goes on while the traffic flows", 0, 3 * time.Second, ReasonCeiling},
	}
	for _, f := range families {
		for _, tt := range tests {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, f, serveRespond)
				log, buf := testLogger(t)
				drainCtx, stopDrain := context.WithCancel(t.Context())
				defer stopDrain()
				clientCtx, stopClient := context.WithCancel(t.Context())
				defer stopClient()
				o := Options{Policy: Policy{Max: tt.max, Quiet: quiet}, Ports: []int{srv.port}}
				start, ch := runAsync(drainCtx, o, log)
				c := startOneShotClient(clientCtx, srv.addr, every)

				var res Result
				if tt.traffic > 0 {
					select {
					case res = <-ch:
						stopClient()
						t.Fatalf("drain ended while the client was sending: %+v", res)
					case <-time.After(tt.traffic):
					}
					stopClient()
				}
				res = await(t, ch, tt.max+5*time.Second)
				end := start.Add(res.Elapsed)
				stopClient()
				last, n, err := c.wait()
				if err != nil {
					t.Fatalf("client: %v after %d requests", err, n)
				}
				t.Logf("%d requests; drain %+v", n, res)
				if n < 10 {
					t.Errorf("the client sent %d requests, want at least 10", n)
				}
				if res.Reason != tt.want || res.Fallback {
					t.Fatalf("result = %+v, want %q without fallback", res, tt.want)
				}
				if tt.want == ReasonCeiling {
					within(t, "elapsed", res.Elapsed, tt.max, tt.max+slack)
					return
				}
				// The last connection is dated from its destroy message as it
				// was read, up to an interval late.
				within(t, "end - last request - quiet", end.Sub(last.before)-quiet, -stampSlack, last.after.Sub(last.before)+DefaultInterval+lateSlack+slack)
				stamped(t, "LastActivity: the last request", res.LastActivity, last, DefaultInterval)
				if n := countLines(buf.String(), "destroy messages"); n != 0 {
					t.Errorf("destroy messages reported unreadable as root:\n%s", buf)
				}
			})
		}
	}
}

// TestWatcherGone checks what a destroy message counts for, against what
// the samples saw of the connection.
func TestWatcherGone(t *testing.T) {
	t.Parallel()
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, f, serveRespond)
			w := openTest(t, []int{srv.port}, reqConfig{modeLegacy, true})
			if w.gone == nil {
				t.Fatalf("destroyed sockets not watched: %v", w.goneErr)
			}
			sample(t, w)

			// A connection that comes and goes between two samples.
			sent, err := requestOnce(srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			srv.waitResponded(t, 1)
			s := sampleGone(t, w)
			if s.Gone != 1 || s.GoneUnseen != 1 || s.Conns != 0 {
				t.Errorf("after a connection between samples: %+v, want 1 gone unseen", s)
			}
			// Dated from its destroy message as it was read.
			stamped(t, "LastActivity: the request", s.LastActivity, sent, goneWait)

			// A keep-alive connection, seen, idle, closed by the client:
			// no request.
			c, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			roundTrip(t, c)
			time.Sleep(20 * time.Millisecond)
			seen := sample(t, w)
			if seen.Conns != 1 {
				t.Fatalf("keep-alive connection not seen: %+v", seen)
			}
			_ = c.Close()
			srv.waitResponded(t, 2)
			s = sampleGone(t, w)
			if s.Gone != 1 || s.GoneUnseen != 0 || !s.LastActivity.Equal(seen.LastActivity) {
				t.Errorf("idle keep-alive closed: %+v, want 1 gone and LastActivity still %v", s, seen.LastActivity)
			}

			// A keep-alive connection, seen, then one more request and the
			// client's close between two samples: that request counts.
			c2, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c2.Close() }()
			roundTrip(t, c2)
			time.Sleep(20 * time.Millisecond)
			sample(t, w)
			// Longer than lateSlack: the first request is caught.
			time.Sleep(2 * lateSlack)
			sent = roundTrip(t, c2)
			_ = c2.Close()
			srv.waitResponded(t, 3)
			s = sampleGone(t, w)
			if s.Gone != 1 || s.GoneUnseen != 0 {
				t.Errorf("keep-alive with a last request: %+v, want 1 gone, seen before", s)
			}
			stamped(t, "LastActivity: the last request on a known connection", s.LastActivity, sent, goneWait)
		})
	}
}

// goneWait is how long sampleGone waits between samples.
const goneWait = 20 * time.Millisecond

// sampleGone samples w until a destroy message has been read, as the
// kernel sends them from a work queue that a loaded machine runs late,
// and returns the last sample with Gone and GoneUnseen summed over all.
func sampleGone(t *testing.T, w *Watcher) Sample {
	t.Helper()
	var gone, unseen int
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := sample(t, w)
		gone += s.Gone
		unseen += s.GoneUnseen
		if gone > 0 || time.Now().After(deadline) {
			s.Gone, s.GoneUnseen = gone, unseen
			return s
		}
		time.Sleep(goneWait)
	}
}

// roundTrip sends one request on c and reads the answer.
func roundTrip(t *testing.T, c net.Conn) span {
	t.Helper()
	sent := sendSpan(t, c)
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("read: %v", err)
	}
	return sent
}

// TestGoneFilter checks the kernel-side port filter on the destroy
// messages: with p, p+1 and p+5 watched, connections to p+3, and the
// client ends of all of them, are never read.
func TestGoneFilter(t *testing.T) {
	t.Parallel()
	lns, p := listenRun(t, []int{0, 1, 3, 5})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
		wg.Wait()
	})
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					respond(c)
				}()
			}
		}()
	}
	tests := []struct {
		name     string
		filtered bool
	}{
		{"kernel filter", true},
		{"no kernel filter", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := openTest(t, []int{p, p + 1, p + 5}, reqConfig{modeLegacy, true})
			if w.gone == nil || !w.gone.filtered {
				t.Fatalf("destroy messages not watched through a filter: %v", w.goneErr)
			}
			if !tt.filtered {
				// Too many ranges for a filter.
				g, err := openGone(make([]portRange, maxFilterRanges+1), joinGroup)
				if err != nil {
					t.Fatal(err)
				}
				if g.filtered {
					t.Fatal("filtered with too many ranges")
				}
				_ = w.gone.close()
				w.gone = g
			}
			sample(t, w)
			for _, ln := range lns {
				if _, err := requestOnce(ln.Addr().String()); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			s := sample(t, w)
			if s.Gone != 3 || s.GoneUnseen != 3 {
				t.Errorf("sample %+v, want 3 unseen connections gone", s)
			}
			// Each connection has two ends, the server's and the client's,
			// and other tests close connections too.
			if tt.filtered && w.gone.msgs != 3 {
				t.Errorf("read %d destroy messages, want only the 3 watched", w.gone.msgs)
			}
			if !tt.filtered && w.gone.msgs < 8 {
				t.Errorf("read %d destroy messages without a filter, want at least 8", w.gone.msgs)
			}
		})
	}
}

// TestGoneJoinFails: without CAP_NET_ADMIN the destroy groups cannot be
// joined. The Watcher samples alone, and the drain says so once, at debug
// level, and otherwise works as before.
func TestGoneJoinFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		join    joinFunc
		wantErr error
	}{
		{"no permission", func(int, int) error { return unix.EPERM }, unix.EPERM},
		{"second group refused", func(fd, group int) error {
			if group == groupTCP6Destroy {
				return unix.EINVAL
			}
			return joinGroup(fd, group)
		}, unix.EINVAL},
		{"joined", joinGroup, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, families[0], serveRespond)
			log, buf := testLogger(t)
			o := Options{Policy: Policy{Max: 5 * time.Second, Quiet: 300 * time.Millisecond}, Ports: []int{srv.port}}
			var w *Watcher
			start := time.Now()
			res := run(t.Context(), o, log, learned{}, func(ports []int) (sampler, error) {
				var err error
				w, err = openWatcher(ports, nil, defaultConfigs, tt.join)
				return w, err
			})
			if res.Reason != ReasonAllQuiet || res.Fallback {
				t.Errorf("result %+v, want ReasonAllQuiet without fallback", res)
			}
			within(t, "elapsed", time.Since(start), o.Quiet, o.Quiet+lateSlack+slack)
			want := 0
			if tt.wantErr != nil {
				want = 1
				if w.gone != nil || !errors.Is(w.goneErr, tt.wantErr) {
					t.Errorf("Watcher gone %v, goneErr %v; want none and %v", w.gone, w.goneErr, tt.wantErr)
				}
			}
			if n := countLines(buf.String(), "level=DEBUG msg=\"drain: cannot read the kernel's socket destroy messages"); n != want {
				t.Errorf("%d debug lines about destroy messages, want %d:\n%s", n, want, buf)
			}
			if n := countLines(buf.String(), "level=WARN"); n != 0 {
				t.Errorf("unexpected warnings:\n%s", buf)
			}
		})
	}
}

// TestGoneOverflow: more destroy messages than the socket's queue holds.
// The kernel drops some and says so; the drain takes that as traffic at
// the time it learns of it, and reads what was queued.
func TestGoneOverflow(t *testing.T) {
	t.Parallel()
	srv := startServer(t, families[0], serveRespond)
	w := openTest(t, []int{srv.port}, reqConfig{modeLegacy, true})
	if w.gone == nil {
		t.Fatalf("destroyed sockets not watched: %v", w.goneErr)
	}
	// The smallest queue the kernel allows holds a message or two.
	if err := unix.SetsockoptInt(w.gone.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0); err != nil {
		t.Fatal(err)
	}
	sample(t, w)
	// Connections idle for 300 ms before the client closes them: read in
	// time, their messages would date them 300 ms back.
	conns := make([]net.Conn, 40)
	for i := range conns {
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		roundTrip(t, c)
		conns[i] = c
	}
	time.Sleep(300 * time.Millisecond)
	closed := time.Now()
	for _, c := range conns {
		_ = c.Close()
	}
	srv.waitResponded(t, int64(len(conns)))
	time.Sleep(100 * time.Millisecond)
	before := time.Now()
	s := sample(t, w)
	// The kernel sends the messages from a work queue, late on a loaded
	// machine: the overflow can come a sample or more later.
	gone := s.Gone
	for deadline := before.Add(5 * time.Second); s.LastActivity.Before(before) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		before = time.Now()
		s = sample(t, w)
		gone += s.Gone
	}
	s.Gone = gone
	// Usually a few messages fit the queue and are read; on a loaded
	// machine the kernel may drop every one (seen in a full make test).
	// What must hold is that not all are read and that the loss counts
	// as traffic (below).
	if s.Gone >= len(conns) {
		t.Errorf("sample %+v: want some, not all, of %d connections read as gone", s, len(conns))
	}
	if s.LastActivity.Before(before) || s.LastActivity.After(s.At) {
		t.Errorf("LastActivity %s after the close, want the overflow's discovery, %s to %s",
			s.LastActivity.Sub(closed), before.Sub(closed), s.At.Sub(closed))
	}
	if w.gone == nil {
		t.Errorf("overflow ended the watch: %v", w.goneErr)
	}
}

// destroyMsg lays out a destroy message about s, from local address src
// to remote port dport, as the kernel sends it.
func destroyMsg(s sock, family byte, src netip.Addr, dport uint16) []byte {
	m := s.msg()
	m[offFamily] = family
	m[offState] = 7 // TCP_CLOSE
	binary.BigEndian.PutUint16(m[offDport:], dport)
	a := src.As16()
	if family == unix.AF_INET {
		a4 := src.As4()
		a = [16]byte{}
		copy(a[:], a4[:])
	}
	copy(m[offSrc:], a[:])
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(m))
	binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+len(m)))
	binary.NativeEndian.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	return append(b, m...)
}

// TestParseGone drives destroy messages through parsing and the rules
// that decide what they count for, against a previous sample 100 ms
// earlier that saw some connections.
func TestParseGone(t *testing.T) {
	t.Parallel()
	const port = 8080
	lo4, lo6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(100 * time.Millisecond)
	at := t1.Add(time.Millisecond) // when the messages are read
	gone := func(c uint64, lastRecv time.Duration, bytes uint64) sock {
		return sock{port: port, cookie: c, info: true, lastRecv: lastRecv, bytes: bytes}
	}
	known := map[uint64]connState{
		10: {kind: kindFull, hasBytes: true, bytes: 10},
		11: {kind: kindTW},
	}
	tw := tuple{family: unix.AF_INET, sport: port, dport: 40000, src: [16]byte{127, 0, 0, 1}}
	tests := []struct {
		name       string
		data       []byte
		addrs      []netip.Addr
		wantLast   time.Time // zero: no activity
		wantGone   int
		wantUnseen int
	}{
		{
			name:       "unseen IPv4 connection dated by its last request",
			data:       destroyMsg(gone(1, 30*time.Millisecond, 101), unix.AF_INET, lo4, 40001),
			wantLast:   at.Add(-30 * time.Millisecond),
			wantGone:   1,
			wantUnseen: 1,
		},
		{
			name:       "unseen IPv6 connection",
			data:       destroyMsg(gone(1, 5*time.Millisecond, 101), unix.AF_INET6, lo6, 40001),
			wantLast:   at.Add(-5 * time.Millisecond),
			wantGone:   1,
			wantUnseen: 1,
		},
		{
			name: "two messages in one datagram",
			data: append(destroyMsg(gone(1, 50*time.Millisecond, 101), unix.AF_INET, lo4, 40001),
				destroyMsg(gone(2, 20*time.Millisecond, 101), unix.AF_INET6, lo6, 40002)...),
			wantLast:   at.Add(-20 * time.Millisecond),
			wantGone:   2,
			wantUnseen: 2,
		},
		{
			name:       "without tcp_info: dated to its reading",
			data:       destroyMsg(sock{port: port, cookie: 1}, unix.AF_INET, lo4, 40001),
			wantLast:   at,
			wantGone:   1,
			wantUnseen: 1,
		},
		{
			name:     "seen alive, only the peer's FIN since: no request",
			data:     destroyMsg(gone(10, 2*time.Second, 11), unix.AF_INET, lo4, 40001),
			wantGone: 1,
		},
		{
			name:     "seen alive, a request since",
			data:     destroyMsg(gone(10, 40*time.Millisecond, 15), unix.AF_INET, lo4, 40001),
			wantLast: at.Add(-40 * time.Millisecond),
			wantGone: 1,
		},
		{
			name:     "seen alive, a request since, stamp before the previous sample: its start",
			data:     destroyMsg(gone(10, 300*time.Millisecond, 15), unix.AF_INET, lo4, 40001),
			wantLast: t0,
			wantGone: 1,
		},
		{
			name:     "its TIME_WAIT socket seen, same cookie",
			data:     destroyMsg(gone(11, 10*time.Millisecond, 3), unix.AF_INET, lo4, 40001),
			wantGone: 1,
		},
		{
			name:     "its TIME_WAIT socket seen, same connection",
			data:     destroyMsg(gone(12, 10*time.Millisecond, 3), unix.AF_INET, lo4, 40000),
			wantGone: 1,
		},
		{
			name: "other port",
			data: destroyMsg(gone(1, 0, 1).onPort(9090), unix.AF_INET, lo4, 40001),
		},
		{
			name: "listener: no remote port",
			data: destroyMsg(gone(1, 0, 0), unix.AF_INET, lo4, 0),
		},
		{
			name:  "address not watched",
			data:  destroyMsg(gone(1, 0, 1), unix.AF_INET, lo4, 40001),
			addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")},
		},
		{
			name:       "watched address",
			data:       destroyMsg(gone(1, 0, 1), unix.AF_INET6, netip.MustParseAddr("::ffff:10.0.0.1"), 40001),
			addrs:      []netip.Addr{netip.MustParseAddr("10.0.0.1")},
			wantLast:   at,
			wantGone:   1,
			wantUnseen: 1,
		},
		{
			name: "not a socket message",
			data: func() []byte {
				b := destroyMsg(gone(1, 0, 1), unix.AF_INET, lo4, 40001)
				binary.NativeEndian.PutUint16(b[4:], unix.NLMSG_ERROR)
				return b
			}(),
		},
		{
			name: "short message",
			data: destroyMsg(gone(1, 0, 1), unix.AF_INET, lo4, 40001)[:nlmsgHdrLen+diagMsgLen-1],
		},
		{
			name: "length past the end",
			data: destroyMsg(gone(1, 0, 1), unix.AF_INET, lo4, 40001)[:nlmsgHdrLen+10],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := memWatcher(t, port, true)
			w.setAddrs(tt.addrs)
			w.begin(t0)
			for c, s := range known {
				w.cur[c] = s
			}
			w.gone.curTW[tw] = struct{}{}
			w.commit()
			w.begin(t1)
			w.parseGone(tt.data, at)
			w.settleGone()
			got := w.commit()
			if !got.LastActivity.Equal(tt.wantLast) {
				t.Errorf("LastActivity = %v, want %v", got.LastActivity.Sub(t0), tt.wantLast.Sub(t0))
			}
			if got.Gone != tt.wantGone || got.GoneUnseen != tt.wantUnseen {
				t.Errorf("sample %+v, want Gone %d, GoneUnseen %d", got, tt.wantGone, tt.wantUnseen)
			}
		})
	}
}

// TestSampleAllocsWithGone: reading destroy messages allocates nothing
// once the Watcher's buffers have grown to the traffic. Not parallel: it
// counts the process's allocations.
func TestSampleAllocsWithGone(t *testing.T) {
	srv := startServer(t, families[0], serveRespond)
	w := openTest(t, []int{srv.port}, reqConfig{modeLegacy, true})
	if w.gone == nil {
		t.Fatalf("destroyed sockets not watched: %v", w.goneErr)
	}
	for round := range 4 {
		for range 20 {
			if _, err := requestOnce(srv.addr); err != nil {
				t.Fatal(err)
			}
		}
		srv.waitResponded(t, int64(20*(round+1)))
		// The kernel sends the messages from a work queue, late on a
		// loaded machine: one sample may read only some.
		var n uint64
		unseen, gone := 0, 0
		deadline := time.Now().Add(5 * time.Second)
		for unseen < 20 && time.Now().Before(deadline) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s, err := w.Sample()
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			n += after.Mallocs - before.Mallocs
			unseen += s.GoneUnseen
			gone += s.Gone
			if unseen < 20 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if unseen != 20 {
			t.Fatalf("round %d: %d connections gone unseen, want 20", round, unseen)
		}
		t.Logf("round %d: %d allocations", round, n)
		if round > 0 && n > 0 {
			t.Errorf("round %d: %d allocations in samples that read %d destroy messages", round, n, gone)
		}
	}
}

// TestGoneLate: a connection that a sample saw alive vanishes from the
// next dump before its destroy message is sent (the kernel sends it from a
// work queue, which a loaded machine runs late), and the message comes a
// sample or more later. It is still a connection seen before: only data
// since that sample counts, dated no earlier than its start.
func TestGoneLate(t *testing.T) {
	t.Parallel()
	const port = 8080
	lo4 := netip.MustParseAddr("127.0.0.1")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const interval = 100 * time.Millisecond
	gone := func(lastRecv time.Duration, bytes uint64) []byte {
		return destroyMsg(sock{port: port, cookie: 10, info: true, lastRecv: lastRecv, bytes: bytes}, unix.AF_INET, lo4, 40001)
	}
	tests := []struct {
		name       string
		samples    int // between the one that saw it and the one that reads its message
		data       []byte
		wantLast   time.Duration // after t0; -1: no activity
		wantUnseen int
	}{
		{"idle, the peer's FIN only: no request", 1, gone(2*time.Second, 11), -1, 0},
		{"idle, two samples late", 2, gone(2*time.Second, 11), -1, 0},
		{"a request after the sample that saw it", 1, gone(150*time.Millisecond, 15), 2*interval + time.Millisecond - 150*time.Millisecond, 0},
		{"a request, stamp before that sample: its start", 1, gone(time.Second, 15), 0, 0},
		{"too late: forgotten, unseen", int(lateKeep/interval) + 2, gone(2*time.Second, 11), -1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := memWatcher(t, port, true)
			w.begin(t0)
			w.cur[10] = connState{kind: kindFull, state: tcpEstablished, hasBytes: true, bytes: 10}
			w.settleGone()
			w.commit()
			at := t0
			for i := range tt.samples {
				at = t0.Add(time.Duration(i+1) * interval)
				w.begin(at)
				w.settleGone()
				if s := w.commit(); s.Gone != 0 || !s.LastActivity.IsZero() {
					t.Fatalf("sample %d without the message: %+v", i+1, s)
				}
			}
			at = at.Add(interval)
			w.begin(at)
			read := at.Add(time.Millisecond)
			w.parseGone(tt.data, read)
			w.settleGone()
			got := w.commit()
			if tt.wantLast < 0 && tt.wantUnseen == 0 && !got.LastActivity.IsZero() {
				t.Errorf("LastActivity %v after the first sample, want none", got.LastActivity.Sub(t0))
			}
			if tt.wantLast >= 0 && !got.LastActivity.Equal(t0.Add(tt.wantLast)) {
				t.Errorf("LastActivity %v after the first sample, want %v", got.LastActivity.Sub(t0), tt.wantLast)
			}
			if got.Gone != 1 || got.GoneUnseen != tt.wantUnseen {
				t.Errorf("sample %+v, want Gone 1, GoneUnseen %d", got, tt.wantUnseen)
			}
			if len(w.gone.late) != 0 {
				t.Errorf("%d connections still waiting for their message", len(w.gone.late))
			}
		})
	}
}
