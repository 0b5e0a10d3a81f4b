package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// Timing slack for a shared 2-core machine where several JVMs, Polaris
// servers and other test packages run at once. Lower bounds only absorb
// clock rounding; upper bounds are wide.
const (
	early = 150 * time.Millisecond // how much sooner than planned a step may look
	late  = 3 * time.Second        // how much later than planned a step may be
	// jvmStart bounds a JVM's start to a healthy answer.
	jvmStart = 60 * time.Second
	// visible bounds a registry change reaching a consumer: Polaris pushes
	// and rebuilds its caches within about a second; the rest is slack.
	visible = 8 * time.Second
)

// onlineRetryMsg is the message of gracefulinit's log line for an online
// step that has not succeeded yet and will be retried.
const onlineRetryMsg = "registry online not done yet, retrying"

// podSpec describes one "pod": gracefulinit as PID 1 with the example app
// (examples/javaapp) as its child, bound to its own loopback address.
type podSpec struct {
	service string
	// init are gracefulinit's registry flags; the common flags (ip, port,
	// readiness, timeline, JSON logs, -e 143) are added by startPod.
	init []string
	// app are the example app's registration flags (--nacos, --eureka ...).
	app []string
	// readyURL is gracefulinit's --ready-http; default the app's health.
	readyURL    string
	drain       time.Duration // fixed drain (--drain)
	grace       time.Duration // --grace-period
	stopTimeout time.Duration // --stop-timeout
	ip          string        // default: a fresh loopback address
	port        int           // default: a free port
}

// pod is one running gracefulinit with its JVM.
type pod struct {
	t       *testing.T
	spec    podSpec
	ip      string
	port    int
	p       *testbin.Proc
	startAt time.Time
	termAt  time.Time
}

func (p *pod) addr() string { return net.JoinHostPort(p.ip, strconv.Itoa(p.port)) }

