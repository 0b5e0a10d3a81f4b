package failover

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Do's contract: servers in turn from the one that answered last, an equal
// share of the deadline each, errors joined when all fail.
func TestDo(t *testing.T) {
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name     string
		n        int
		budget   time.Duration // ctx deadline; 0: none, timeout bounds the call
		timeout  time.Duration
		fail     map[int]bool // servers whose try fails at once
		hangs    map[int]bool // servers whose try waits for its ctx
		wantErr  string
		wantLast int           // server that succeeded
		wantTook time.Duration // at least
	}{
		{"first answers", 3, time.Second, 0, nil, nil, "", 0, 0},
		{"fails over in order", 3, time.Second, 0, map[int]bool{0: true, 1: true}, nil, "", 2, 0},
		{"a hanging server gets its share", 2, 600 * time.Millisecond, 0, nil, map[int]bool{0: true}, "", 1, 250 * time.Millisecond},
		{"all fail, joined", 2, time.Second, 0, map[int]bool{0: true, 1: true}, nil, "server 0 down\nserver 1 down", 0, 0},
		{"no deadline: timeout bounds the call", 1, 0, 200 * time.Millisecond, nil, map[int]bool{0: true}, "deadline exceeded", 0, 150 * time.Millisecond},
		{"no servers", 0, time.Second, 0, nil, nil, "no server", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.budget > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.budget)
				defer cancel()
			}
			var l List
			var tried []int
			start := time.Now()
			err := l.Do(ctx, tt.n, tt.timeout, func(ctx context.Context, i int) error {
				tried = append(tried, i)
				switch {
				case tt.fail[i]:
					return fmt.Errorf("server %d down", i)
				case tt.hangs[i]:
					return hang(ctx)
				}
				return nil
			})
			took := time.Since(start)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("err = %v after %v", err, tried)
			}
			if took < tt.wantTook || (tt.budget > 0 && took > tt.budget+time.Second) {
				t.Fatalf("took %v, want at least %v within the budget %v", took, tt.wantTook, tt.budget)
			}
			if tt.wantErr != "" {
				return
			}
			if got := tried[len(tried)-1]; got != tt.wantLast {
				t.Fatalf("succeeded on %d, want %d (tried %v)", got, tt.wantLast, tried)
			}
			// The next call starts with the server that answered.
			first := -1
			_ = l.Do(t.Context(), tt.n, time.Second, func(_ context.Context, i int) error { first = i; return nil })
			if first != tt.wantLast {
				t.Fatalf("next call started with %d, want %d", first, tt.wantLast)
			}
		})
	}
}

// The registry client connects directly, never follows a redirect, and
// sends basic auth in a header when given credentials.
func TestNewHTTPClient(t *testing.T) {
	var gotAuth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotAuth = append(gotAuth, fmt.Sprint(u, ":", p, ":", ok))
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
			return
		}
	}))
	t.Cleanup(srv.Close)
	// A proxy that does not exist: a client using it would fail.
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	tests := []struct {
		name, user, pass, path string
		wantStatus             int
		wantAuth               string
	}{
		{"no credentials", "", "", "/", http.StatusOK, "::false"},
		{"basic auth", "alice", "pw", "/", http.StatusOK, "alice:pw:true"},
		{"redirect not followed", "alice", "pw", "/redirect", http.StatusFound, "alice:pw:true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotAuth = nil
			resp, err := NewHTTPClient(tt.user, tt.pass).Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || len(gotAuth) != 1 || gotAuth[0] != tt.wantAuth {
				t.Fatalf("status %d, auth %q; want %d, %q", resp.StatusCode, gotAuth, tt.wantStatus, tt.wantAuth)
			}
		})
	}
}
