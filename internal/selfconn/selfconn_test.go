package selfconn

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func listen(t *testing.T) (net.Listener, chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return ln, accepted
}

// ends is the connection as the app sees it: the peer (our side) and its own address.
func ends(c net.Conn) (peer, app netip.AddrPort) {
	return c.RemoteAddr().(*net.TCPAddr).AddrPort(), c.LocalAddr().(*net.TCPAddr).AddrPort()
}

func TestSetRecordsOwnConnections(t *testing.T) {
	ln, accepted := listen(t)
	now := time.Unix(1000, 0)
	s := &Set{now: func() time.Time { return now }}
	c, err := s.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	t.Cleanup(func() { srv.Close() })
	peer, app := ends(srv)
	if !s.Contains(peer, app) {
		t.Fatalf("open connection %v -> %v not reported as ours", peer, app)
	}
	for _, other := range []struct{ peer, app netip.AddrPort }{
		{netip.AddrPortFrom(peer.Addr(), peer.Port()+1), app},  // another port of the same address
		{peer, netip.AddrPortFrom(app.Addr(), app.Port()+1)},   // the same port towards another server
		{peer, netip.MustParseAddrPort("127.0.0.9:" + "8080")}, // the same port towards another address
	} {
		if s.Contains(other.peer, other.app) {
			t.Fatalf("%v -> %v reported as ours, only %v -> %v is", other.peer, other.app, peer, app)
		}
	}
	c.Close()
	c.Close() // a second close must not unbalance the count
	now = now.Add(Linger - time.Second)
	if !s.Contains(peer, app) {
		t.Fatal("a connection closed less than Linger ago is no longer ours")
	}
	now = now.Add(2 * time.Second)
	if s.Contains(peer, app) {
		t.Fatal("a connection closed more than Linger ago is still ours")
	}
}

// TestSetKnowsADialInFlight: the port is ours from before the connect, so
// the app's side of the connection is never seen unclaimed (a sample
// taken between the kernel's handshake and the dial's return).
func TestSetKnowsADialInFlight(t *testing.T) {
	ln, accepted := listen(t)
	s := &Set{}
	type result struct {
		c   net.Conn
		err error
	}
	// The handshake completes in the kernel before the dial returns; the
	// accepted side is checked as soon as it exists, racing the dial.
	dialed := make(chan result, 1)
	go func() {
		c, err := s.DialContext(context.Background(), "tcp", ln.Addr().String())
		dialed <- result{c, err}
	}()
	srv := <-accepted
	t.Cleanup(func() { srv.Close() })
	peer, app := ends(srv)
	if !s.Contains(peer, app) {
		t.Fatalf("connection %v -> %v not ours while its dial returns", peer, app)
	}
	r := <-dialed
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.c.Close()
	if len(s.pending) != 0 {
		t.Fatalf("ports still pending after the dial: %v", s.pending)
	}
}

func TestSetDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Set{}
	if _, err := s.DialContext(context.Background(), "tcp", addr); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if len(s.open) != 0 || len(s.pending) != 0 {
		t.Fatalf("a failed dial was recorded: open %v, pending %v", s.open, s.pending)
	}
}

func TestSetIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			done <- c
		}
	}()
	s := &Set{}
	c, err := s.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-done
	defer srv.Close()
	if peer, app := ends(srv); !s.Contains(peer, app) {
		t.Fatalf("IPv6 connection %v -> %v not ours", peer, app)
	}
}

// TestSetReleasesEveryAttempt: no port stays pending after a dial returns,
// whether it connected or failed (a pending port is ours towards its destination, so
// a leaked one would hide a real caller for good). Where localhost also
// names ::1, the first dial tries two sockets, a port each.
func TestSetReleasesEveryAttempt(t *testing.T) {
	ln, accepted := listen(t) // IPv4 only
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := &Set{}
	for _, addr := range []string{"localhost:" + port, "127.0.0.1:" + port} {
		c, err := s.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		srv := <-accepted
		c.Close()
		srv.Close()
	}
	if _, err := s.DialContext(context.Background(), "tcp", "[::1]:1"); err == nil {
		t.Fatal("dial to [::1]:1 succeeded")
	}
	if len(s.pending) != 0 {
		t.Fatalf("ports still pending after the dials: %v", s.pending)
	}
}
