// Package selfconn records gracefulinit's own TCP connections (readiness
// probes, warm-up requests, hooks), so the drain can leave them out by
// socket rather than by address: loopback also carries sidecar and
// local-caller traffic that must still count.
//
// Every dial of ours goes through DialContext; the drain asks Contains for
// each connection it sees on the app's side, with both of its ends.
package selfconn

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Linger is how long a closed connection is still reported as ours: the
// app's side of the socket can outlive our close (CLOSE_WAIT), and the
// drain's learner may first see it up to 30 s later. A connection is known
// by both its ends, so a caller that later reuses the port (towards the
// app, or one of ours that went elsewhere) is not mistaken for ours.
const Linger = 45 * time.Second

// Set is a set of our own connections. The zero value is ready to use; it
// is safe for concurrent use.
type Set struct {
	mu      sync.Mutex
	open    map[conn4]int       // connection -> how many are open (1, but for tests' reuse)
	closed  map[conn4]time.Time // connection -> when it closed
	pending map[pendingDial]int // a dial whose connect has not returned: its bound port and destination
	now     func() time.Time
}

// conn4 is a connection from our side: our address, and the app's.
type conn4 struct{ local, remote netip.AddrPort }

// pendingDial is a dial in flight: the port bound for it (its address is
// the kernel's choice at connect) and where it goes.
type pendingDial struct {
	port   uint16
	remote netip.AddrPort
}

// Default is the process-wide set the product's dialers record into.
var Default = &Set{}

// DialContext dials as net.Dialer does and records the connection in
// Default, from before its connect until Linger after its close.
func DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return Default.DialContext(ctx, network, addr)
}

// Contains reports whether the connection the app sees from peer to its
// own address app is one of ours in Default.
func Contains(peer, app netip.AddrPort) bool { return Default.Contains(peer, app) }

// DialContext dials and records the connection. The local port is bound
// before the connect and recorded then, so the app's side of the
// connection is never seen, not even for a moment, without being ours.
func (s *Set) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	// One dial may try several addresses (localhost: ::1, then 127.0.0.1),
	// a socket and a port each; every port is released when it returns.
	var mu sync.Mutex
	var dials []pendingDial
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range dials {
			s.pend(p, -1)
		}
	}()
	d := net.Dialer{ControlContext: func(_ context.Context, nw, dest string, rc syscall.RawConn) error {
		var port uint16
		var err error
		if cerr := rc.Control(func(fd uintptr) { port, err = bindEphemeral(int(fd), nw) }); cerr != nil {
			return cerr
		}
		if err != nil {
			return err
		}
		to, err := netip.ParseAddrPort(dest)
		if err != nil {
			return nil // not an ip:port: never seen by the drain
		}
		p := pendingDial{port: port, remote: unmap(to)}
		s.pend(p, 1)
		mu.Lock()
		dials = append(dials, p)
		mu.Unlock()
		return nil
	}}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	k, ok := keyOf(c.LocalAddr(), c.RemoteAddr())
	if !ok {
		return c, nil
	}
	s.add(k)
	return &ownConn{Conn: c, set: s, k: k}, nil
}

// bindEphemeral binds the socket to an ephemeral port of any address
// before its connect and returns the port. A port bound so is the socket's
// alone until it closes: no other connection shares it meanwhile.
func bindEphemeral(fd int, network string) (uint16, error) {
	var sa unix.Sockaddr = &unix.SockaddrInet4{}
	if network == "tcp6" {
		sa = &unix.SockaddrInet6{}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return uint16(a.Port), nil
	case *unix.SockaddrInet6:
		return uint16(a.Port), nil
	}
	return 0, nil
}

// Contains reports whether the connection from peer to app, as the app
// sees it, is ours: open, closed less than Linger ago, or being dialled
// to app from peer's port.
func (s *Set) Contains(peer, app netip.AddrPort) bool {
	k := conn4{local: unmap(peer), remote: unmap(app)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[k] > 0 || s.pending[pendingDial{port: k.local.Port(), remote: k.remote}] > 0 {
		return true
	}
	at, ok := s.closed[k]
	return ok && s.clock().Sub(at) < Linger
}

func (s *Set) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

func (s *Set) pend(p pendingDial, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[pendingDial]int{}
	}
	if s.pending[p] += d; s.pending[p] <= 0 {
		delete(s.pending, p)
	}
}

func (s *Set) add(k conn4) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[conn4]int{}
	}
	s.open[k]++
	delete(s.closed, k)
}

func (s *Set) remove(k conn4) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[k]--; s.open[k] > 0 {
		return
	}
	delete(s.open, k)
	if s.closed == nil {
		s.closed = map[conn4]time.Time{}
	}
	now := s.clock()
	s.closed[k] = now
	for old, at := range s.closed { // bounded: old entries go as new ones come
		if now.Sub(at) >= Linger {
			delete(s.closed, old)
		}
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func keyOf(local, remote net.Addr) (conn4, bool) {
	l, ok1 := local.(*net.TCPAddr)
	r, ok2 := remote.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return conn4{}, false
	}
	return conn4{local: unmap(l.AddrPort()), remote: unmap(r.AddrPort())}, true
}

type ownConn struct {
	net.Conn
	set  *Set
	k    conn4
	once sync.Once
}

func (c *ownConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.set.remove(c.k) })
	return err
}
