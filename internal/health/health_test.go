package health

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func get(t *testing.T, s *Server, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestReadyFollowsState(t *testing.T) {
	s := start(t)
	for _, tc := range []struct {
		step func()
		code int
		body string
	}{
		{func() {}, 503, "starting"},
		{s.Ready, 200, "ready"},
		{s.Stopping, 503, "stopping"},
		// An online step that finishes after SIGTERM must not put the
		// pod back into the Service.
		{s.Ready, 503, "stopping"},
	} {
		tc.step()
		if code, body := get(t, s, http.MethodGet, "/ready"); code != tc.code || body != tc.body {
			t.Errorf("/ready = %d %q, want %d %q", code, body, tc.code, tc.body)
		}
		if code, _ := get(t, s, http.MethodGet, "/live"); code != 200 {
			t.Errorf("/live = %d, want 200 while gracefulinit runs", code)
		}
	}
}

func TestMethodsAndPaths(t *testing.T) {
	s := start(t)
	s.Ready()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodHead, "/ready", 200},
		{http.MethodPost, "/ready", 405},
		{http.MethodGet, "/", 404},
		{http.MethodGet, "/ready/x", 404},
	} {
		if code, _ := get(t, s, tc.method, tc.path); code != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, code, tc.code)
		}
	}
}

func TestListenBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, err = Listen(ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "--health-addr") || strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("Listen on a busy address: %v, want a one-line error naming --health-addr", err)
	}
}

// Idle connections that never send a request must neither exhaust the
// server for real probes forever nor block Close.
func TestSlowClientsAreBounded(t *testing.T) {
	s := start(t)
	s.Ready()
	var conns []net.Conn
	for range MaxConns + 4 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// The silent connections hit the read timeout, which frees slots.
	deadline := time.Now().Add(3*readTimeout + 5*time.Second)
	for {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + s.Addr().String() + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/ready = %d, want 200", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a probe never got through %d silent connections: %v", MaxConns+4, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { s.Close(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(6 * time.Second):
		t.Fatal("Close did not return within its context")
	}
}

func TestNilServerIsInert(t *testing.T) {
	var s *Server
	// The supervisor calls these whether or not --health-addr is set.
	s.Ready()
	s.Stopping()
	s.Close(context.Background())
}
