package ready

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

func TestHTTPProbe(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 503 for the first two probes, as an app that is still starting.
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Wait(ctx, HTTP{URL: srv.URL}, 20*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d probes, want 3 (ready on the first 2xx)", calls.Load())
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet
	done := make(chan error, 1)
	go func() { done <- Wait(context.Background(), TCP{Addr: addr}, 20*time.Millisecond, 10*time.Second) }()
	time.Sleep(100 * time.Millisecond)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := <-done; err != nil {
		t.Fatalf("probe did not see the port open: %v", err)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	start := time.Now()
	err := Wait(context.Background(), HTTP{URL: srv.URL}, 20*time.Millisecond, time.Second)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want a timeout naming the last answer", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the timeout was not honoured")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, HTTP{URL: srv.URL}, time.Second, 0); err == nil {
		t.Fatal("a cancelled wait must fail")
	}
}

// TestProbesAreOwnConnections: both probes dial through selfconn, so the
// app's side of each connection, its remote address, is one the drain
// leaves out (a readiness probe is no caller of the app).
func TestProbesAreOwnConnections(t *testing.T) {
	remotes := make(chan [2]string, 16) // the peer and the server's own address
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remotes <- [2]string{r.RemoteAddr, r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tcp.Close() })
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			remotes <- [2]string{c.RemoteAddr().String(), c.LocalAddr().String()}
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []Probe{HTTP{URL: "http://" + ln.Addr().String() + "/"}, TCP{Addr: tcp.Addr().String()}} {
		if err := p.Check(ctx); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var ends [2]string
		select {
		case ends = <-remotes:
		case <-ctx.Done():
			t.Fatalf("%s: the server saw no connection", p)
		}
		peer, app := netip.MustParseAddrPort(ends[0]), netip.MustParseAddrPort(ends[1])
		if !selfconn.Contains(peer, app) {
			t.Errorf("%s: the app sees the probe from %s, which selfconn does not report as ours", p, peer)
		}
	}
	// A connection of someone else's is not ours.
	c, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ends := <-remotes; selfconn.Contains(netip.MustParseAddrPort(ends[0]), netip.MustParseAddrPort(ends[1])) {
		t.Errorf("selfconn reports %s, a plain dial, as ours", ends[0])
	}
}