// podAddr returns a loopback address no other test uses (127.77.x.y, like a
// pod IP) and a free port on it.
func podAddr(t *testing.T) (string, int) {
	t.Helper()
	ip := fmt.Sprintf("127.77.%d.%d", 1+rand.IntN(250), 2+rand.IntN(250))
	return ip, freeport.Must(t, ip)
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// startPod runs gracefulinit as PID 1 of a new PID namespace with the
// example app as its child.
func startPod(t *testing.T, s podSpec) *pod {
	t.Helper()
	if s.ip == "" {
		s.ip, s.port = podAddr(t)
	}
	if s.grace == 0 {
		s.grace = 20 * time.Second
	}
	if s.stopTimeout == 0 {
		s.stopTimeout = 5 * time.Second
	}
	p := &pod{t: t, spec: s, ip: s.ip, port: s.port}
	ready := s.readyURL
	if ready == "" {
		ready = p.healthURL()
	}
	args := []string{
		"--log-format", "json", "-e", "143",
		"--ip", p.ip, "--port", strconv.Itoa(p.port),
		"--ready-http", ready, "--ready-interval", "200ms",
		"--grace-period", secs(s.grace), "--stop-timeout", secs(s.stopTimeout),
		"--drain", secs(s.drain), "--drain-quiet", "0", "--registry-timeout", "2s",
	}
	args = append(args, s.init...)
	jvm, err := javatest.Args(javatest.ExampleAppJar(t),
		append([]string{
			"--bind", p.ip, "--ip", p.ip, "--port", strconv.Itoa(p.port),
			"--service", s.service, "--shutdown-timeout", "2", "--registry-timeout", "2",
		}, s.app...)...)
	if err != nil {
		t.Fatal(err)
	}
	args = append(append(args, "--"), jvm...)
	p.startAt = time.Now()
	p.p = testbin.Start(t, testbin.Options{PID1: true, Dir: t.TempDir()}, args...)
	return p
}

func (p *pod) healthURL() string { return "http://" + p.addr() + "/actuator/health" }

// health returns the status code of the app's health endpoint, 0 when it
// does not answer.
func (p *pod) health() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.healthURL(), nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitHealthy waits until the app answers 200 on its health endpoint and
// returns how long after the pod's start that was.
func (p *pod) waitHealthy() time.Duration {
	p.t.Helper()
	ok := testbin.WaitFor(context.Background(), jvmStart, func() bool { return p.health() == http.StatusOK || p.p.Exited() })
	if !ok || p.health() != http.StatusOK {
		p.t.Fatalf("app on %s not healthy within %v\nstdout:\n%s\nstderr:\n%s", p.addr(), jvmStart, p.p.Stdout, p.p.Stderr)
	}
	return time.Since(p.startAt)
}

// term sends SIGTERM to gracefulinit and remembers when.
func (p *pod) term() time.Time {
	p.t.Helper()
	p.termAt = p.p.Signal(syscall.SIGTERM)
	return p.termAt
}

// wait waits for gracefulinit to exit and returns its exit code.
func (p *pod) wait(timeout time.Duration) int {
	p.t.Helper()
	return p.p.Wait(timeout)
}

// javaPID is the JVM's pid in the test's namespace.
func (p *pod) javaPID() int {
	p.t.Helper()
	for _, pid := range procfs.Descendants(p.p.Cmd.Process.Pid) {
		if filepath.Base(proctree.Exe(pid)) == "java" {
			return pid
		}
	}
	p.t.Fatalf("no JVM below gracefulinit")
	return 0
}

// findLogs returns the records whose message is msg and, when registry is
// not empty, whose registry attribute is registry.
func (p *pod) findLogs(msg, registry string) []testbin.LogRecord {
	var out []testbin.LogRecord
	for _, l := range p.p.Logs() {
		if l.Str("msg") == msg && (registry == "" || l.Str("registry") == registry) {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits for a record with message msg (and registry, if given).
func (p *pod) waitLog(msg, registry string, timeout time.Duration) testbin.LogRecord {
	p.t.Helper()
	var found []testbin.LogRecord
	testbin.WaitFor(context.Background(), timeout, func() bool {
		found = p.findLogs(msg, registry)
		return len(found) > 0
	})
	if len(found) == 0 {
		p.t.Fatalf("no %q log (registry %q) within %v\nstderr:\n%s", msg, registry, timeout, p.p.Stderr)
	}
	return found[0]
}

// summary returns the "shutdown summary" record, failing if there is none
// and marking the test failed if a field is missing or ill-typed.
func (p *pod) summary() testbin.Summary {
	p.t.Helper()
	l := p.findLogs("shutdown summary", "")
	if len(l) != 1 {
		p.t.Fatalf("%d shutdown summary lines, want 1\nstderr:\n%s", len(l), p.p.Stderr)
	}
	s, err := testbin.ParseSummary(l[0])
	if err != nil {
		p.t.Errorf("%v: %v", err, l[0])
	}
	return s
}

// jvmEvent returns when the app logged a line containing substr, read from
// the JVM's own timestamp ("<ISO instant> javaapp <event>").
func (p *pod) jvmEvent(substr string) (time.Time, bool) {
	for _, line := range strings.Split(p.p.Stdout.String(), "\n") {
		ts, rest, ok := strings.Cut(line, " javaapp ")
		if !ok || !strings.Contains(rest, substr) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		return at, true
	}
	return time.Time{}, false
}

// waitJVM waits for the app to log a line containing substr.
func (p *pod) waitJVM(substr string, timeout time.Duration) time.Time {
	p.t.Helper()
	var at time.Time
	ok := testbin.WaitFor(context.Background(), timeout, func() bool {
		var found bool
		at, found = p.jvmEvent(substr)
		return found
	})
	if !ok {
		p.t.Fatalf("the app logged no %q within %v\nstdout:\n%s\nstderr:\n%s", substr, timeout, p.p.Stdout, p.p.Stderr)
	}
	return at
}

// jvmTermed reports whether the JVM has begun its shutdown (got SIGTERM).
func (p *pod) jvmTermed() bool {
	_, ok := p.jvmEvent("shutdown requested")
	return ok
}

// checkStopOnSchedule asserts that the JVM got its stop signal one drain
// after SIGTERM, and that gracefulinit exited 0 (JVM's 143 remapped) inside
// the grace period without killing anything.
func (p *pod) checkStopOnSchedule() testbin.Summary {
	p.t.Helper()
	stopAt := p.waitJVM("shutdown requested", p.spec.drain+late+5*time.Second)
	if code := p.wait(p.spec.grace + 5*time.Second); code != 0 {
		p.t.Fatalf("gracefulinit exit code %d, want 0 (the JVM's 143 remapped by -e 143)\nstderr:\n%s", code, p.p.Stderr)
	}
	got := stopAt.Sub(p.termAt)
	p.t.Logf("JVM got its stop signal %v after SIGTERM (drain %v)", got.Round(time.Millisecond), p.spec.drain)
	if got < p.spec.drain-early || got > p.spec.drain+late {
		p.t.Errorf("JVM got its stop signal %v after SIGTERM, want the drain %v (+%v slack)", got, p.spec.drain, late)
	}
	sum := p.summary()
	if sum.ChildCode != 143 || sum.ExitCode != 0 {
		p.t.Errorf("summary: child_exit_code %v exit_code %v, want 143 and 0", sum.ChildCode, sum.ExitCode)
	}
	if sum.Killed {
		p.t.Errorf("summary: the process tree was killed, want a clean stop")
	}
	if sum.Total <= 0 || sum.Total >= p.spec.grace {
		p.t.Errorf("summary: total %v, want inside the grace period %v", sum.Total, p.spec.grace)
	}
	if d := sum.StopSentAt; d < p.spec.drain-early || d > p.spec.drain+late {
		p.t.Errorf("summary: stop_sent_at %v, want about the drain %v", d, p.spec.drain)
	}
	p.t.Logf("summary: offline=%q offline_took=%s stop_sent_at=%v child_exit_at=%v total=%v",
		sum.Offline, sum.Record.Str("offline_took"), sum.StopSentAt, sum.ChildExitAt, sum.Total)
	return sum
}

// gate is a readiness endpoint the test opens: 503 until then, afterwards
// the status of the app's own health endpoint. It holds gracefulinit's
// online step back while the test prepares the registry.
type gate struct {
	srv    *httptest.Server
	open   atomic.Bool
	target string
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	g := &gate{target: target}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.open.Load() {
			http.Error(w, "gate closed", http.StatusServiceUnavailable)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, g.target, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(g.srv.Close)
	return g
}
