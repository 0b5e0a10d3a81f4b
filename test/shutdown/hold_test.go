package shutdown

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

// TestHoldRegistryHangs: mark mode against a registry that accepts and
// never answers. The hold never delays the app (it is seen ready as soon
// as it is), warns once that it cannot hold, keeps looking within
// --registry-timeout each time, and a stop while it looks is not held up
// by it: the app gets its stop signal after the drain as usual.
func TestHoldRegistryHangs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		reg  func(addr string) []string
	}{
		{"nacos", func(addr string) []string { return []string{"--registry", "nacos", "--nacos-addr", "http://" + addr} }},
		{"eureka", func(addr string) []string {
			return []string{"--registry", "eureka", "--eureka-url", "http://" + addr + "/eureka"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := registrytest.Hanging(t)
			init := append([]string{
				"--service", "hung", "--ip", "127.0.0.1", "--port", "{port}", "--registry-timeout", "1s",
				"--ready-http", "http://127.0.0.1:{port}/health", "--ready-interval", "100ms",
				"--grace-period", "12s", "--stop-timeout", "3s", "--drain", "2s", "--drain-quiet", "0",
			}, tc.reg(addr)...)
			a := start(t, appConfig{pid1: true, withPort: true, init: init, jvm: []string{"--start-delay-ms", "1000"}})
			readyAt := a.waitEvent("ready", jvmStart).At
			l, _ := a.waitLog("app ready", 10*time.Second)
			between(t, "the app's ready to gracefulinit seeing it", logTime(t, l).Sub(readyAt), -early, late)
			time.Sleep(3 * time.Second) // several looks, each 1 s
			warns := 0
			for _, r := range a.p.Logs() {
				if strings.HasPrefix(r.Str("msg"), "registry hold: cannot keep the app's own registration out of rotation") {
					warns++
					if r.Str("level") != "WARN" {
						t.Errorf("logged at %s, want WARN: %v", r.Str("level"), r)
					}
				}
			}
			if warns != 1 {
				t.Errorf("%d hold warnings, want exactly one\nstderr:\n%s", warns, a.p.Stderr)
			}
			sent := a.term()
			hook := a.waitEvent("hook-start", 15*time.Second).At
			between(t, "SIGTERM to the JVM's stop", hook.Sub(sent), 2*time.Second-early, 2*time.Second+late)
			if code, _ := a.wait(20 * time.Second); code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
		})
	}
}

// TestStopWhileStartingHTTPHook: with --offline-http the app may have
// registered itself somewhere gracefulinit does not speak: SIGTERM before
// the app is ready still runs the offline call, then the per-caller drain
// (no caller: it ends at its quiet floor), and the summary says so. The
// online call never runs.
func TestStopWhileStartingHTTPHook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	a := start(t, appConfig{pid1: true, withPort: true, jvm: []string{"--start-delay-ms", "20000"}, init: []string{
		"--ready-http", "http://127.0.0.1:{port}/health", "--ready-interval", "200ms", "--port", "{port}",
		"--online-http", "GET " + srv.URL + "/online", "--offline-http", "GET " + srv.URL + "/offline",
		"--grace-period", "20s",
	}})
	a.waitEvent("listen", jvmStart)
	time.Sleep(300 * time.Millisecond) // past the JVM's signal set-up
	sent := a.term()
	hook := a.waitEvent("hook-start", 15*time.Second).At
	// The default quiet window with an offline step is 2 s.
	between(t, "SIGTERM to the JVM's stop", hook.Sub(sent), 2*time.Second-early, 2*time.Second+late)
	if code, _ := a.wait(20 * time.Second); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["/offline"] != 1 || calls["/online"] != 0 {
		t.Errorf("hook calls %v, want one /offline and no /online", calls)
	}
	s := a.summary()
	if s.Offline != "ok" || s.Record["ready"] != false || s.DrainEnd != "all-quiet" {
		t.Errorf("summary offline %q ready %v drain_end %q, want ok, false, all-quiet", s.Offline, s.Record["ready"], s.DrainEnd)
	}
	if l, ok := a.findLog("app was never ready, but it may have registered itself"); !ok || l.Str("level") != "INFO" {
		t.Errorf("no INFO saying why a never-ready app is taken out: %v", l)
	}
}
