package httphook

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
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
		{spec: "", err: "method"},
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

func TestStepsRunInOrderAndRetryOnlyWhatFailed(t *testing.T) {
	q, srv := newQoS(t)
	h := New(Options{
		Online: []Call{mustParse(t, "GET "+srv.URL+"/online")},
		Offline: []Call{
			mustParse(t, "GET "+srv.URL+"/offline"),
			mustParse(t, "POST "+srv.URL+`/actuator/service-registry {"status":"OUT_OF_SERVICE"}`),
		},
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
	err := h.Offline(ctx)
	if err == nil || !strings.Contains(err.Error(), "offline hook 2 of 2") || !strings.Contains(err.Error(), "HTTP 503") ||
		!strings.Contains(err.Error(), "answer for /actuator/service-registry") {
		t.Fatalf("Offline with a 503 = %v; want the hook, the status and the answer", err)
	}
	want := []string{"GET /offline  ", `POST /actuator/service-registry application/json {"status":"OUT_OF_SERVICE"}`}
	if got := q.taken(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("offline calls = %q, want %q", got, want)
	}
	q.set("/actuator/service-registry", 200)
	if err := h.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	// The retry repeats only the failed call, not the Dubbo offline.
	if got := q.taken(); len(got) != 1 || !strings.HasPrefix(got[0], "POST /actuator/service-registry") {
		t.Fatalf("retry calls = %q, want only the failed POST", got)
	}
}

func TestHangingEndpointHonoursContext(t *testing.T) {
	_, srv := newQoS(t)
	h := New(Options{Offline: []Call{mustParse(t, "GET "+srv.URL+"/hang")}, Log: slog.New(slog.DiscardHandler)})
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
	err := h.Offline(context.Background())
	if err == nil || strings.Contains(err.Error(), "S3CRETPW") {
		t.Fatalf("error = %v; want a failure without the password", err)
	}
	q.set("/echo", 403)
	h = New(Options{Offline: []Call{mustParse(t, "GET "+u+"/echo")}, Log: slog.New(slog.DiscardHandler)})
	err = h.Offline(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || strings.Contains(err.Error(), "S3CRETPW") ||
		strings.Contains(err.Error(), "YWxpY2U6UzNDUkVUUFc=") {
		t.Fatalf("error = %v; want the 403 without the password or its basic-auth form", err)
	}
	// A refused connection's error names the URL too.
	srv.Close()
	h = New(Options{Offline: []Call{mustParse(t, "GET "+u+"/offline")}, Log: slog.New(slog.DiscardHandler)})
	err = h.Offline(context.Background())
	if err == nil || strings.Contains(err.Error(), "S3CRETPW") {
		t.Fatalf("error = %v; want a failure without the password", err)
	}
}

func TestNoCallsNoHooks(t *testing.T) {
	if h := New(Options{}); h != nil {
		t.Fatalf("New with no calls = %v, want nil", h)
	}
}
