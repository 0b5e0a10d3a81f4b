//go:build linux

package drain

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

// ping is an HTTP/2 PING frame: 9 bytes of frame header, 8 of payload.
var ping = []byte{0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}

// startPingServer answers each read of at most len(ping) bytes with a
// PING ACK of the same size, and anything longer with a 512-byte reply, as
// an HTTP/2 or gRPC server does.
func startPingServer(t *testing.T) *server {
	t.Helper()
	ln := listenLow(t, "127.0.0.1")
	s := &server{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, addr: ln.Addr().String()}
	reply := make([]byte, 512)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				b := make([]byte, 4096)
				for {
					n, err := c.Read(b)
					if err != nil {
						return
					}
					out := reply
					if n <= len(ping) {
						out = ping
					}
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

// exchange writes b on c and reads the answer; it returns when it wrote.
func exchange(t *testing.T, c net.Conn, b []byte, answer int) time.Time {
	t.Helper()
	at := time.Now()
	if _, err := c.Write(b); err != nil {
		t.Errorf("write: %v", err)
		return at
	}
	buf := make([]byte, answer)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got := 0; got < answer; {
		n, err := c.Read(buf[got:])
		if err != nil {
			t.Errorf("read: %v", err)
			return at
		}
		got += n
	}
	return at
}

// TestKeepalivesAreNotCalls: a client pings every 100ms through the whole
// drain on a connection that also carried two calls. The pings (17 bytes,
// answered with 17) are not calls: the drain ends Quiet after the last
// call, not at its ceiling.
func TestKeepalivesAreNotCalls(t *testing.T) {
	t.Parallel()
	srv := startPingServer(t)
	c := dial(t, srv)
	const quiet = 500 * time.Millisecond
	log, _ := testLogger(t)
	o := Options{Policy: Policy{Max: 8 * time.Second, Quiet: quiet}, Ports: []int{srv.port}, Interval: 50 * time.Millisecond}
	start, ch := runAsync(t.Context(), o, log)
	var mu sync.Mutex // one exchange at a time on c
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			exchange(t, c, ping, len(ping))
			mu.Unlock()
		}
	}()
	var last time.Time
	for range 2 {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		last = exchange(t, c, request, 512)
		mu.Unlock()
	}
	res := await(t, ch, 15*time.Second)
	cancel()
	wg.Wait()
	if res.Reason != ReasonAllQuiet {
		t.Fatalf("drain ended with %s after %v, want %s: the pings held it (%s)", res.Reason, res.Elapsed, ReasonAllQuiet, FormatPeers(res.Slowest, res.At))
	}
	within(t, "last call to the drain's end", start.Add(res.Elapsed).Sub(last), quiet-stampSlack, quiet+lateSlack+slack)
}

