// Package httphook takes the app out of rotation, and puts it back, through
// plain HTTP calls: the registries gracefulinit does not speak natively.
// Recipes: Dubbo's QoS port (GET http://127.0.0.1:22222/offline and
// /online), Spring Cloud's service-registry actuator (POST
// /actuator/service-registry with {"status":"OUT_OF_SERVICE"} and
// {"status":"UP"}, which covers Consul and Zookeeper apps too).
//
// It is a registry.Registry: the hooks run in the same slots as Nacos and
// Eureka (online after readiness, offline at SIGTERM) and are reported in
// the summary. Unlike theirs, each call retries on its own, each attempt
// bounded by the registry timeout, all calls of a step side by side.
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
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

// Call is one HTTP request: METHOD URL [BODY].
type Call struct {
	Method string
	URL    string
	Body   string
}

func (c Call) String() string { return c.Method + " " + redact.URL(c.URL) }

// Display is the whole call with its body, fit to print (--check):
// credentials in the URL and the body are masked.
func (c Call) Display() string {
	s := c.String()
	if c.Body != "" {
		s += " " + redact.Text(c.Body, redact.Secrets(c.URL)...)
	}
	return s
}

// NewRequest builds the call's request. A body that is valid JSON is sent
// as application/json, one of key=value pairs joined by & as a form, any
// other as plain text: the same spec means the same request for a hook and
// for a warm-up.
func (c Call) NewRequest(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return nil, err
	}
	if c.Body != "" {
		req.Header.Set("Content-Type", bodyType(c.Body))
	}
	return req, nil
}

func bodyType(b string) string {
	switch {
	case json.Valid([]byte(b)):
		return "application/json"
	case isForm(b):
		return "application/x-www-form-urlencoded"
	}
	return "text/plain; charset=utf-8"
}

// isForm reports whether b is key=value pairs joined by &, as a form is
// encoded: no spaces, every pair with a key and an equals sign.
func isForm(b string) bool {
	if strings.ContainsAny(b, " \t\r\n") {
		return false
	}
	for _, kv := range strings.Split(b, "&") {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return false
		}
	}
	_, err := url.ParseQuery(b)
	return err == nil
}

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
		// A spec missing its method starts with the URL, which may hold a
		// password: only a word of letters is quoted back.
		if method == "" || strings.Trim(method, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return Call{}, fmt.Errorf("no method: %s (GET, HEAD, POST, PUT, PATCH or DELETE)", fix)
		}
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
	Online  []Call // run once the app is ready, side by side
	Offline []Call // run when the stop sequence begins, side by side
	// Timeout bounds each attempt of each call (--registry-timeout);
	// 0 means registry.DefaultTimeout.
	Timeout time.Duration
	// RetryMin and RetryMax bound the back-off between the attempts of one
	// call (default 250 ms and 2 s; online waits up to 5 s).
	RetryMin, RetryMax time.Duration
	// Client sends the calls; nil means the registries' client (no proxy,
	// no redirects: a redirect answers as a failed call), dialling through
	// selfconn so that a call to the app's own port is not a caller the
	// drain waits for.
	Client *http.Client
	Log    *slog.Logger
}

// Hooks is the registry.Registry of the HTTP calls. Every call of a step
// runs in its own goroutine with its own retries, each attempt bounded on
// its own: a failing or hanging call never holds up the others. Each call
// remembers whether it succeeded, so a step run again repeats only the
// ones that failed: a recipe's calls need not be idempotent.
type Hooks struct {
	o Options

	// maxAttempts, when set (tests), ends a call's retries after that many.
	maxAttempts int

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
		if t, ok := o.Client.Transport.(*http.Transport); ok {
			t.DialContext = selfconn.DialContext
			// The calls of a step run side by side, often to one host.
			t.MaxIdleConnsPerHost = max(len(o.Online), len(o.Offline))
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = registry.DefaultTimeout
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 250 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(2*time.Second, o.RetryMin)
	}
	return &Hooks{o: o, onlineDone: make([]bool, len(o.Online)), offlineDone: make([]bool, len(o.Offline))}
}

var (
	_ registry.Registry     = (*Hooks)(nil)
	_ registry.Steps        = (*Hooks)(nil)
	_ registry.SelfRetrying = (*Hooks)(nil)
)

func (h *Hooks) Name() string { return "http" }

