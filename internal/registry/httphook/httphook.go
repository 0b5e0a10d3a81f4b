// Package httphook takes the app out of rotation, and puts it back, through
// plain HTTP calls: the registries gracefulinit does not speak natively.
// Recipes: Dubbo's QoS port (GET http://127.0.0.1:22222/offline and
// /online), Spring Cloud's service-registry actuator (POST
// /actuator/service-registry with {"status":"OUT_OF_SERVICE"} and
// {"status":"UP"}, which covers Consul and Zookeeper apps too).
//
// It is a registry.Registry: the hooks run in the same slots as Nacos and
// Eureka (online after readiness, offline at SIGTERM), bounded by the
// registry timeout, retried by registry.Set, and reported in the summary.
package httphook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
)

// Call is one HTTP request: METHOD URL [BODY].
type Call struct {
	Method string
	URL    string
	Body   string
}

func (c Call) String() string { return c.Method + " " + redact.URL(c.URL) }

var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
}

// Parse reads "METHOD URL [BODY]". The body is everything after the URL's
// following space, so it may contain spaces (and commas: the flags are not
// comma lists).
func Parse(spec string) (Call, error) {
	const fix = `want 'METHOD URL [BODY]', e.g. 'GET http://127.0.0.1:22222/offline'`
	spec = strings.TrimSpace(spec)
	method, rest, _ := strings.Cut(spec, " ")
	rest = strings.TrimLeft(rest, " ")
	rawURL, body, _ := strings.Cut(rest, " ")
	m := strings.ToUpper(method)
	if !methods[m] {
		return Call{}, fmt.Errorf("method %q: %s (GET, HEAD, POST, PUT, PATCH or DELETE)", failover.Excerpt(method, 16), fix)
	}
	if rawURL == "" {
		return Call{}, fmt.Errorf("no URL: %s", fix)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Call{}, fmt.Errorf("URL %q: %s", redact.URL(rawURL), fix)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Call{}, fmt.Errorf("URL %q: ports run from 1 to 65535", redact.URL(rawURL))
		}
	}
	return Call{Method: m, URL: rawURL, Body: strings.TrimSpace(body)}, nil
}

// Options configure the hooks.
type Options struct {
	Online  []Call // run in order once the app is ready
	Offline []Call // run in order when the stop sequence begins
	// Client sends the calls; nil means the registries' client (no proxy,
	// no redirects: a redirect answers as a failed call).
	Client *http.Client
	Log    *slog.Logger
}

// Hooks is the registry.Registry of the HTTP calls. Each step remembers
// which of its calls already succeeded, so a retry repeats only the ones
// that failed: a recipe's calls need not be idempotent.
type Hooks struct {
	o Options

	mu          sync.Mutex
	onlineDone  []bool
	offlineDone []bool
}

// New returns the hooks, or nil when there are none.
func New(o Options) *Hooks {
	if len(o.Online) == 0 && len(o.Offline) == 0 {
		return nil
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Client == nil {
		o.Client = failover.NewHTTPClient("", "")
	}
	return &Hooks{o: o, onlineDone: make([]bool, len(o.Online)), offlineDone: make([]bool, len(o.Offline))}
}

func (h *Hooks) Name() string { return "http" }

// SelfRegistered: the calls act on a registration gracefulinit does not
// make, which may exist before the app is ready; the offline calls run on
// a stop while the app starts.
func (h *Hooks) SelfRegistered() bool { return len(h.o.Offline) > 0 }

// Online runs the --online-http calls that have not succeeded yet.
func (h *Hooks) Online(ctx context.Context) error {
	return h.run(ctx, "online", h.o.Online, h.onlineDone)
}

// Offline runs the --offline-http calls that have not succeeded yet.
func (h *Hooks) Offline(ctx context.Context) error {
	return h.run(ctx, "offline", h.o.Offline, h.offlineDone)
}

// Close has nothing to release.
func (h *Hooks) Close(context.Context) error {
	if t, ok := h.o.Client.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}

func (h *Hooks) run(ctx context.Context, step string, calls []Call, done []bool) error {
	for i, c := range calls {
		h.mu.Lock()
		ok := done[i]
		h.mu.Unlock()
		if ok {
			continue
		}
		if err := h.do(ctx, c); err != nil {
			return fmt.Errorf("%s hook %d of %d: %w", step, i+1, len(calls), err)
		}
		h.mu.Lock()
		done[i] = true
		h.mu.Unlock()
		h.o.Log.Info("http "+step+" hook done", "call", c.String())
	}
	return nil
}

// maxBody bounds what is read of an answer: only its first words are shown.
const maxBody = 64 << 10

func (h *Hooks) do(ctx context.Context, c Call) error {
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return fmt.Errorf("%s: %s", c, scrub(err.Error(), c.URL))
	}
	if c.Body != "" {
		ct := "text/plain; charset=utf-8"
		if json.Valid([]byte(c.Body)) {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("User-Agent", "gracefulinit")
	resp, err := h.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %s", c, transportError(err, c.URL))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: HTTP %d %s%s", c, resp.StatusCode, http.StatusText(resp.StatusCode), excerpt(scrub(string(b), c.URL)))
	}
	return nil
}

// transportError names what failed without repeating the URL (with its
// possible credentials) that net/http puts in every *url.Error.
func transportError(err error, rawURL string) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "no answer within the registry timeout"
	}
	return scrub(redact.Err(err).Error(), rawURL)
}

// excerpt is the part of an answer an error quotes, after ": ".
func excerpt(s string) string {
	if s = failover.Excerpt(s, 200); s != "" {
		return ": " + s
	}
	return ""
}