// TestLetGoEndsDrain: a caller that calls every 1.5s over two pooled
// connections closes both 1s into the drain, as a client whose resolver
// dropped the instance does. It is done a second after that, not three
// seconds after its last call; when the app closes them instead (an idle
// timeout), the caller has not let go and keeps the gap rule.
func TestLetGoEndsDrain(t *testing.T) {
	t.Parallel()
	for _, appCloses := range []bool{false, true} {
		name := "caller closes"
		if appCloses {
			name = "app closes"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, families[0], serveRead)
			const gap = 1500 * time.Millisecond
			from := "127.0.101.1"
			if appCloses {
				from = "127.0.101.2"
			}
			cl := startCaller(t, srv, from, gap)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
			second, err := d.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = second.Close() })
			send(t, second)
			o := Options{Policy: Policy{Max: 10 * time.Second, Quiet: 300 * time.Millisecond}, Ports: []int{srv.port}, LearnInterval: 200 * time.Millisecond}
			l := Learn(o, nil)
			t.Cleanup(l.Stop)
			time.Sleep(5 * time.Second)
			start := time.Now()
			ch := make(chan Result, 1)
			go func() { ch <- l.Drain(t.Context(), o, nil) }()
			time.Sleep(time.Second)
			last := cl.stop()
			closed := time.Now()
			if appCloses {
				srv.mu.Lock()
				for _, c := range srv.conns {
					_ = c.Close()
				}
				srv.mu.Unlock()
			} else {
				_ = cl.conn.Close()
				_ = second.Close()
			}
			res := await(t, ch, 15*time.Second)
			end := start.Add(res.Elapsed)
			if res.Reason != ReasonAllQuiet {
				t.Fatalf("drain ended with %s, want %s", res.Reason, ReasonAllQuiet)
			}
			t.Logf("last call %v, close %v, end %v after the start; slowest %s", last.Sub(start), closed.Sub(start), res.Elapsed, FormatPeers(res.Slowest, end))
			if appCloses {
				// Twice its gap after its last call.
				if got := end.Sub(last); got < 2*gap-stampSlack {
					t.Errorf("drain ended %v after the last call, want at least twice its gap %v: the app's close is no let-go", got, gap)
				}
				return
			}
			within(t, "close to the drain's end", end.Sub(closed), letGoQuiet-stampSlack, letGoQuiet+lateSlack+slack)
			if len(res.Slowest) == 0 || res.Slowest[0].Rule != RuleLetGo {
				t.Errorf("slowest %s: want the caller, let go", FormatPeers(res.Slowest, end))
			}
		})
	}
}

// TestOwnConnectionsLeftOut: gracefulinit's own probe of the app (through
// selfconn) calls every 50ms through the drain, from loopback like any
// local caller. It is left out by socket: the drain ends Quiet after its
// start and knows no peer; a caller from the same address that is not
// ours still counts.
func TestOwnConnectionsLeftOut(t *testing.T) {
	t.Parallel()
	srv := startServer(t, families[0], serveRead)
	const quiet = 400 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// A set of its own: selfconn.Default keeps a closed connection's
	// address for selfconn.Linger, and a parallel test's client that the
	// kernel gives the same loopback port (to another server) would be
	// left out of that test's drain.
	var own selfconn.Set
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			c, err := own.DialContext(ctx, "tcp", srv.addr)
			if err == nil {
				_, _ = c.Write(request)
				time.Sleep(20 * time.Millisecond)
				_ = c.Close()
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	o := Options{Policy: Policy{Max: 5 * time.Second, Quiet: quiet}, Ports: []int{srv.port}}
	res := run(t.Context(), o, nil, learned{}, func(ports []int) (sampler, error) {
		w, err := NewWatcher(ports)
		if err != nil {
			return nil, err
		}
		// Its first sample asked selfconn.Default: take it again.
		w.isSelf = own.Contains
		w.forget()
		if w.first, err = w.Sample(); err != nil {
			_ = w.Close()
			return nil, err
		}
		w.first.Peers = slices.Clone(w.first.Peers)
		return w, nil
	})
	if res.Reason != ReasonAllQuiet || res.Peers != 0 {
		t.Fatalf("drain %s after %v with %d peers (%s), want %s after %v with none: our own probe counted as a caller",
			res.Reason, res.Elapsed, res.Peers, FormatPeers(res.Slowest, res.At), ReasonAllQuiet, quiet)
	}
	within(t, "drain", res.Elapsed, quiet-stampSlack, quiet+lateSlack+slack)

	// The same address, not through selfconn: a caller.
	c := dial(t, srv)
	send(t, c)
	res = RunDetailed(t.Context(), Options{Policy: Policy{Max: 5 * time.Second, Quiet: quiet}, Ports: []int{srv.port}}, nil)
	cancel()
	wg.Wait()
	if res.Peers != 1 || len(res.Slowest) != 1 || res.Slowest[0].Addr != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("drain saw %d peers (%s), want the plain caller 127.0.0.1", res.Peers, FormatPeers(res.Slowest, res.At))
	}
}
