//go:build linux

package drain

import (
	"net"
	"testing"
	"time"
)

// dial connects to s and closes the connection at the end of the test.
func dial(t testing.TB, s *server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// send writes one request and returns when it was handed to the kernel,
// which on loopback is when the server's socket received it.
func send(t testing.TB, c net.Conn) time.Time {
	t.Helper()
	if _, err := c.Write(request); err != nil {
		t.Errorf("write: %v", err)
	}
	return time.Now()
}

// sendSpan is send, returning when the request was written.
func sendSpan(t testing.TB, c net.Conn) span {
	t.Helper()
	before := time.Now()
	return span{before, send(t, c)}
}

// dialSpan is dial, returning when the connection was made.
func dialSpan(t testing.TB, s *server) (net.Conn, span) {
	t.Helper()
	before := time.Now()
	c := dial(t, s)
	return c, span{before, time.Now()}
}

// memWatcher is a Watcher on port that no socket backs, for tests that
// feed it decoded messages; withGone adds the destroy-message state.
func memWatcher(t *testing.T, port int, withGone bool) *Watcher {
	t.Helper()
	set, _, err := makePorts([]int{port})
	if err != nil {
		t.Fatal(err)
	}
	w := &Watcher{ports: set, prev: map[uint64]connState{}, cur: map[uint64]connState{}}
	if withGone {
		w.gone = &goneWatch{curTW: map[tuple]struct{}{}, prevTW: map[tuple]struct{}{}}
	}
	return w
}
