// Package selfconn records the local addresses of gracefulinit's own TCP
// connections to the app (readiness probes, warm-up requests, local hooks),
// so the drain can leave them out by socket rather than by address: loopback
// also carries sidecar and local-caller traffic that must still count.
//
// Every dial of ours that may reach the app goes through DialContext; the
// drain asks Contains for each remote address it sees on the app's side.
package selfconn

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Linger is how long a closed connection's address is still reported as
// ours: the app's side of the socket outlives our close (CLOSE_WAIT, a
// sample taken just before the close), and an ephemeral port is not reused
// that soon on a working machine.
const Linger = 2 * time.Minute

// Set is a set of local addresses of our own connections. The zero value is
// ready to use; it is safe for concurrent use.
type Set struct {
	mu     sync.Mutex
	open   map[netip.AddrPort]int       // address -> connections open on it
	closed map[netip.AddrPort]time.Time // address -> when its last one closed
	now    func() time.Time
}

// Default is the process-wide set the product's dialers record into.
var Default = &Set{}

// DialContext dials as net.Dialer does and records the connection's local
// address in Default until Linger after it is closed.
func DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return Default.DialContext(ctx, network, addr)
}

// Contains reports whether ap is the local address of one of our own
// connections in Default (open, or closed less than Linger ago).
func Contains(ap netip.AddrPort) bool { return Default.Contains(ap) }

// DialContext dials with a plain net.Dialer and records the connection.
func (s *Set) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	ap, ok := addrPort(c.LocalAddr())
	if !ok {
		return c, nil
	}
	s.add(ap)
	return &conn{Conn: c, set: s, ap: ap}, nil
}

// Contains reports whether ap is ours (open, or closed less than Linger ago).
func (s *Set) Contains(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[ap] > 0 {
		return true
	}
	at, ok := s.closed[ap]
	return ok && s.clock().Sub(at) < Linger
}

func (s *Set) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

func (s *Set) add(ap netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[netip.AddrPort]int{}
	}
	s.open[ap]++
	delete(s.closed, ap)
}

func (s *Set) remove(ap netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[ap]--; s.open[ap] > 0 {
		return
	}
	delete(s.open, ap)
	if s.closed == nil {
		s.closed = map[netip.AddrPort]time.Time{}
	}
	now := s.clock()
	s.closed[ap] = now
	for k, at := range s.closed { // bounded: old entries go as new ones come
		if now.Sub(at) >= Linger {
			delete(s.closed, k)
		}
	}
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := t.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

type conn struct {
	net.Conn
	set  *Set
	ap   netip.AddrPort
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.set.remove(c.ap) })
	return err
}
