package warmup

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry/httphook"
	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

func calls(t *testing.T, specs ...string) []httphook.Call {
	t.Helper()
	var out []httphook.Call
	for _, s := range specs {
		c, err := httphook.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// recorder is an app: it counts requests by method and path, the most in
// flight at once, and whether each came from one of our own sockets.
type recorder struct {
	mu       sync.Mutex
	seen     map[string]int
	bodies   []string
	inFlight atomic.Int32
	maxIn    atomic.Int32
	notOurs  atomic.Int32
	delay    time.Duration
	status   int
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.inFlight.Add(1)
	defer rc.inFlight.Add(-1)
	for m := rc.maxIn.Load(); n > m && !rc.maxIn.CompareAndSwap(m, n); m = rc.maxIn.Load() {
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !selfconn.Contains(ap, localOf(r)) {
		rc.notOurs.Add(1)
	}
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.seen[r.Method+" "+r.URL.Path]++
	if len(b) > 0 {
		rc.bodies = append(rc.bodies, string(b))
	}
	rc.mu.Unlock()
	if rc.delay > 0 {
		select {
		case <-time.After(rc.delay):
		case <-r.Context().Done():
		}
	}
	if rc.status != 0 {
		w.WriteHeader(rc.status)
	}
	_, _ = w.Write([]byte("ok"))
}

func serve(t *testing.T, rc *recorder) string {
	t.Helper()
	rc.seen = map[string]int{}
	s := httptest.NewServer(rc)
	t.Cleanup(s.Close)
	return s.URL
}

func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

// TestRunSendsAll: every request reaches the app, in turn over the calls,
// never more than the concurrency at once, each from one of our own
// sockets (so the drain leaves it out), and progress is logged at INFO.
func TestRunSendsAll(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		requests, conc    int
		wantReq, wantConc int
	}{
		{"defaults", 0, 0, DefaultRequests, DefaultConcurrency},
		{"more requests, one at a time", 90, 1, 90, 1},
		{"concurrency above the count", 3, 8, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := &recorder{delay: 5 * time.Millisecond}
			base := serve(t, rc)
			var log bytes.Buffer
			res := Run(context.Background(), Options{
				Calls:    calls(t, "GET "+base+"/a", `POST `+base+`/b {"k": 1}`),
				Requests: tc.requests, Concurrency: tc.conc, Log: logTo(&log),
			})
			if res.Sent != tc.wantReq || res.Failed != 0 || res.TimedOut || len(res.Latencies) != tc.wantReq {
				t.Fatalf("result %+v, want %d sent, none failed", res, tc.wantReq)
			}
			rc.mu.Lock()
			a, b := rc.seen["GET /a"], rc.seen["POST /b"]
			body := rc.bodies[0]
			rc.mu.Unlock()
			if a+b != tc.wantReq || a-b > 1 || b > a {
				t.Fatalf("app saw GET /a %d, POST /b %d; want %d in turn", a, b, tc.wantReq)
			}
			if body != `{"k": 1}` {
				t.Fatalf("body %q", body)
			}
			if m := rc.maxIn.Load(); m > int32(tc.wantConc) || m < 1 {
				t.Fatalf("%d requests in flight at once, want at most %d", m, tc.wantConc)
			}
			if n := rc.notOurs.Load(); n != 0 {
				t.Fatalf("%d requests came from sockets selfconn does not know: the drain would count them", n)
			}
			if !strings.Contains(log.String(), "level=INFO msg=\"warm-up done\"") {
				t.Fatalf("no INFO warm-up done in the log:\n%s", log.String())
			}
		})
	}
}

// TestRunFailuresCounted: error answers and refused connections are
// counted and warned of; the warm-up still ends.
func TestRunFailuresCounted(t *testing.T) {
	t.Parallel()
	rc := &recorder{status: http.StatusInternalServerError}
	base := serve(t, rc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	// A redirect is not followed, so it warms nothing: to a login page, or
	// from /api/ to /api.
	redir := httptest.NewServer(http.RedirectHandler("http://u:pw@127.0.0.1:1/login", http.StatusFound))
	t.Cleanup(redir.Close)
	for _, tc := range []struct{ name, url, want string }{
		{"HTTP 500", base + "/x", "HTTP 500"},
		{"refused", "http://" + closed + "/x", "refused"},
		{"redirect", redir.URL + "/x", "HTTP 302 to http://u:xxxxx@127.0.0.1:1/login: redirects are not followed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			res := Run(context.Background(), Options{Calls: calls(t, "GET "+tc.url), Requests: 10, Concurrency: 2, Log: logTo(&log)})
			if res.Sent != 10 || res.Failed != 10 || !strings.Contains(res.FirstErr, tc.want) {
				t.Fatalf("result %+v, want 10 sent, 10 failed, first error with %q", res, tc.want)
			}
			if !strings.Contains(log.String(), "level=WARN msg=\"warm-up requests failed") {
				t.Fatalf("no WARN in the log:\n%s", log.String())
			}
		})
	}
}

// TestRunBounded: an app that does not answer holds the warm-up no
// longer than its timeout, and a stop (ctx) ends it at once. Only the
// timeout says the app goes online now: after a stop it never does. With
// nothing answered it points at the URL, not at a longer timeout.
func TestRunBounded(t *testing.T) {
	t.Parallel()
	rc := &recorder{delay: time.Minute}
	base := serve(t, rc)
	for _, tc := range []struct {
		name          string
		timeout       time.Duration
		cancel        time.Duration
		want, notWant string
	}{
		{"timeout", 300 * time.Millisecond, 0, "level=WARN msg=\"warm-up cut short with no request answered: the app goes online now, cold; check that --warmup-http", "raise --warmup-timeout"},
		{"stop", time.Minute, 300 * time.Millisecond, "level=INFO msg=\"warm-up stopped: the stop sequence began", "online"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel > 0 {
				time.AfterFunc(tc.cancel, cancel)
			}
			var log bytes.Buffer
			start := time.Now()
			res := Run(ctx, Options{Calls: calls(t, "GET "+base+"/slow"), Requests: 5, Concurrency: 2, Timeout: tc.timeout, Log: logTo(&log)})
			took := time.Since(start)
			if !res.TimedOut || res.Sent != 0 {
				t.Fatalf("result %+v, want cut short with nothing answered", res)
			}
			if took < 250*time.Millisecond || took > 5*time.Second {
				t.Fatalf("took %v, want about 300ms", took)
			}
			if !strings.Contains(log.String(), "warm-up cut short") && !strings.Contains(log.String(), "warm-up stopped") {
				t.Fatalf("no cut-short line:\n%s", log.String())
			}
			if !strings.Contains(log.String(), tc.want) || strings.Contains(log.String(), tc.notWant) {
				t.Fatalf("log wants %q and not %q:\n%s", tc.want, tc.notWant, log.String())
			}
		})
	}
}

