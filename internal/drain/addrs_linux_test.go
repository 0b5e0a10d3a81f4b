package drain

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TestLimitAddrs: two apps on one port at different loopback addresses, as
// pods sharing a network namespace. Traffic to one must not keep the
// other's drain going.
func TestLimitAddrs(t *testing.T) {
	lnA, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnA.Close() })
	port := lnA.Addr().(*net.TCPAddr).Port
	lnB, err := net.Listen("tcp", "127.0.0.3:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnB.Close() })
	for _, ln := range []net.Listener{lnA, lnB} {
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
			}
		}(ln)
	}

	tests := []struct {
		name       string
		addrs      []netip.Addr
		wantActive bool
	}{
		{"limited to the idle app", []netip.Addr{netip.MustParseAddr("127.0.0.2")}, false},
		{"limited to the busy app", []netip.Addr{netip.MustParseAddr("127.0.0.3")}, true},
		{"IPv4-mapped form matches", []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.3")}, true},
		{"no limit sees both", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWatcher([]int{port})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			w.LimitAddrs(tt.addrs)
			if _, err := w.Sample(); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", lnB.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(request); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			s, err := w.Sample()
			if err != nil {
				t.Fatal(err)
			}
			if got := s.New > 0; got != tt.wantActive {
				t.Fatalf("new connections seen = %d, want activity %v", s.New, tt.wantActive)
			}
		})
	}
}

// TestQuietDrainLimitedToAddrs: an app listening on the wildcard address,
// watched for one local address only. Traffic to another address of the
// same port does not keep the drain going, and the wildcard listener
// counts as listening on the watched address.
func TestQuietDrainLimitedToAddrs(t *testing.T) {
	t.Parallel()
	const quiet, max = 400 * time.Millisecond, 1500 * time.Millisecond
	tests := []struct {
		name     string
		busyHost string
		want     Reason
	}{
		{"traffic to another address", "127.0.0.3", ReasonAllQuiet},
		{"traffic to the watched address", "127.0.0.2", ReasonCeiling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, family{"wildcard", "0.0.0.0", tt.busyHost}, serveRead)
			c := dial(t, srv)
			log, buf := testLogger(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			o := Options{Policy: Policy{Max: max, Quiet: quiet}, Ports: []int{srv.port}, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}}
			_, ch := runAsync(ctx, o, log)
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				for ctx.Err() == nil {
					if _, err := c.Write(request); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			res := await(t, ch, 10*time.Second)
			cancel()
			<-stopped
			if res.Reason != tt.want {
				t.Errorf("result %+v, want %q", res, tt.want)
			}
			if tt.want == ReasonAllQuiet {
				within(t, "elapsed", res.Elapsed, quiet, quiet+slack)
			}
			if n := countLines(buf.String(), "level=WARN"); n != 0 {
				t.Errorf("unexpected warnings:\n%s", buf)
			}
		})
	}
}

// TestLimitAddrsForgets: activity seen on other addresses before
// LimitAddrs does not stay in LastActivity.
func TestLimitAddrsForgets(t *testing.T) {
	t.Parallel()
	srv := startServer(t, family{"wildcard", "0.0.0.0", "127.0.0.3"}, serveRead)
	c := dial(t, srv)
	send(t, c)
	w := openTest(t, []int{srv.port}, reqConfig{modeLegacy, true})
	if s := sample(t, w); s.LastActivity.IsZero() {
		t.Fatalf("sample %+v saw no activity", s)
	}
	w.LimitAddrs([]netip.Addr{netip.MustParseAddr("127.0.0.2")})
	if s := sample(t, w); !s.LastActivity.IsZero() || s.Conns != 0 || s.Listeners != 1 {
		t.Errorf("after LimitAddrs: %+v, want the wildcard listener and nothing else", s)
	}
}
