package shutdown

import (
	"strconv"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
)

// TestDrainThenStop covers the plain stop sequence as PID 1: SIGTERM, a
// fixed drain, then TERM to the JVM, whose shutdown hook finishes within the
// stop timeout, and gracefulinit exits with the JVM's 143.
func TestDrainThenStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		init     []string
		drain    time.Duration
		hook     time.Duration
		grace    time.Duration // the summary's deadline; -1 for "-", tini mode's none
		drainEnd string
		exit     int // gracefulinit's code; the JVM's is always 143
	}{
		{"fixed drain 2s", []string{"--drain", "2s"}, 2 * time.Second, 300 * time.Millisecond, 30 * time.Second, "ceiling", 143},
		{"hook within stop timeout", []string{"--grace-period", "8s", "--kill-margin", "1s", "--stop-timeout", "3s", "--drain", "1s"}, time.Second, 1500 * time.Millisecond, 8 * time.Second, "ceiling", 143},
		{"no drain", nil, 0, 300 * time.Millisecond, -1, "none", 143},
		{"remap 143 to 0", []string{"--drain", "1s", "--remap-exit", "143"}, time.Second, 0, 30 * time.Second, "ceiling", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := start(t, appConfig{pid1: true, init: tt.init, jvm: []string{"--hook-ms", ms(tt.hook)}})
			a.waitReady()
			sent := a.term()
			code, exited := a.wait(tt.drain + tt.hook + 10*time.Second)
			if code != tt.exit {
				t.Errorf("exit code %d, want %d (the JVM's own code after TERM is 143)", code, tt.exit)
			}
			evs, err := javatest.InOrder(a.evs(), "ready", "term", "hook-start", "hook-done")
			if err != nil {
				t.Fatal(err)
			}
			term, hookStart, hookDone := evs[1].At, evs[2].At, evs[3].At
			// The JVM must not hear of the SIGTERM before the drain is over.
			between(t, "SIGTERM to the JVM's TERM", term.Sub(sent), tt.drain-early, tt.drain+late)
			between(t, "hook duration", hookDone.Sub(hookStart), tt.hook-early, tt.hook+late)
			if exited.Before(hookDone) {
				t.Errorf("gracefulinit exited at %v, before the hook finished at %v", exited, hookDone)
			}
			s := a.summary()
			if s.Signal != "SIGTERM" || s.DrainEnd != tt.drainEnd || s.Killed || s.ExitCode != tt.exit || s.ChildCode != 143 || s.StopSignal != "SIGTERM" || s.Offline != "none" {
				t.Errorf("summary %+v: want signal SIGTERM, drain_end %s, not killed, child code 143, exit code %d, stop_signal SIGTERM, offline none", s, tt.drainEnd, tt.exit)
			}
			between(t, "summary drain", s.Drain, tt.drain, tt.drain+late)
			between(t, "summary stop_sent_at", s.StopSentAt, tt.drain, tt.drain+late)
			between(t, "summary child_exit_at", s.ChildExitAt, tt.drain+tt.hook-early, tt.drain+tt.hook+late)
			if s.Total < s.ChildExitAt {
				t.Errorf("summary total %v < child_exit_at %v", s.Total, s.ChildExitAt)
			}
			if s.Deadline != tt.grace {
				t.Errorf("summary deadline %v, want the grace period %v", s.Deadline, tt.grace)
			}
		})
	}
}

// quietSlack is how much shorter than --drain-quiet the silence before the
// stop signal may look: the JVM's millisecond stamp, and the kernel's
// jiffies behind the watcher's dating of traffic.
const quietSlack = 30 * time.Millisecond

// connModes are the ways consumers use connections; the drain watcher must
// see traffic in each.
var connModes = []connMode{keepAlive, serverCloses, clientCloses}

