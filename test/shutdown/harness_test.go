package shutdown

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// Timing slack. Lower bounds only absorb clock rounding (the JVM's events
// carry whole milliseconds) and timer granularity; upper bounds are wide
// because the machine has two shared cores and JVMs start in parallel.
const (
	early = 150 * time.Millisecond // how much sooner than planned a step may look
	late  = 2 * time.Second        // how much later than planned a step may be
	// jvmStart bounds a JVM's start to READY while other tests run.
	jvmStart = 60 * time.Second
)

// app is one gracefulinit run supervising a child, usually the TestApp JVM.
type app struct {
	t      *testing.T
	p      *testbin.Proc
	events string // TestApp's --events file
	port   int    // TestApp's --port, 0 if none
	termAt time.Time
}

// appConfig describes a run: gracefulinit flags (before "--") and the
// TestApp flags; child replaces the JVM when set.
type appConfig struct {
	pid1     bool
	init     []string
	jvm      []string // TestApp flags; --events is added
	child    []string // a non-JVM child, instead of TestApp
	withPort bool     // give TestApp a free --port
	env      []string // added to gracefulinit's environment
}

// start runs gracefulinit with JSON logs at debug level, so that tests can
// parse its timeline. The port placeholder "{port}" in init and jvm flags is
// replaced by the free port when withPort is set.
func start(t *testing.T, c appConfig) *app {
	t.Helper()
	a := &app{t: t}
	dir := t.TempDir()
	a.events = filepath.Join(dir, "events")
	if c.withPort {
		a.port = freeport.Must(t, "127.0.0.1")
	}
	expand := func(args []string) []string {
		out := make([]string, len(args))
		for i, s := range args {
			out[i] = strings.ReplaceAll(s, "{port}", fmt.Sprint(a.port))
			out[i] = strings.ReplaceAll(out[i], "{dir}", dir)
		}
		return out
	}
	args := append([]string{"--log-format", "json", "--log-level", "debug"}, expand(c.init)...)
	args = append(args, "--")
	if c.child != nil {
		args = append(args, expand(c.child)...)
	} else {
		jvm := append([]string{"--events", a.events}, expand(c.jvm)...)
		if c.withPort {
			jvm = append(jvm, "--port", fmt.Sprint(a.port))
		}
		argv, err := javatest.Args(javatest.TestAppJar(t), jvm...)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, argv...)
	}
	a.p = testbin.Start(t, testbin.Options{PID1: c.pid1, Dir: dir, Env: c.env}, args...)
	return a
}

// waitStdout waits until the child printed a line equal to line (TestApp's
// stdout is gracefulinit's).
func (a *app) waitStdout(line string, timeout time.Duration) {
	a.t.Helper()
	ok := testbin.WaitFor(context.Background(), timeout, func() bool {
		return hasLine(a.p.Stdout.String(), line) || a.p.Exited()
	})
	if !ok || !hasLine(a.p.Stdout.String(), line) {
		a.t.Fatalf("no %q line on stdout within %v\nstdout:\n%s\nstderr:\n%s", line, timeout, a.p.Stdout, a.p.Stderr)
	}
}

func hasLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// waitReady waits for TestApp's READY line.
func (a *app) waitReady() { a.t.Helper(); a.waitStdout("READY", jvmStart) }

// term sends SIGTERM and remembers when, for the summary checks.
func (a *app) term() time.Time {
	a.t.Helper()
	a.termAt = a.p.Signal(syscall.SIGTERM)
	return a.termAt
}

// wait waits for gracefulinit to exit and returns its code and when the
// test saw the exit.
func (a *app) wait(timeout time.Duration) (int, time.Time) {
	a.t.Helper()
	code := a.p.Wait(timeout)
	return code, time.Now()
}

// evs reads TestApp's events.
func (a *app) evs() []javatest.Event {
	a.t.Helper()
	evs, err := javatest.ReadEvents(a.events)
	if err != nil {
		a.t.Fatal(err)
	}
	return evs
}

// event returns the first event called name, failing if there is none.
func (a *app) event(name string) javatest.Event {
	a.t.Helper()
	evs := a.evs()
	e, ok := javatest.FindEvent(evs, name)
	if !ok {
		a.t.Fatalf("no %q event in %v", name, evs)
	}
	return e
}

func (a *app) hasEvent(name string) bool {
	a.t.Helper()
	_, ok := javatest.FindEvent(a.evs(), name)
	return ok
}

// waitEvent waits for TestApp to record an event.
func (a *app) waitEvent(name string, timeout time.Duration) javatest.Event {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// An exited gracefulinit (a bad flag, say) ends the wait early; the
	// event may still be in the file.
	go func() {
		select {
		case <-a.p.Done():
			time.Sleep(100 * time.Millisecond)
			cancel()
		case <-ctx.Done():
		}
	}()
	e, err := javatest.WaitEvent(ctx, a.events, name)
	if err != nil {
		a.t.Fatalf("%v\nstderr:\n%s", err, a.p.Stderr)
	}
	return e
}

// findLog returns the first record whose message starts with msg.
func (a *app) findLog(msg string) (testbin.LogRecord, bool) {
	for _, l := range a.p.Logs() {
		if strings.HasPrefix(l.Str("msg"), msg) {
			return l, true
		}
	}
	return nil, false
}

// waitLog waits for a record whose message starts with msg and returns
// it with the time the test saw it.
func (a *app) waitLog(msg string, timeout time.Duration) (testbin.LogRecord, time.Time) {
	a.t.Helper()
	var found testbin.LogRecord
	ok := testbin.WaitFor(context.Background(), timeout, func() bool {
		l, ok := a.findLog(msg)
		found = l
		return ok || a.p.Exited()
	})
	if !ok || found == nil {
		a.t.Fatalf("gracefulinit did not log %q within %v\nstderr:\n%s", msg, timeout, a.p.Stderr)
	}
	return found, time.Now()
}