// TestBodyTypesMatchTheHooks: a 'METHOD URL [BODY]' spec means the same
// request whether it is a warm-up or a hook: the body's Content-Type
// follows one rule (httphook.Call.NewRequest).
func TestBodyTypesMatchTheHooks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	types := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		types[string(b)] = r.Header.Get("Content-Type")
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	for body, want := range map[string]string{
		`{"k": 1}`:    "application/json",
		`[1,2]`:       "application/json",
		`{not json`:   "text/plain; charset=utf-8",
		`a=1&b=two`:   "application/x-www-form-urlencoded",
		`plain words`: "text/plain; charset=utf-8",
	} {
		Run(context.Background(), Options{Calls: calls(t, "POST "+srv.URL+"/w "+body), Requests: 1, Concurrency: 1, Timeout: 10 * time.Second})
		mu.Lock()
		got := types[body]
		mu.Unlock()
		req, err := calls(t, "POST "+srv.URL+"/h "+body)[0].NewRequest(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got != want || req.Header.Get("Content-Type") != want {
			t.Errorf("body %q: warm-up sent %q, a hook would send %q; want %q for both", body, got, req.Header.Get("Content-Type"), want)
		}
	}
}

// localOf is the server's own address of the request's connection.
func localOf(r *http.Request) netip.AddrPort {
	a, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if a == nil {
		return netip.AddrPort{}
	}
	return a.AddrPort()
}
