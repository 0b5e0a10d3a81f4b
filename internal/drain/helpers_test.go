package drain

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// family is how a test server listens and how its clients reach it.
type family struct {
	name       string
	listenHost string
	dialHost   string
}

var families = []family{
	{"ipv4", "127.0.0.1", "127.0.0.1"},
	{"ipv6", "::1", "::1"},
	// An IPv4 client of a dual-stack listener: the kernel keeps the
	// connection as an AF_INET6 socket with a v4-mapped address, which is
	// how a JVM listening on :: serves IPv4.
	{"dual-stack", "::", "127.0.0.1"},
}

// listenLow listens on host at a random port in 20000-29999 that no other
// test of this process has used, reserved with freeport across processes
// for as long as t runs. Ports there lie below the kernel's ephemeral range
// (32768 and up), so no client socket of a parallel test can share the
// port; the reservation keeps another package's server off the port on
// every other address (a Polaris or a JVM on 127.0.0.1 when this test
// listens on ::1). A drain, which watches a port on every address, then
// sees no other test's traffic.
func listenLow(t testing.TB, host string) net.Listener {
	t.Helper()
	usedPorts.Lock()
	defer usedPorts.Unlock()
	for range 100 {
		port := 20000 + rand.IntN(10000)
		if usedPorts.m[port] {
			continue
		}
		release, ok := freeport.Reserve(port)
		if !ok {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			usedPorts.m[port] = true
			t.Cleanup(release)
			return ln
		}
		release()
	}
	t.Fatalf("no free port on %s in 20000-29999", host)
	return nil
}

var usedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// serverMode says what a test server does with a connection.
type serverMode int

const (
	serveRead       serverMode = iota // accept and read until EOF, keep the socket open
	serveNoAccept                     // never accept: connections wait in the accept queue
	serveWriteClose                   // accept, write one byte, close first (the server side ends in TIME_WAIT)
	// serveRespond answers each read with one byte and closes once the
	// client has: a client that closes first leaves the server's socket no
	// TIME_WAIT, as with a Java app and curl.
	serveRespond
)

type server struct {
	ln   net.Listener
	port int
	addr string // host:port for clients

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup

	// responded counts the connections serveRespond has closed.
	responded atomic.Int64
}

// waitResponded waits until serveRespond has closed n connections in
// all: the app's side is gone then, with nothing for a dump to see.
func (s *server) waitResponded(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.responded.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the server closed %d connections, want %d", s.responded.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startServer(t testing.TB, f family, mode serverMode) *server {
	t.Helper()
	ln := listenLow(t, f.listenHost)
	port := ln.Addr().(*net.TCPAddr).Port
	s := &server{ln: ln, port: port, addr: net.JoinHostPort(f.dialHost, strconv.Itoa(port))}
	if mode != serveNoAccept {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if mode == serveWriteClose {
					_, _ = c.Write([]byte{'x'})
					_ = c.Close()
					continue
				}
				s.mu.Lock()
				s.conns = append(s.conns, c)
				s.mu.Unlock()
				if mode == serveRespond {
					s.wg.Add(1)
					go func() {
						defer s.wg.Done()
						respond(c)
						s.responded.Add(1)
					}()
					continue
				}
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					_, _ = io.Copy(io.Discard, c)
				}()
			}
		}()
	}
	t.Cleanup(s.close)
	return s
}

// close stops the server: its listener, every connection it kept, and
// the goroutines serving them.
func (s *server) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// respond answers every read on c with one byte until the client closes,
// or the server's cleanup does.
func respond(c net.Conn) {
	defer func() { _ = c.Close() }()
	// Bounded, so that a test's cleanup cannot wait on a stuck client.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	b := make([]byte, 512)
	for {
		n, err := c.Read(b)
		if n > 0 {
			if _, werr := c.Write([]byte{'k'}); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// testLogger logs to the test output and to the returned buffer.
func testLogger(t testing.TB) (*slog.Logger, *testbin.SafeBuffer) {
	buf := &testbin.SafeBuffer{}
	h := slog.NewTextHandler(io.MultiWriter(t.Output(), buf), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), buf
}

// countLines counts log lines containing substr.
func countLines(log, substr string) int {
	n := 0
	for line := range strings.Lines(log) {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// runAsync starts a drain and returns its start time and result channel.
func runAsync(ctx context.Context, o Options, log *slog.Logger) (time.Time, <-chan Result) {
	ch := make(chan Result, 1)
	start := time.Now()
	go func() { ch <- RunDetailed(ctx, o, log) }()
	return start, ch
}

// await waits for a drain's result, failing the test if it takes too long.
func await(t testing.TB, ch <-chan Result, limit time.Duration) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(limit):
		t.Fatalf("drain did not end within %s", limit)
		return Result{}
	}
}

// The kernel stamps sockets in jiffies (1 to 10 ms) and reports
// milliseconds: an activity time can read that much early, no more.
const stampSlack = 30 * time.Millisecond

// lateSlack is how late an activity time can read on a loaded machine:
// the Watcher reads its clock after the kernel's, and any wait for a CPU
// in between is added. Hundreds of milliseconds less than the tests'
// wrong answers (a stamp seconds off, or another request's).
const lateSlack = 250 * time.Millisecond

// span is when something happened: between before and after, as the
// test's clock read them. On a loaded machine the test can wait for a
// CPU between the event and either read.
type span struct{ before, after time.Time }

// stamped fails the test unless got dates the event in s: no earlier than
// its start, less the kernel's rounding, and no later than its end plus
// lateSlack and late, the lateness a test expects by design.
func stamped(t testing.TB, what string, got time.Time, s span, late time.Duration) {
	t.Helper()
	if got.Before(s.before.Add(-stampSlack)) || got.After(s.after.Add(lateSlack+late)) {
		t.Errorf("%s: dated %s after it began (it took %s), want between %s and %s",
			what, got.Sub(s.before), s.after.Sub(s.before), -stampSlack, s.after.Sub(s.before)+lateSlack+late)
	}
}

// within fails the test unless lo <= d <= hi.
func within(t testing.TB, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s = %s, want between %s and %s", what, d, lo, hi)
	}
}

// request is what the tests' callers send as one call: longer than a
// keepalive (see keepaliveBytes), as every HTTP request is.
var request = []byte("GET /orders/42 HTTP/1.1\r\nHost: app\r\nAccept: application/json\r\n\r\n")