// SelfRegistered: the calls act on a registration gracefulinit does not
// make, which may exist before the app is ready; the offline calls run on
// a stop while the app starts.
func (h *Hooks) SelfRegistered() bool { return len(h.o.Offline) > 0 }

// HasOnline and HasOffline say which steps have calls: registry.Set skips
// a step without any, so the summary says offline=none, not ok.
func (h *Hooks) HasOnline() bool  { return len(h.o.Online) > 0 }
func (h *Hooks) HasOffline() bool { return len(h.o.Offline) > 0 }

// RetriesItself tells registry.Set that each call retries and bounds its
// own attempts: Set calls Online and Offline once with the step's whole
// context.
func (h *Hooks) RetriesItself() {}

// Online runs the --online-http calls that have not succeeded yet, each
// until it succeeds or ctx ends.
func (h *Hooks) Online(ctx context.Context) error {
	return h.run(ctx, "online", h.o.Online, h.onlineDone)
}

// Offline runs the --offline-http calls that have not succeeded yet, each
// until it succeeds or ctx ends.
func (h *Hooks) Offline(ctx context.Context) error {
	return h.run(ctx, "offline", h.o.Offline, h.offlineDone)
}

// Close releases idle connections.
func (h *Hooks) Close(context.Context) error {
	if t, ok := h.o.Client.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// outcome is what became of one call of a step.
type outcome struct {
	attempts int   // 0: it had succeeded before this run
	err      error // nil: done
}

// run starts every pending call of the step at once and waits for all of
// them. Its error, when a call failed, reports every call of the step.
func (h *Hooks) run(ctx context.Context, step string, calls []Call, done []bool) error {
	outs := make([]outcome, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		h.mu.Lock()
		ok := done[i]
		h.mu.Unlock()
		if ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = h.untilDone(ctx, step, i, len(calls), c)
			if outs[i].err == nil {
				h.mu.Lock()
				done[i] = true
				h.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return report(step, calls, outs)
}

// untilDone calls c, each attempt bounded by the timeout, until it
// succeeds or ctx ends, backing off between attempts.
func (h *Hooks) untilDone(ctx context.Context, step string, i, n int, c Call) outcome {
	name := fmt.Sprintf("%d of %d", i+1, n)
	limit := h.o.RetryMax
	if step == "online" {
		// Online retries for as long as the app runs: a call that keeps
		// failing warns every 5 s at most, not every 2.
		limit = max(limit, 5*time.Second)
	}
	b := registry.Backoff{First: h.o.RetryMin, Limit: limit, Timeout: h.o.Timeout, Attempts: h.maxAttempts}
	attempts, err := b.Do(ctx, func(actx context.Context) error {
		return registry.Recover(c.String(), func() error { return h.do(actx, c) })
	}, nil, func(attempt int, wait time.Duration, err error) {
		h.o.Log.Warn("http "+step+" hook failed, retrying", "hook", name, "attempt", attempt, "retry_in", wait, "error", err)
	})
	if err == nil {
		h.o.Log.Info("http "+step+" hook done", "hook", name, "call", c.String(), "attempts", attempts)
	}
	return outcome{attempts: attempts, err: err}
}

// report is nil when every call is done, else one line naming each call
// of the step and what became of it, for the log and the summary.
func report(step string, calls []Call, outs []outcome) error {
	failed := false
	for _, o := range outs {
		failed = failed || o.err != nil
	}
	if !failed {
		return nil
	}
	parts := make([]string, len(calls))
	for i, o := range outs {
		what := "ok"
		switch {
		case o.err != nil:
			// do's errors start with the call, named here already.
			msg := strings.TrimPrefix(o.err.Error(), calls[i].String()+": ")
			what = fmt.Sprintf("failed after %d attempt%s: %s", o.attempts, plural(o.attempts), msg)
		case o.attempts > 1:
			what = fmt.Sprintf("ok after %d attempts", o.attempts)
		}
		parts[i] = fmt.Sprintf("%s hook %d of %d (%s): %s", step, i+1, len(calls), calls[i], what)
	}
	return errors.New(strings.Join(parts, "; "))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// maxBody bounds what is read of an answer: only its first words are shown.
const maxBody = 64 << 10

func (h *Hooks) do(ctx context.Context, c Call) error {
	req, err := c.NewRequest(ctx)
	if err != nil {
		return fmt.Errorf("%s: %s", c, scrub(err.Error(), c.URL))
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
