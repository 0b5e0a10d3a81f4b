package httphook

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Call
		err  string
	}{
		{spec: "GET http://127.0.0.1:22222/offline", want: Call{Method: "GET", URL: "http://127.0.0.1:22222/offline"}},
		{spec: "post http://127.0.0.1:8080/actuator/service-registry {\"status\": \"UP\"}",
			want: Call{Method: "POST", URL: "http://127.0.0.1:8080/actuator/service-registry", Body: `{"status": "UP"}`}},
		{spec: "  PUT   https://h/x   a=b,c=d  ", want: Call{Method: "PUT", URL: "https://h/x", Body: "a=b,c=d"}},
		{spec: "", err: "no method"},
		{spec: "http://alice:S3CRETPW@h/offline", err: "no method"},
		{spec: "FETCH http://h/", err: "method"},
		{spec: "GET", err: "no URL"},
		{spec: "GET ftp://h/", err: "URL"},
		{spec: "GET /offline", err: "URL"},
		{spec: "GET http://h:99999/", err: "ports run from 1 to 65535"},
		{spec: "GET http://alice:S3CRETPW@h:0/", err: "ports run"},
		{spec: "GET http://alice:S3CRETPW@h/%zz", err: "URL"},
	} {
		got, err := Parse(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, %v; want error containing %q", tc.spec, got, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "S3CRETPW") {
				t.Errorf("Parse(%q) error leaks the password: %v", tc.spec, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}

// qos is a stand-in for Dubbo's QoS port / Spring's actuator: it records
// every call and answers with the status the test sets per path.
type qos struct {
	mu     sync.Mutex
	calls  []string
	status map[string]int
	hang   chan struct{}
}

func newQoS(t *testing.T) (*qos, *httptest.Server) {
	q := &qos{status: map[string]int{}, hang: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q.mu.Lock()
		q.calls = append(q.calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(b))
		code := q.status[r.URL.Path]
		q.mu.Unlock()
		if r.URL.Path == "/hang" {
			select {
			case <-q.hang:
			case <-r.Context().Done():
			}
			return
		}
		if code == 0 {
			code = 200
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("answer for " + r.URL.Path))
		if r.URL.Path == "/echo" {
			// Some servers quote the credentials they refused.
			u, p, _ := r.BasicAuth()
			_, _ = w.Write([]byte(" user " + u + " password " + p + " header " + r.Header.Get("Authorization")))
		}
	}))
	t.Cleanup(func() { close(q.hang); srv.Close() })
	return q, srv
}

func (q *qos) set(path string, code int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.status[path] = code
}

func (q *qos) taken() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.calls
	q.calls = nil
	return out
}

