package shutdown

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
)

// readyWatch polls gracefulinit's /ready and records when it first
// answered 200 and whether it answered 503 before.
type readyWatch struct {
	mu       sync.Mutex
	first200 time.Time
	saw503   bool
}

func watchReady(t *testing.T, addr string) *readyWatch {
	t.Helper()
	w := &readyWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		hc := &http.Client{Timeout: time.Second}
		for ctx.Err() == nil {
			resp, err := hc.Get("http://" + addr + "/ready")
			at := time.Now()
			if err == nil {
				resp.Body.Close()
				w.mu.Lock()
				switch {
				case resp.StatusCode == http.StatusOK && w.first200.IsZero():
					w.first200 = at
				case resp.StatusCode == http.StatusServiceUnavailable && w.first200.IsZero():
					w.saw503 = true
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *readyWatch) wait(t *testing.T, timeout time.Duration) (time.Time, bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		w.mu.Lock()
		at, saw := w.first200, w.saw503
		w.mu.Unlock()
		if !at.IsZero() {
			return at, saw
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("/ready never answered 200 within %v", timeout)
	return time.Time{}, false
}

// warmRequests returns the JVM's request events for the warm-up's paths.
func warmRequests(evs []javatest.Event) []javatest.Event {
	var out []javatest.Event
	for _, e := range evs {
		if e.Name == "request" && (e.Detail == "/" || e.Detail == "/slow") {
			out = append(out, e)
		}
	}
	return out
}

// TestWarmupBeforeOnline: a real JVM under gracefulinit as PID 1. The
// warm-up's requests reach the app after it is ready, all of them before
// /ready answers 200; /ready answers 503 until then. Progress is at INFO.
func TestWarmupBeforeOnline(t *testing.T) {
	t.Parallel()
	haddr := fmt.Sprintf("127.0.0.1:%d", freeport.Must(t, "127.0.0.1"))
	a := start(t, appConfig{pid1: true, withPort: true, jvm: []string{"--start-delay-ms", "1500"}, init: []string{
		"--ready-http", "http://127.0.0.1:{port}/health", "--ready-interval", "200ms",
		"--warmup-http", "GET http://127.0.0.1:{port}/",
		"--warmup-http", "GET http://127.0.0.1:{port}/slow?ms=20",
		"--warmup-requests", "40", "--warmup-concurrency", "3",
		"--health-addr", haddr,
	}})
	w := watchReady(t, haddr)
	ready200, saw503 := w.wait(t, jvmStart)
	if !saw503 {
		t.Errorf("/ready never answered 503 before it answered 200")
	}
	done, _ := a.waitLog("warm-up done", 10*time.Second)
	if l, ok := a.findLog("warm-up started"); !ok || l.Str("level") != "INFO" {
		t.Errorf("no INFO warm-up started: %v", l)
	}
	if done.Str("level") != "INFO" || done.Num("sent") != 40 || done.Num("failed") != 0 {
		t.Errorf("warm-up done: %v, want INFO, 40 sent, none failed", done)
	}
	if at := logTime(t, done); ready200.Before(at.Add(-early)) {
		t.Errorf("/ready answered 200 at %v, before the warm-up was done (%v)", ready200, at)
	}
	evs := a.evs()
	readyAt := a.event("ready").At
	reqs := warmRequests(evs)
	if len(reqs) != 40 {
		t.Fatalf("the app saw %d warm-up requests, want 40: %v", len(reqs), evs)
	}
	for _, e := range reqs {
		if e.At.Before(readyAt.Add(-early)) || e.At.After(ready200.Add(early)) {
			t.Fatalf("warm-up request at %v: want after the app's ready (%v) and before /ready answered 200 (%v)", e.At, readyAt, ready200)
		}
	}
	a.term()
	if code, _ := a.wait(20 * time.Second); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
}

// TestWarmupBounded: a warm-up whose requests hang or fail never keeps the
// app offline past --warmup-timeout; failures are counted and warned of.
func TestWarmupBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, call, msg string
		within          time.Duration // from warm-up start to /ready 200
	}{
		{"slow app", "GET http://127.0.0.1:{port}/slow?ms=30000", "warm-up cut short", 2*time.Second + late},
		{"nothing listens", "GET http://127.0.0.1:1/", "warm-up requests failed", late},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			haddr := fmt.Sprintf("127.0.0.1:%d", freeport.Must(t, "127.0.0.1"))
			a := start(t, appConfig{pid1: true, withPort: true, init: []string{
				"--ready-http", "http://127.0.0.1:{port}/health", "--ready-interval", "200ms",
				"--warmup-http", tc.call, "--warmup-requests", "8", "--warmup-concurrency", "2", "--warmup-timeout", "2s",
				"--health-addr", haddr,
			}})
			w := watchReady(t, haddr)
			started, _ := a.waitLog("warm-up started", jvmStart)
			ready200, _ := w.wait(t, 30*time.Second)
			between(t, "warm-up start to /ready 200", ready200.Sub(logTime(t, started)), 0, tc.within)
			l, _ := a.waitLog(tc.msg, 5*time.Second)
			if l.Str("level") != "WARN" {
				t.Errorf("%s logged at %s, want WARN: %v", tc.msg, l.Str("level"), l)
			}
			if tc.name == "nothing listens" && (l.Num("failed") != 8 || !strings.Contains(l.Str("first_error"), "refused")) {
				t.Errorf("failures not counted: %v", l)
			}
			a.term()
			if code, _ := a.wait(40 * time.Second); code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
		})
	}
}