// summary finds and checks the shutdown summary: every field present and
// well-typed. gracefulinit must have exited.
func (a *app) summary() testbin.Summary {
	a.t.Helper()
	l, ok := a.findLog("shutdown summary")
	if !ok {
		a.t.Fatalf("no shutdown summary logged\nstderr:\n%s", a.p.Stderr)
	}
	s, err := testbin.ParseSummary(l)
	if err != nil {
		a.t.Errorf("%v: %v", err, l)
	}
	return s
}

// between fails unless lo <= got <= hi.
func between(t *testing.T, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s = %v, want between %v and %v", what, got, lo, hi)
	}
}

// connMode is how a client uses its connections.
type connMode int

const (
	// keepAlive reuses one connection, as a consumer's pool does.
	keepAlive connMode = iota
	// serverCloses asks for "Connection: close": the app closes each
	// connection after its response.
	serverCloses
	// clientCloses closes each connection itself once it has the response,
	// as curl or a script's one-off client does.
	clientCloses
)

func (m connMode) String() string {
	return [...]string{"keep-alive", "server closes", "client closes"}[m]
}

// client sends GET / to the app every interval from its own goroutine
// until stop.
type client struct {
	mu        sync.Mutex
	sent      int
	lastStart time.Time
	errs      int
	firstErr  error
	errAt     []time.Time // when each failed request began
	stopOnce  sync.Once
	stopCh    chan struct{}
	done      chan struct{}
}

func startClient(t *testing.T, port int, interval time.Duration, mode connMode) *client {
	t.Helper()
	return startClientFrom(t, port, interval, mode, "")
}

// startClientFrom is startClient with the client's own source address
// (127.0.100.N), so that the drain sees it as a peer of its own; "" lets
// the kernel choose.
func startClientFrom(t *testing.T, port int, interval time.Duration, mode connMode, from string) *client {
	t.Helper()
	c := &client{stopCh: make(chan struct{}), done: make(chan struct{})}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	d := &net.Dialer{Timeout: 2 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DialContext: d.DialContext}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			// Stopping never cuts a request short: a cancelled request
			// closes its connection, which would end the keep-alive case.
			begin := time.Now()
			var err error
			if mode == keepAlive {
				err = getPooled(hc, "http://"+addr+"/")
			} else {
				err = getOnce(d, addr, mode)
			}
			c.mu.Lock()
			if err == nil {
				c.sent++
				c.lastStart = begin
			} else {
				c.errs++
				c.errAt = append(c.errAt, begin)
				if c.firstErr == nil {
					c.firstErr = fmt.Errorf("after %d requests: %w", c.sent, err)
				}
			}
			c.mu.Unlock()
			select {
			case <-c.stopCh:
				return
			case <-tick.C:
			}
		}
	}()
	// A consumer's pool keeps its idle connection after the last request;
	// closing it at once would hide that request's bytes from the drain
	// watcher along with the app's socket (see clientCloses).
	t.Cleanup(func() { c.stop(); tr.CloseIdleConnections() })
	return c
}

func getPooled(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read to the end, or the connection cannot be reused.
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// getOnce sends one request on a connection of its own. Who closes it
// first is the point, so the exchange is spelled out rather than left to
// net/http: with serverCloses the client waits for the app's FIN; with
// clientCloses it hangs up as soon as it has the response.
func getOnce(d *net.Dialer, addr string, mode connMode) error {
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	hdr := "Connection: keep-alive"
	if mode == serverCloses {
		hdr = "Connection: close"
	}
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n%s\r\n\r\n", addr, hdr); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /: %s", resp.Status)
	}
	if mode == serverCloses {
		if _, err := br.ReadByte(); err != io.EOF {
			return fmt.Errorf("the app did not close the connection: %v", err)
		}
	}
	return nil
}

// stop ends the client's requests and returns when it sent its last
// answered one. Idle pooled connections stay open until the test ends.
func (c *client) stop() time.Time {
	c.stopOnce.Do(func() { close(c.stopCh) })
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastStart
}

// stats reports the requests answered and failed, and the first failure.
func (c *client) stats() (sent, errs int, first error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.errs, c.firstErr
}

// errsBefore counts the failed requests that began before at: a test that
// stops the client only after the app's own TERM asks about the drain, not
// about requests sent to a JVM already shutting down.
func (c *client) errsBefore(at time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, b := range c.errAt {
		if b.Before(at) {
			n++
		}
	}
	return n
}

// procID identifies a process across pid reuse: its pid and start time.
type procID struct {
	pid   int
	start string
}

func identify(pid int) (procID, bool) {
	f, err := procfs.Stat(pid)
	// Field 22 (starttime) is the 20th after the command name.
	if err != nil || len(f) < 20 {
		return procID{}, false
	}
	return procID{pid: pid, start: f[19]}, true
}

// alive reports whether the process still runs: not gone, not a zombie
// (a killed orphan may wait a moment for the host's init to reap it), and
// not a new process that reused the pid.
func (id procID) alive() bool {
	now, ok := identify(id.pid)
	if !ok || now.start != id.start {
		return false
	}
	st := proctree.State(id.pid)
	return st != "" && st != "Z" && st != "X"
}

func (id procID) String() string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", id.pid))
	return fmt.Sprintf("%d(%s)", id.pid, strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
}

// tree identifies every process below gracefulinit.
func (a *app) tree() []procID {
	a.t.Helper()
	var out []procID
	for _, pid := range procfs.Descendants(a.p.InitPID()) {
		if id, ok := identify(pid); ok {
			out = append(out, id)
		}
	}
	return out
}