func mustParse(t *testing.T, spec string) Call {
	t.Helper()
	c, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStepsRetryOnlyWhatFailed(t *testing.T) {
	q, srv := newQoS(t)
	h := New(Options{
		Online: []Call{mustParse(t, "GET "+srv.URL+"/online")},
		Offline: []Call{
			mustParse(t, "GET "+srv.URL+"/offline"),
			mustParse(t, "POST "+srv.URL+`/actuator/service-registry {"status":"OUT_OF_SERVICE"}`),
		},
		RetryMin: 20 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Log: slog.New(slog.DiscardHandler),
	})
	ctx := context.Background()
	if err := h.Online(ctx); err != nil {
		t.Fatal(err)
	}
	if got := q.taken(); len(got) != 1 || got[0] != "GET /online  " {
		t.Fatalf("online calls = %q", got)
	}

	q.set("/actuator/service-registry", 503)
	h.maxAttempts = 3
	err := h.Offline(ctx)
	if err == nil || !strings.Contains(err.Error(), "offline hook 2 of 2") || !strings.Contains(err.Error(), "HTTP 503") ||
		!strings.Contains(err.Error(), "answer for /actuator/service-registry") || !strings.Contains(err.Error(), "/offline): ok") {
		t.Fatalf("Offline with a 503 = %v; want each hook's outcome, the status and the answer", err)
	}
	got := q.taken()
	if n := count(got, "GET /offline  "); n != 1 {
		t.Fatalf("offline calls = %q: the Dubbo offline ran %d times, want once", got, n)
	}
	if n := count(got, `POST /actuator/service-registry application/json {"status":"OUT_OF_SERVICE"}`); n != 3 {
		t.Fatalf("offline calls = %q: the failing POST was not retried", got)
	}
	q.set("/actuator/service-registry", 200)
	if err := h.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	// Run again, the step repeats only the failed call, not the Dubbo offline.
	if got := q.taken(); len(got) != 1 || !strings.HasPrefix(got[0], "POST /actuator/service-registry") {
		t.Fatalf("retry calls = %q, want only the failed POST", got)
	}
}

func count(calls []string, want string) int {
	n := 0
	for _, c := range calls {
		if c == want {
			n++
		}
	}
	return n
}

// TestFirstHookNeverBlocksTheOthers: a first hook that fails or hangs
// must not keep the next from being called (issue 20: the server saw /500
// four times and /ok never), in either step; the failing one is retried on
// its own, each attempt bounded by the timeout.
func TestFirstHookNeverBlocksTheOthers(t *testing.T) {
	for _, first := range []string{"/500", "/hang"} {
		for _, step := range []string{"online", "offline"} {
			t.Run(step+first, func(t *testing.T) {
				t.Parallel()
				q, srv := newQoS(t)
				q.set("/500", 500)
				calls := []Call{mustParse(t, "GET "+srv.URL+first), mustParse(t, "GET "+srv.URL+"/ok")}
				o := Options{Timeout: 300 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond,
					Log: slog.New(slog.DiscardHandler)}
				run := (*Hooks).Offline
				if step == "online" {
					o.Online, run = calls, (*Hooks).Online
				} else {
					o.Offline = calls
				}
				h := New(o)
				h.maxAttempts = 3
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := run(h, ctx)
				got := q.taken()
				if count(got, "GET /ok  ") != 1 {
					t.Fatalf("calls = %q: /ok called %d times, want once", got, count(got, "GET /ok  "))
				}
				if count(got, "GET "+first+"  ") != 3 {
					t.Fatalf("calls = %q: %s was not tried 3 times within 10s (each attempt bounded at 300ms)", got, first)
				}
				if err == nil || !strings.Contains(err.Error(), step+" hook 1 of 2 (GET "+srv.URL+first+"): failed after") ||
					!strings.Contains(err.Error(), step+" hook 2 of 2 (GET "+srv.URL+"/ok): ok") {
					t.Fatalf("error = %v; want each hook's outcome", err)
				}
			})
		}
	}
}

func TestDisplayRedactsTheBody(t *testing.T) {
	for _, spec := range []string{
		`POST http://127.0.0.1:8080/x {"username":"nacos","password":"S3CRETPW"}`,
		`POST http://127.0.0.1:8080/x {"db_password": "S3CRETPW", "status": "UP"}`,
		`POST http://127.0.0.1:8080/x {"apiKey":"S3CRETPW"}`,
		`POST http://127.0.0.1:8080/x {"pin":1,"password":84471234}`,
		`POST http://alice:S3CRETPW@127.0.0.1:8080/x status=UP&password=S3CRETPW`,
	} {
		c := mustParse(t, spec)
		if d := c.Display(); strings.Contains(d, "S3CRETPW") || strings.Contains(d, "84471234") || !strings.Contains(d, "127.0.0.1:8080/x") {
			t.Errorf("Display(%q) = %q", spec, d)
		}
	}
}

func TestHangingEndpointHonoursContext(t *testing.T) {
	_, srv := newQoS(t)
	h := New(Options{Offline: []Call{mustParse(t, "GET "+srv.URL+"/hang")}, Timeout: time.Minute, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.Offline(ctx)
	if err == nil || !strings.Contains(err.Error(), "no answer within the registry timeout") {
		t.Fatalf("Offline against a hanging endpoint = %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Offline took %s past a 300ms context", took)
	}
}

func TestErrorsNeverShowCredentials(t *testing.T) {
	q, srv := newQoS(t)
	q.set("/offline", 401)
	u := strings.Replace(srv.URL, "http://", "http://alice:S3CRETPW@", 1)
	h := New(Options{Offline: []Call{mustParse(t, "GET "+u+"/offline")}, Log: slog.New(slog.DiscardHandler)})
	err := once(h).Offline(context.Background())
	if err == nil || strings.Contains(err.Error(), "S3CRETPW") {
		t.Fatalf("error = %v; want a failure without the password", err)
	}
	q.set("/echo", 403)
	h = New(Options{Offline: []Call{mustParse(t, "GET "+u+"/echo")}, Log: slog.New(slog.DiscardHandler)})
	err = once(h).Offline(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || strings.Contains(err.Error(), "S3CRETPW") ||
		strings.Contains(err.Error(), "YWxpY2U6UzNDUkVUUFc=") {
		t.Fatalf("error = %v; want the 403 without the password or its basic-auth form", err)
	}
	// A refused connection's error names the URL too.
	srv.Close()
	h = New(Options{Offline: []Call{mustParse(t, "GET "+u+"/offline")}, Log: slog.New(slog.DiscardHandler)})
	err = once(h).Offline(context.Background())
	if err == nil || strings.Contains(err.Error(), "S3CRETPW") {
		t.Fatalf("error = %v; want a failure without the password", err)
	}
}

// once is h, whose calls would retry until the step ends, with one attempt
// per call.
func once(h *Hooks) *Hooks {
	h.maxAttempts = 1
	return h
}

func TestNoCallsNoHooks(t *testing.T) {
	if h := New(Options{}); h != nil {
		t.Fatalf("New with no calls = %v, want nil", h)
	}
}

// FuzzParse: whatever the spec, Parse never panics, its error is one line
// without a URL password, and an accepted call is a known method and an
// http(s) URL with a host and a port in range, printed without its password.
func FuzzParse(f *testing.F) {
	f.Add("GET http://127.0.0.1:22222/offline")
	f.Fuzz(func(t *testing.T, spec string) {
		c, err := Parse(spec)
		pws := redact.Secrets(spec)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("Parse(%q) error on two lines: %q", spec, msg)
			}
			for _, pw := range pws {
				if distinct(spec, pw) && strings.Contains(msg, pw) {
					t.Fatalf("Parse(%q) error %q quotes the password %q", spec, msg, pw)
				}
			}
			return
		}
		if !methods[c.Method] {
			t.Fatalf("Parse(%q) accepted method %q", spec, c.Method)
		}
		u, perr := url.Parse(c.URL)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("Parse(%q) accepted URL %q", spec, c.URL)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("Parse(%q) accepted port %q", spec, p)
			}
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok && distinct(spec, pw) {
				if strings.Contains(c.String(), pw) || strings.Contains(strings.TrimPrefix(c.Display(), c.String()), pw) && !strings.Contains(c.Body, pw) {
					t.Fatalf("Parse(%q) prints the password %q: %q", spec, pw, c.Display())
				}
			}
		}
	})
}

