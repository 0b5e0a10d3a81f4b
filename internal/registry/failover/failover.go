// Package failover is the HTTP side every registry backend shares: the
// http.Client PID 1 talks to registries with, and the loop that sends one
// call to a list of servers in turn, each with its share of the deadline.
package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
)

// NewHTTPClient returns the client for registry calls. It connects
// directly, as the JVM's registry clients do (they ignore HTTP(S)_PROXY): a
// pod whose proxy variables exist for internet egress would otherwise send
// registry calls through a proxy that cannot reach the in-cluster registry.
// It keeps one idle connection per server (few calls, spread over weeks),
// never follows a redirect (that could replay credentials to another
// host), and has no Client.Timeout: every request carries a context with a
// deadline. With user or pass set, every request carries basic auth in a
// header, so credentials never need to be in a URL something might print.
func NewHTTPClient(user, pass string) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 1
	t.IdleConnTimeout = 2 * time.Minute
	var rt http.RoundTripper = t
	if user != "" || pass != "" {
		rt = &basicAuth{user: user, pass: pass, base: t}
	}
	return &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type basicAuth struct {
	user, pass string
	base       http.RoundTripper
}

func (b *basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.base.RoundTrip(r)
}

// List remembers which of a backend's servers answered last, so that the
// next call starts there. The zero value starts with the first server. It
// is safe for concurrent use.
type List struct {
	mu   sync.Mutex
	next int
}

// Do calls try for each of n servers in turn, starting with the one that
// last succeeded, until a try returns nil, and returns nil; when every try
// failed, the tries' errors joined. A try that returns an error moves on:
// transport errors and 5xx answers, as the backend decides. Each try gets
// an equal share of what is left of ctx's deadline (the last one all of
// it), so a server that hangs cannot eat the whole budget; without a
// deadline, the whole call is bounded by timeout. When ctx ends before any
// try failed, its error is returned.
func (l *List) Do(ctx context.Context, n int, timeout time.Duration, try func(ctx context.Context, server int) error) error {
	if n <= 0 {
		return errors.New("no server to call")
	}
	if _, ok := ctx.Deadline(); !ok && timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	l.mu.Lock()
	start := l.next
	l.mu.Unlock()
	var errs []error
	for i := 0; i < n && ctx.Err() == nil; i++ {
		idx := (start + i) % n
		actx, cancel := shareOf(ctx, n-i)
		err := try(actx, idx)
		cancel()
		if err == nil {
			l.mu.Lock()
			l.next = idx
			l.mu.Unlock()
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// shareOf gives one of k remaining tries its share of ctx's time left.
func shareOf(ctx context.Context, k int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || k <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(dl)/time.Duration(k))
}

// Excerpt is how much of a server's answer an error quotes: its words on
// one line, cut after n bytes.
func Excerpt(body string, n int) string {
	s := strings.Join(strings.Fields(body), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// Probe GETs u and succeeds on any answer but a 5xx or a 404: auth
// failures still prove the address is right (the registry steps report
// them), a 404 says the path (Nacos's context path, Eureka's service URL)
// is not the registry's. Each probe is bounded by 3 s within ctx.
func Probe(ctx context.Context, hc *http.Client, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable: %v", redact.Err(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 500:
		return fmt.Errorf("answered %s", resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("answered %s: is the path in the address right?", resp.Status)
	}
	return nil
}
