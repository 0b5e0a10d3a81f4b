package shutdown

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDrainWaitsForRareCaller: a caller that calls every 3 s, and keeps
// calling for 5 s after SIGTERM (its load-balancer cache still lists the
// pod), with --drain-quiet 2s. A global quiet window ends in its first gap
// and its next request meets a stopping app; the per-caller drain has
// learned its gap while the app ran and waits twice that after its last
// call.
func TestDrainWaitsForRareCaller(t *testing.T) {
	t.Parallel()
	const gap = 3 * time.Second
	a := start(t, appConfig{pid1: true, withPort: true, init: []string{"--grace-period", "40s", "--drain", "25s", "--drain-quiet", "2s", "--port", "{port}"}})
	a.waitReady()
	c := startClientFrom(t, a.port, gap, keepAlive, "127.0.100.21")
	// Long enough for the learner (a sample every 10 s) to see its gaps
	// in two samples.
	time.Sleep(23 * time.Second)
	sent := a.term()
	time.Sleep(5500 * time.Millisecond)
	last := c.stop()
	code, _ := a.wait(30 * time.Second)
	if code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	n, errs, firstErr := c.stats()
	if errs > 0 {
		t.Errorf("the rare caller had %d failed requests (%v) of %d", errs, firstErr, n+errs)
	}
	term := a.event("term").At
	if got := requestsBetween(a.evs(), sent, term); got < 2 {
		t.Errorf("the app served %d of the rare caller's requests during the drain, want its 2 after SIGTERM", got)
	}
	t.Logf("last request %v after SIGTERM; the JVM's TERM %v after SIGTERM", last.Sub(sent), term.Sub(sent))
	// Twice its gap after its last request; the request's start precedes
	// its bytes' arrival, so this can only overstate the wait.
	between(t, "the rare caller's last request to the JVM's TERM", term.Sub(last), 2*gap-quietSlack, 2*gap+3*late)
	s := a.summary()
	if s.DrainEnd != "all-quiet" || s.Killed || s.ExitCode != 143 {
		t.Errorf("summary %+v: want drain_end all-quiet, not killed, exit 143", s)
	}
	peers := s.Record.Str("drain_peers")
	if !strings.HasPrefix(peers, "127.0.100.21 last ") || !strings.Contains(peers, " gap 3") {
		t.Errorf("summary drain_peers %q: want the rare caller 127.0.100.21 first, with its gap of about 3s", peers)
	}
	if l, ok := a.findLog("drain ended"); !ok || !strings.HasPrefix(l.Str("slowest"), "127.0.100.21 ") {
		t.Errorf("drain ended log %v: want slowest naming 127.0.100.21", l)
	}
}

// TestDrainProbers: a busy consumer stops 1 s after SIGTERM while a prober
// calls every 500ms from its own address and never stops. Left out
// through HOST_IP or --drain-ignore, it does not hold the drain; otherwise
// --drain-cache-max ends it, and without that the ceiling does, with a
// WARN and traffic_at_end.
func TestDrainProbers(t *testing.T) {
	t.Parallel()
	const prober = "127.0.100.29"
	base := []string{"--grace-period", "40s", "--drain", "12s", "--drain-quiet", "1s", "--port", "{port}"}
	tests := []struct {
		name   string
		init   []string
		env    []string
		end    time.Duration // SIGTERM to the JVM's TERM, about
		reason string
		atEnd  bool
	}{
		{"HOST_IP", nil, []string{"HOST_IP=" + prober}, 2 * time.Second, "all-quiet", false},
		{"drain-ignore", []string{"--drain-ignore", "127.0.100.28/30"}, nil, 2 * time.Second, "all-quiet", false},
		{"cache-max", []string{"--drain-cache-max", "5s"}, nil, 5 * time.Second, "cache-max", false},
		{"ceiling", nil, nil, 12 * time.Second, "ceiling", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := start(t, appConfig{pid1: true, withPort: true, init: append(append([]string{}, base...), tt.init...), env: tt.env})
			a.waitReady()
			p := startClientFrom(t, a.port, 500*time.Millisecond, serverCloses, prober)
			c := startClientFrom(t, a.port, 50*time.Millisecond, keepAlive, "127.0.100.22")
			time.Sleep(2 * time.Second)
			sent := a.term()
			time.Sleep(time.Second)
			c.stop()
			term := a.waitEvent("term", 30*time.Second).At
			p.stop()
			code, _ := a.wait(30 * time.Second)
			if code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
			if _, errs, firstErr := c.stats(); errs > 0 {
				t.Errorf("the consumer had %d failed requests (%v)", errs, firstErr)
			}
			between(t, "SIGTERM to the JVM's TERM", term.Sub(sent), tt.end-early, tt.end+late)
			s := a.summary()
			if s.DrainEnd != tt.reason || s.Killed {
				t.Errorf("summary %+v: want drain_end %s, not killed", s, tt.reason)
			}
			if got, _ := s.Record["traffic_at_end"].(bool); got != tt.atEnd {
				t.Errorf("summary traffic_at_end %v, want %v", s.Record["traffic_at_end"], tt.atEnd)
			}
			warn, warned := a.findLog("drain reached its ceiling while traffic was still arriving")
			if warned != tt.atEnd {
				t.Errorf("ceiling WARN logged %v, want %v", warned, tt.atEnd)
			}
			if warned && (warn.Str("level") != "WARN" || !strings.Contains(warn.Str("still_calling"), prober)) {
				t.Errorf("ceiling log %v: want a WARN naming the prober %s", warn, prober)
			}
			if tt.reason == "cache-max" {
				l, ok := a.findLog("not waiting for callers still calling")
				if !ok || !strings.Contains(l.Str("still_calling"), prober) {
					t.Errorf("cache-max log %v: want it to name the prober %s", l, prober)
				}
			}
		})
	}
}

// TestSecondSignalNamesCallers: a drain cut short by a second SIGTERM
// still names the callers it was waiting for.
func TestSecondSignalNamesCallers(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, withPort: true, init: []string{"--grace-period", "40s", "--drain", "20s", "--drain-quiet", "1s", "--port", "{port}"}})
	a.waitReady()
	c := startClientFrom(t, a.port, 100*time.Millisecond, keepAlive, "127.0.100.23")
	a.term()
	a.waitLog("draining", 10*time.Second)
	time.Sleep(2 * time.Second)
	a.p.Signal(syscall.SIGTERM)
	a.waitEvent("term", 10*time.Second)
	c.stop()
	if code, _ := a.wait(20 * time.Second); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	s := a.summary()
	if s.DrainEnd != "second-signal" {
		t.Errorf("summary drain_end %q, want second-signal", s.DrainEnd)
	}
	if peers := s.Record.Str("drain_peers"); !strings.HasPrefix(peers, "127.0.100.23 last ") {
		t.Errorf("summary drain_peers %q: want the caller 127.0.100.23 the drain was waiting for", peers)
	}
}
