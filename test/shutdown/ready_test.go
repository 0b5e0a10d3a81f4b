package shutdown

import (
	"context"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestReadinessGatesDrain: without a registry the observable effect of
// readiness is the drain. SIGTERM after the probe succeeded drains for the
// full 2 s; SIGTERM before it does not drain at all. The JVM's shutdown hook
// marks when TERM reached it (TestApp's own TERM handler may not be
// installed yet that early).
func TestReadinessGatesDrain(t *testing.T) {
	t.Parallel()
	const drain = 2 * time.Second
	httpProbe := []string{"--ready-http", "http://127.0.0.1:{port}/health"}
	tcpProbe := []string{"--ready-tcp", "127.0.0.1:{port}"}
	tests := []struct {
		name  string
		probe []string
		jvm   []string
		ready bool   // send SIGTERM after gracefulinit saw the app ready
		until string // before readiness: TestApp event to wait for first
	}{
		// /health answers 503 during the start delay, 200 after.
		{name: "http ready", probe: httpProbe, jvm: []string{"--start-delay-ms", "1500"}, ready: true},
		{name: "http not yet", probe: httpProbe, jvm: []string{"--start-delay-ms", "8000"}, until: "listen"},
		// The port is not bound at all during the start delay.
		{name: "tcp ready", probe: tcpProbe, jvm: []string{"--late-bind", "--start-delay-ms", "1500"}, ready: true},
		{name: "tcp not yet", probe: tcpProbe, jvm: []string{"--late-bind", "--start-delay-ms", "8000"}, until: "start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			init := append([]string{"--drain", drain.String(), "--ready-interval", "200ms"}, tt.probe...)
			a := start(t, appConfig{pid1: true, withPort: true, init: init, jvm: tt.jvm})
			if tt.ready {
				l, _ := a.waitLog("app ready", jvmStart)
				// A TCP probe succeeds as soon as the port is bound, which
				// TestApp records as "bind" (its server starts, "listen",
				// a while later on a loaded machine), before "ready".
				readyEvent := "ready"
				if tt.probe[0] == "--ready-tcp" {
					readyEvent = "bind"
				}
				// The JVM binds before it writes the event: wait for it.
				readyAt := a.waitEvent(readyEvent, 5*time.Second).At
				if at := logTime(t, l); at.Before(readyAt.Add(-early)) {
					t.Errorf("gracefulinit saw the app ready at %v, before it was (%v)", at, readyAt)
				}
			} else {
				a.waitEvent(tt.until, jvmStart)
				// Let the JVM get past its signal set-up in main.
				time.Sleep(300 * time.Millisecond)
			}
			sent := a.term()
			code, _ := a.wait(20 * time.Second)
			if code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
			got := a.event("hook-start").At.Sub(sent)
			s := a.summary()
			if tt.ready {
				between(t, "SIGTERM to the JVM's hook", got, drain-early, drain+late)
				if s.DrainEnd != "ceiling" {
					t.Errorf("summary drain_end %q, want ceiling", s.DrainEnd)
				}
			} else {
				between(t, "SIGTERM to the JVM's hook", got, -early, late)
				if s.DrainEnd != "not ready" {
					t.Errorf("summary drain_end %q, want \"not ready\"", s.DrainEnd)
				}
				if a.hasEvent("ready") {
					t.Errorf("the app was ready before SIGTERM; the test wanted it starting: %v", a.evs())
				}
			}
		})
	}
}

// TestReadyTimeout: an app that never gets ready keeps running after
// --ready-timeout, with a warning; it was never online, so SIGTERM does not
// drain.
func TestReadyTimeout(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, withPort: true,
		init: []string{"--drain", "2s", "--ready-http", "http://127.0.0.1:{port}/health", "--ready-interval", "200ms", "--ready-timeout", "1s"},
		jvm:  []string{"--start-delay-ms", "60000"}})
	a.waitEvent("listen", jvmStart)
	l, _ := a.waitLog("app never became ready", 15*time.Second)
	if l.Str("level") != "WARN" {
		t.Errorf("ready timeout logged at %s, want WARN: %v", l.Str("level"), l)
	}
	// Still supervising a running app a while later.
	if testbin.WaitFor(context.Background(), time.Second, a.p.Exited) {
		t.Fatalf("gracefulinit exited after the ready timeout\nstderr:\n%s", a.p.Stderr)
	}
	if a.hasEvent("term") || a.hasEvent("hook-start") {
		t.Fatalf("the app was stopped after the ready timeout: %v", a.evs())
	}
	sent := a.term()
	code, _ := a.wait(20 * time.Second)
	if code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	between(t, "SIGTERM to the JVM's TERM", a.event("term").At.Sub(sent), -early, late)
	if s := a.summary(); s.DrainEnd != "not ready" {
		t.Errorf("summary drain_end %q, want \"not ready\"", s.DrainEnd)
	}
}

// logTime is the time a record was logged.
func logTime(t *testing.T, l testbin.LogRecord) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, l.Str("time"))
	if err != nil {
		t.Fatalf("log record time %q: %v", l.Str("time"), err)
	}
	return at
}
