package selfconn

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestSetRecordsOwnConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()

	now := time.Unix(1000, 0)
	s := &Set{now: func() time.Time { return now }}
	c, err := s.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	t.Cleanup(func() { peer.Close() })
	// The app sees our local address as its remote one.
	remote := peer.RemoteAddr().(*net.TCPAddr).AddrPort()
	if !s.Contains(remote) {
		t.Fatalf("open connection %v not reported as ours", remote)
	}
	other := netip.AddrPortFrom(remote.Addr(), remote.Port()+1)
	if s.Contains(other) {
		t.Fatalf("%v reported as ours, only %v is", other, remote)
	}
	c.Close()
	c.Close() // a second close must not unbalance the count
	now = now.Add(Linger - time.Second)
	if !s.Contains(remote) {
		t.Fatal("a connection closed less than Linger ago is no longer ours")
	}
	now = now.Add(2 * time.Second)
	if s.Contains(remote) {
		t.Fatal("a connection closed more than Linger ago is still ours")
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
	if len(s.open) != 0 {
		t.Fatalf("a failed dial was recorded: %v", s.open)
	}
}