// fixedText is every byte an error or a printed call may hold besides the
// spec's own: the messages, the mask, and Go's escapes of odd bytes.
const fixedText = "want 'METHOD URL [BODY]', e.g. 'GET http://127.0.0.1:22222/offline' (GET, HEAD, POST, PUT, PATCH or DELETE)" +
	" no URL: ports run from 1 to 65535 method \"\\ 0123456789abcdefABCDEFxuU... " + redact.Mask

// distinct reports whether pw, a password in spec, holds a byte found
// nowhere else in spec nor in fixedText: only then can its presence in an
// output be told apart from a coincidence.
func distinct(spec, pw string) bool {
	if len(pw) < redact.MinSecret {
		return false
	}
	rest := strings.ReplaceAll(spec, pw, "") + fixedText
	for i := 0; i < len(pw); i++ {
		if !strings.Contains(rest, pw[i:i+1]) {
			return true
		}
	}
	return false
}

// Hook calls dial through selfconn, so a call to the app's own port is
// gracefulinit's own connection, which the drain does not wait for.
func TestCallsDialThroughSelfconn(t *testing.T) {
	seen := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
		seen <- app != nil && selfconn.Contains(netip.MustParseAddrPort(r.RemoteAddr), app.AddrPort())
	}))
	t.Cleanup(srv.Close)
	h := once(New(Options{Offline: []Call{mustParse(t, "GET "+srv.URL+"/offline")}, Log: slog.New(slog.DiscardHandler)}))
	if err := h.Offline(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !<-seen {
		t.Fatal("the hook's connection is not in selfconn: the drain would count it as a caller")
	}
}