// TestWarmupNotACaller: SIGTERM in the middle of a warm-up. The warm-up
// stops, and the per-caller drain does not wait for its connections (they
// are gracefulinit's own, left out by socket): with no other caller it
// ends at its quiet floor, and the summary names no peer. A plain client
// from the same loopback address beside it is waited for and named.
func TestWarmupNotACaller(t *testing.T) {
	t.Parallel()
	for _, withClient := range []bool{false, true} {
		t.Run(fmt.Sprintf("client=%v", withClient), func(t *testing.T) {
			t.Parallel()
			a := start(t, appConfig{pid1: true, withPort: true, init: []string{
				"--ready-http", "http://127.0.0.1:{port}/health", "--ready-interval", "200ms",
				"--warmup-http", "GET http://127.0.0.1:{port}/slow?ms=150",
				"--warmup-requests", "200", "--warmup-concurrency", "2",
				"--port", "{port}", "--drain-quiet", "1s", "--drain", "8s", "--grace-period", "20s",
			}})
			a.waitLog("warm-up started", jvmStart)
			var c *client
			if withClient {
				// From 127.0.0.1 too: only the socket tells them apart.
				c = startClientFrom(t, a.port, 100*time.Millisecond, keepAlive, "127.0.0.1")
			}
			time.Sleep(1500 * time.Millisecond)
			if _, ok := a.findLog("warm-up done"); ok {
				t.Fatalf("the warm-up was over before SIGTERM; the test wants it in flight")
			}
			a.term()
			if withClient {
				time.Sleep(1500 * time.Millisecond)
				c.stop()
			}
			if code, _ := a.wait(30 * time.Second); code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
			s := a.summary()
			peers := s.Record.Str("drain_peers")
			t.Logf("summary: drain_end %s drain %v peers %s", s.DrainEnd, s.Drain, peers)
			if s.DrainEnd != "all-quiet" {
				t.Errorf("drain_end %q, want all-quiet", s.DrainEnd)
			}
			if !withClient {
				between(t, "drain", s.Drain, time.Second-early, time.Second+late)
				if peers != "-" {
					t.Errorf("drain_peers %q: the warm-up's connections were counted as a caller", peers)
				}
			} else if !strings.HasPrefix(peers, "127.0.0.1 last ") || s.Drain < 2*time.Second {
				t.Errorf("drain_peers %q drain %v: want the client 127.0.0.1 waited for past its last call", peers, s.Drain)
			}
		})
	}
}
