package shutdown

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestStopOnInt: an image whose STOPSIGNAL is INT (--stop-on INT) gets the
// whole stop sequence from a real PID 1: the offline step runs, the drain
// waits, and the app then gets INT, the signal that started it. A TERM is
// not a stop request then: it reaches the app at once.
func TestStopOnInt(t *testing.T) {
	t.Parallel()
	var offline atomic.Int64 // unix nanos of the offline call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/offline" {
			offline.CompareAndSwap(0, time.Now().UnixNano())
		}
	}))
	t.Cleanup(srv.Close)
	// sleep in short steps: a shell runs traps between commands.
	script := `trap 'echo INT >> {dir}/signals; exit 0' INT
trap 'echo TERM >> {dir}/signals' TERM
echo READY
while :; do sleep 0.05; done`
	a := start(t, appConfig{pid1: true, init: []string{"--stop-on", "INT", "--grace-period", "10s", "--drain", "2s", "--drain-quiet", "0",
		"--offline-http", "GET " + srv.URL + "/offline"}, child: []string{"sh", "-c", script}})
	a.waitReady()
	a.p.Signal(syscall.SIGTERM) // not a --stop-on signal: forwarded at once, no stop sequence
	signalsFile := filepath.Join(filepath.Dir(a.events), "signals")
	if !testbinWaitFile(signalsFile, "TERM\n", 5*time.Second) {
		t.Fatalf("the app did not get the TERM at once\nstderr:\n%s", a.p.Stderr)
	}
	if offline.Load() != 0 {
		t.Fatal("a TERM ran the offline step: only --stop-on signals start the stop sequence")
	}
	sent := a.p.Signal(syscall.SIGINT)
	code, exited := a.wait(20 * time.Second)
	if code != 0 {
		t.Errorf("exit code %d, want 0 (the app's exit on INT)\nstderr:\n%s", code, a.p.Stderr)
	}
	at := offline.Load()
	if at == 0 {
		t.Fatalf("the offline step never ran on SIGINT\nstderr:\n%s", a.p.Stderr)
	}
	between(t, "SIGINT to the offline call", time.Unix(0, at).Sub(sent), 0, late)
	between(t, "SIGINT to exit (a 2 s drain)", exited.Sub(sent), 2*time.Second-early, 2*time.Second+late)
	if b, _ := os.ReadFile(signalsFile); string(b) != "TERM\nINT\n" {
		t.Errorf("the app got %q, want TERM (forwarded) then INT (after the drain)", b)
	}
	s := a.summary()
	if s.Signal != "SIGINT" || s.StopSignal != "SIGINT" || s.Offline != "ok" || s.DrainEnd != "ceiling" || s.Killed {
		t.Errorf("summary %+v: want signal and stop_signal SIGINT, offline ok, drain_end ceiling, not killed", s)
	}
}

func testbinWaitFile(path, want string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); string(b) == want {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestDrainCapWithRegistryEndsEarly: with a registry, --drain is the
// ceiling of the traffic-aware drain, not a fixed sleep: a busy caller that
// stops 1 s after SIGTERM ends a --drain 20s drain about 2 s (the quiet
// window) later.
func TestDrainCapWithRegistryEndsEarly(t *testing.T) {
	t.Parallel()
	reg := registrytest.StartPolaris(t)
	// The registry server here reaches the instance from loopback once,
	// around its registration: a caller seen once, which the drain waits
	// for as a rare one (to cache-max or the ceiling). It is left out, as
	// a pod leaves out its node's probes; the test's caller has its own
	// address.
	a := start(t, appConfig{pid1: true, withPort: true, init: []string{"--grace-period", "40s", "--drain", "20s", "--port", "{port}",
		"--drain-ignore", "127.0.0.1",
		"--registry", "eureka", "--eureka-mode", "register", "--eureka-url", reg.EurekaURL, "--service", "capped", "--ip", "127.0.0.1"}})
	a.waitReady()
	if !testbin.WaitFor(context.Background(), 30*time.Second, func() bool {
		for _, l := range a.p.Logs() {
			if l.Str("msg") == "registry online" {
				return true
			}
		}
		return a.p.Exited()
	}) || a.p.Exited() {
		t.Fatalf("the instance never went online\nstderr:\n%s", a.p.Stderr)
	}
	c := startClientFrom(t, a.port, 100*time.Millisecond, keepAlive, "127.0.100.41")
	// Until the drain knows its habit: a caller seen only for a moment is
	// waited for as a rare one. The learner paces itself by what a sample
	// costs, which the host's socket table (every test's) makes dearer.
	if !testbin.WaitFor(context.Background(), 60*time.Second, func() bool {
		for _, l := range a.p.Logs() {
			if l.Str("msg") == "drain: caller's rhythm known" && l.Str("caller") == "127.0.100.41" {
				return true
			}
		}
		return a.p.Exited()
	}) || a.p.Exited() {
		t.Fatalf("the drain never learned the caller's rhythm\nstderr:\n%s", a.p.Stderr)
	}
	sent := a.term()
	time.Sleep(time.Second)
	last := c.stop()
	code, _ := a.wait(40 * time.Second)
	if code != 143 {
		t.Errorf("exit code %d, want 143\nstderr:\n%s", code, a.p.Stderr)
	}
	term := a.event("term").At
	t.Logf("last request %v after SIGTERM; the JVM's TERM %v after SIGTERM", last.Sub(sent), term.Sub(sent))
	// 2 s of quiet after the last call; far from the 20 s ceiling.
	between(t, "the last request to the JVM's TERM", term.Sub(last), 2*time.Second-quietSlack, 2*time.Second+3*late)
	s := a.summary()
	if s.DrainEnd == "ceiling" || s.Offline != "ok" || s.Killed || s.Drain >= 15*time.Second {
		t.Errorf("summary %+v: want a drain ended by its callers (not the ceiling), offline ok, not killed", s)
	}
}
