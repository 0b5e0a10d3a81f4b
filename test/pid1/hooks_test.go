package pid1_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// hookServer is the far end of --online-http and --offline-http: /500
// fails, /hang never answers, anything else is 200. It counts the calls
// per path.
type hookServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func newHookServer(t *testing.T) *hookServer {
	s := &hookServer{calls: map[string]int{}}
	stop := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[r.URL.Path]++
		s.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/500"):
			w.WriteHeader(500)
		case strings.HasSuffix(r.URL.Path, "/hang"):
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}
	}))
	t.Cleanup(func() { close(stop); s.Close() })
	return s
}

func (s *hookServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// TestHookFailingFirstNeverBlocksTheNext runs the repro on the
// real binary as PID 1: a first hook that fails (HTTP 500) or hangs must
// not keep the second from being called, online or offline; the failing
// one is retried on its own, and the summary names each call's outcome.
func TestHookFailingFirstNeverBlocksTheNext(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"500", "hang"} {
		t.Run(first, func(t *testing.T) {
			t.Parallel()
			srv := newHookServer(t)
			p := testbin.Start(t, testbin.Options{PID1: true},
				"--log-format", "json", "--grace-period", "20s", "--drain", "2s", "--drain-quiet", "0", "--registry-timeout", "1s",
				"--online-http", "GET "+srv.URL+"/on/"+first, "--online-http", "GET "+srv.URL+"/on/ok",
				"--offline-http", "GET "+srv.URL+"/off/"+first, "--offline-http", "GET "+srv.URL+"/off/ok",
				"--", "sleep", "60")
			if !testbin.WaitFor(t.Context(), eventTimeout, func() bool { return srv.count("/on/ok") > 0 }) {
				t.Fatalf("the second online hook was never called; the first was called %d times", srv.count("/on/"+first))
			}
			p.Signal(syscall.SIGTERM)
			p.Wait(exitTimeout)
			if n := srv.count("/off/ok"); n != 1 {
				t.Fatalf("the second offline hook was called %d times, want once", n)
			}
			if n := srv.count("/off/" + first); n < 2 {
				t.Errorf("the failing offline hook was called %d times: not retried within the drain", n)
			}
			if n := srv.count("/on/ok"); n != 1 {
				t.Errorf("the second online hook was called %d times, want once", n)
			}
			sum := summaryOf(t, p)
			for _, want := range []string{"failed: ", "offline hook 1 of 2 (GET " + srv.URL + "/off/" + first + "): failed after", "offline hook 2 of 2 (GET " + srv.URL + "/off/ok): ok"} {
				if !strings.Contains(sum.Offline, want) {
					t.Errorf("summary offline=%q lacks %q", sum.Offline, want)
				}
			}
		})
	}
}

// TestOnlineHooksOnlySummaryOfflineNone: with only --online-http nothing
// takes the app out at SIGTERM, and the summary must say so.
func TestOnlineHooksOnlySummaryOfflineNone(t *testing.T) {
	t.Parallel()
	srv := newHookServer(t)
	p := testbin.Start(t, testbin.Options{PID1: true},
		"--log-format", "json", "--grace-period", "20s", "--online-http", "GET "+srv.URL+"/on/ok", "--", "sleep", "60")
	if !testbin.WaitFor(t.Context(), eventTimeout, func() bool { return srv.count("/on/ok") > 0 }) {
		t.Fatal("the online hook was never called")
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(exitTimeout)
	if sum := summaryOf(t, p); sum.Offline != "none" {
		t.Fatalf("summary offline=%q with only --online-http, want none", sum.Offline)
	}
}

// summaryOf is the shutdown summary gracefulinit logged (JSON).
func summaryOf(t *testing.T, p *testbin.Proc) testbin.Summary {
	t.Helper()
	for _, l := range p.Logs() {
		if l.Str("msg") == "shutdown summary" {
			s, err := testbin.ParseSummary(l)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	t.Fatalf("no shutdown summary\nstderr:\n%s", p.Stderr)
	return testbin.Summary{}
}
