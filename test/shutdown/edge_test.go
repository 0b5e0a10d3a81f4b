package shutdown

import (
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
)

// TestChildExitsDuringDrain: the app exits on its own while gracefulinit
// drains; the drain stops and gracefulinit exits with the app's code at once.
func TestChildExitsDuringDrain(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, init: []string{"--drain", "10s"}, jvm: []string{"--exit", "3", "--exit-delay-ms", "3000"}})
	a.waitReady()
	sent := a.term()
	code, exited := a.wait(20 * time.Second)
	if code != 3 {
		t.Errorf("exit code %d, want the app's 3", code)
	}
	exit := a.event("exit").At
	if exit.Before(sent) {
		t.Fatalf("the app exited %v before SIGTERM: the test raced its own timing", sent.Sub(exit))
	}
	between(t, "app exit to gracefulinit exit", exited.Sub(exit), -early, late)
	if exited.Sub(sent) > 8*time.Second {
		t.Errorf("gracefulinit exited %v after SIGTERM: it kept draining after the app had gone", exited.Sub(sent))
	}
	if a.hasEvent("term") {
		t.Errorf("the app got TERM although it exited during the drain: %v", a.evs())
	}
	s := a.summary()
	if s.DrainEnd != "app-exit" || s.Killed || s.ExitCode != 3 || s.ChildCode != 3 {
		t.Errorf("summary %+v: want drain_end \"app-exit\", not killed, exit 3", s)
	}
	if s.StopSentAt >= 0 {
		t.Errorf("summary stop_sent_at %v: no stop signal should have been sent", s.StopSentAt)
	}
}

// TestSecondTermEndsDrain: a second SIGTERM during the drain skips the rest
// of it; the stop signal follows promptly.
func TestSecondTermEndsDrain(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, init: []string{"--drain", "10s"}})
	a.waitReady()
	first := a.term()
	a.waitLog("draining", 10*time.Second)
	time.Sleep(time.Second)
	second := a.p.Signal(syscall.SIGTERM)
	code, _ := a.wait(20 * time.Second)
	if code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	term := a.event("term").At
	between(t, "second SIGTERM to the JVM's TERM", term.Sub(second), -early, late)
	between(t, "first SIGTERM to the JVM's TERM", term.Sub(first), time.Second-early, time.Second+late)
	s := a.summary()
	if s.DrainEnd != "second-signal" || s.Killed || s.ExitCode != 143 {
		t.Errorf("summary %+v: want drain_end \"second-signal\", not killed, exit 143", s)
	}
	between(t, "summary drain", s.Drain, time.Second-early, time.Second+late)
}

// TestSigintForwardedAtOnce: SIGINT is not a stop request to drain for; it
// goes straight to the app (a JVM runs its hooks and exits 130).
func TestSigintForwardedAtOnce(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, init: []string{"--drain", "10s"}})
	a.waitReady()
	sent := a.p.Signal(syscall.SIGINT)
	code, exited := a.wait(20 * time.Second)
	if code != 130 {
		t.Errorf("exit code %d, want 130 (the JVM after SIGINT)", code)
	}
	hook := a.event("hook-start").At
	between(t, "SIGINT to the JVM's shutdown hook", hook.Sub(sent), -early, late)
	between(t, "SIGINT to gracefulinit's exit", exited.Sub(sent), 0, late)
	if l, ok := a.findLog("draining"); ok {
		t.Errorf("SIGINT started a drain: %v", l)
	}
}

// TestSignalsForwardedDuringDrain: signals other than the stop signal still
// reach the app while gracefulinit drains.
func TestSignalsForwardedDuringDrain(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, init: []string{"--drain", "3s"}, jvm: []string{"--trap", "USR1,HUP"}})
	a.waitReady()
	first := a.term()
	a.waitLog("draining", 10*time.Second)
	sent := map[string]time.Time{}
	for _, s := range []struct {
		name string
		sig  syscall.Signal
	}{{"USR1", syscall.SIGUSR1}, {"HUP", syscall.SIGHUP}, {"USR1", syscall.SIGUSR1}} {
		time.Sleep(300 * time.Millisecond)
		if _, ok := sent[s.name]; !ok {
			sent[s.name] = a.p.Signal(s.sig)
		} else {
			a.p.Signal(s.sig)
		}
	}
	code, _ := a.wait(20 * time.Second)
	if code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	evs := a.evs()
	term := a.event("term").At
	between(t, "SIGTERM to the JVM's TERM", term.Sub(first), 3*time.Second-early, 3*time.Second+late)
	got := map[string][]time.Time{}
	for _, e := range evs {
		if e.Name == "signal" {
			got[e.Detail] = append(got[e.Detail], e.At)
		}
	}
	for name, at := range sent {
		if len(got[name]) == 0 {
			t.Errorf("the JVM never got %s: %v", name, evs)
			continue
		}
		between(t, name+" sent to received", got[name][0].Sub(at), -early, late)
		if !got[name][0].Before(term) {
			t.Errorf("%s reached the JVM after TERM: %v", name, evs)
		}
	}
	// Signals of one kind may merge while pending; at least one of each,
	// and no more than sent.
	if n := len(got["USR1"]); n < 1 || n > 2 {
		t.Errorf("the JVM got USR1 %d times, want 1 or 2", n)
	}
	if _, err := javatest.InOrder(evs, "ready", "signal", "term", "hook-done"); err != nil {
		t.Error(err)
	}
}

// TestTermBeforeReady: SIGTERM while the readiness probe still fails means
// the app was never in rotation: no drain, TERM straight to the app.
func TestTermBeforeReady(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, withPort: true,
		init: []string{"--drain", "5s", "--ready-http", "http://127.0.0.1:{port}/health", "--ready-interval", "200ms"},
		jvm:  []string{"--start-delay-ms", "10000"}})
	a.waitEvent("listen", jvmStart)
	sent := a.term()
	code, exited := a.wait(20 * time.Second)
	if code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	term := a.event("term").At
	between(t, "SIGTERM to the JVM's TERM", term.Sub(sent), -early, late)
	between(t, "SIGTERM to gracefulinit's exit", exited.Sub(sent), 0, late+time.Second)
	if a.hasEvent("ready") {
		t.Errorf("the app became ready during the test; it should not for 10 s: %v", a.evs())
	}
	s := a.summary()
	if s.DrainEnd != "not ready" || s.Drain > 0 || s.Killed || s.ExitCode != 143 {
		t.Errorf("summary %+v: want drain_end \"not ready\", drain 0s, not killed, exit 143", s)
	}
}