// TestQuietDrainEndsEarly: a client sends for about 2 s after SIGTERM, then
// stops; with --drain-quiet 1s the drain ends about 1 s after its last
// request, far before the 20 s maximum.
func TestQuietDrainEndsEarly(t *testing.T) {
	t.Parallel()
	for _, mode := range connModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			a := start(t, appConfig{pid1: true, withPort: true, init: []string{"--grace-period", "40s", "--drain", "20s", "--drain-quiet", "1s", "--port", "{port}"}})
			a.waitReady()
			c := startClient(t, a.port, 100*time.Millisecond, mode)
			time.Sleep(300 * time.Millisecond)
			sent := a.term()
			time.Sleep(2 * time.Second)
			last := c.stop()
			n, errs, firstErr := c.stats()
			if errs > 0 || n < 10 {
				t.Fatalf("client: %d requests ok, %d failed (%v); want >= 10 and no failure during the drain", n, errs, firstErr)
			}
			code, _ := a.wait(30 * time.Second)
			if code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
			term := a.event("term").At
			t.Logf("last request %v after SIGTERM, JVM saw TERM %v after SIGTERM; %d requests served during the drain",
				last.Sub(sent), term.Sub(sent), requestsBetween(a.evs(), sent, term))
			if l, ok := a.findLog("drain ended"); ok {
				t.Logf("gracefulinit: drain ended %v after SIGTERM, last traffic %v before that", l.Dur("elapsed"), l.Dur("last_traffic_ago"))
			}
			if e, ok := lastRequest(a.evs()); ok {
				t.Logf("the JVM's last request %v after SIGTERM", e.Sub(sent))
			}
			// Quiet for 1 s after the last request, so at least that; and it
			// must not wait for the 20 s maximum. The client's start of its
			// last request precedes the bytes' arrival, and the JVM's TERM
			// follows the drain's end, so the gap between them can only
			// overstate the silence the watcher allowed.
			if got := requestsBetween(a.evs(), time.Time{}, term); got != n {
				t.Fatalf("the app served %d requests, the client sent %d: the last request is not the client's", got, n)
			}
			between(t, "last request to the JVM's TERM", term.Sub(last), time.Second-quietSlack, time.Second+3*late)
			between(t, "SIGTERM to the JVM's TERM", term.Sub(sent), 3*time.Second-early, 10*time.Second)
			s := a.summary()
			if s.DrainEnd != "all-quiet" || s.Killed || s.ExitCode != 143 {
				t.Errorf("summary %+v: want drain_end all-quiet, not killed, exit 143", s)
			}
		})
	}
}

// TestQuietDrainKeepsGoing: a client that never stops keeps the drain open
// until its maximum.
func TestQuietDrainKeepsGoing(t *testing.T) {
	t.Parallel()
	for _, mode := range connModes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			a := start(t, appConfig{pid1: true, withPort: true, init: []string{"--drain", "4s", "--drain-quiet", "1s", "--port", "{port}"}})
			a.waitReady()
			c := startClient(t, a.port, 200*time.Millisecond, mode)
			time.Sleep(300 * time.Millisecond)
			sent := a.term()
			term := a.waitEvent("term", 20*time.Second).At
			c.stop()
			code, _ := a.wait(20 * time.Second)
			if code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
			n, errs, firstErr := c.stats()
			served := requestsBetween(a.evs(), sent, term)
			t.Logf("client: %d ok, %d failed (%v); the JVM served %d requests between SIGTERM and TERM", n, errs, firstErr, served)
			// The client stops once the test has seen the TERM event: its
			// requests after the JVM's TERM may meet a closing server.
			if drainErrs := c.errsBefore(term); drainErrs > 0 || served < 3 {
				t.Errorf("the client's traffic did not flow during the drain (%d errors before the JVM's TERM, %d served)", drainErrs, served)
			}
			between(t, "SIGTERM to the JVM's TERM", term.Sub(sent), 4*time.Second-early, 4*time.Second+late)
			s := a.summary()
			if s.DrainEnd != "ceiling" || s.Killed || s.ExitCode != 143 {
				t.Errorf("summary %+v: want drain_end ceiling, not killed, exit 143", s)
			}
			between(t, "summary drain", s.Drain, 4*time.Second, 4*time.Second+late)
		})
	}
}

// ms formats d as TestApp's millisecond flags want it.
func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// requestsBetween counts the requests to / the app received in [from, to).
func requestsBetween(evs []javatest.Event, from, to time.Time) int {
	n := 0
	for _, e := range evs {
		if e.Name == "request" && e.Detail == "/" && !e.At.Before(from.Truncate(time.Millisecond)) && e.At.Before(to) {
			n++
		}
	}
	return n
}

// lastRequest is when the app received its last request to /.
func lastRequest(evs []javatest.Event) (time.Time, bool) {
	var last time.Time
	for _, e := range evs {
		if e.Name == "request" && e.Detail == "/" {
			last = e.At
		}
	}
	return last, !last.IsZero()
}
