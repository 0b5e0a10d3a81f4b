package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
)

// maxErrBody bounds how much of a server's answer goes into an error.
const maxErrBody = 300

// response is one server's answer, kept whole for the caller to interpret.
type response struct {
	method, path string
	server       string // display form, no userinfo
	status       int
	body         []byte
	scrub        func(string) string
}

// fail turns an unexpected answer into an error naming the request, the
// status and the (trimmed, scrubbed) body.
func (r *response) fail(why string) error {
	body := failover.Excerpt(string(r.body), maxErrBody)
	msg := fmt.Sprintf("%s %s%s: HTTP %d", r.method, r.server, r.path, r.status)
	if body != "" {
		msg += ": " + body
	}
	if why != "" {
		msg += " (" + why + ")"
	}
	return errors.New(r.scrub(msg))
}

// do sends one request, failing over across the servers (see failover.List)
// on transport errors and 5xx answers. Any answer below 500 is returned as
// is; when every server failed, the last 5xx answer is returned if there
// was one, else the joined transport errors.
func (m *mark) do(ctx context.Context, method, path string, params url.Values) (*response, error) {
	var resp, last5xx *response
	err := m.list.Do(ctx, len(m.servers), m.timeout, func(ctx context.Context, idx int) error {
		r, err := m.doOn(ctx, idx, method, path, params)
		if err != nil {
			return err
		}
		if r.status >= 500 {
			last5xx = r
			return r.fail("")
		}
		resp = r
		return nil
	})
	switch {
	case err == nil:
		return resp, nil
	case last5xx != nil:
		return last5xx, nil
	}
	return nil, err
}

// doOn sends the request to one server, logging in first when credentials
// are set, and once more when the server rejects the token (expired early,
// server restarted with a new secret).
func (m *mark) doOn(ctx context.Context, idx int, method, path string, params url.Values) (*response, error) {
	tok, err := m.tokenFor(ctx, idx, false)
	if err != nil {
		return nil, err
	}
	resp, err := m.send(ctx, idx, method, path, params, tok)
	if err != nil || m.user == "" || (resp.status != http.StatusUnauthorized && resp.status != http.StatusForbidden) {
		return resp, err
	}
	m.log.Info("nacos rejected the access token; logging in again", "server", m.servers[idx].display, "status", resp.status)
	if tok, err = m.tokenFor(ctx, idx, true); err != nil {
		return nil, err
	}
	return m.send(ctx, idx, method, path, params, tok)
}

// send puts params in the query string, like Nacos's own clients do; writes
// also carry a form Content-Type, which Polaris insists on.
func (m *mark) send(ctx context.Context, idx int, method, path string, params url.Values, token string) (*response, error) {
	s := m.servers[idx]
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	if token != "" {
		q.Set("accessToken", token)
	}
	u := *s.base
	u.Path = s.contextPath + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, m.transportErr(method, s, path, err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return m.roundTrip(req, method, s, path)
}

func (m *mark) roundTrip(req *http.Request, method string, s server, path string) (*response, error) {
	req.Header.Set("User-Agent", "gracefulinit")
	req.Header.Set("Accept", "application/json")
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, m.transportErr(method, s, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, m.transportErr(method, s, path, err)
	}
	return &response{method: method, path: s.contextPath + path, server: s.display, status: resp.StatusCode, body: body, scrub: m.scrub}, nil
}

// transportErr names the request without its URL: *url.Error would print the
// query string, and with it the access token.
func (m *mark) transportErr(method string, s server, path string, err error) error {
	return errors.New(m.scrub(fmt.Sprintf("%s %s%s: %v", method, s.display, s.contextPath+path, redact.Err(err))))
}

// tokenFor returns a valid access token ("" without credentials), logging in
// when there is none, when it is about to expire, or when force is set.
// Logging in lazily matters: the supervisor lives for weeks, tokens for hours.
func (m *mark) tokenFor(ctx context.Context, idx int, force bool) (string, error) {
	if m.user == "" {
		return "", nil
	}
	m.mu.Lock()
	if !force && m.now().Before(m.tokenRefresh) {
		tok := m.token
		m.mu.Unlock()
		return tok, nil
	}
	m.mu.Unlock()
	tok, ttl, err := m.login(ctx, idx)
	if errors.Is(err, errNoAuthEndpoint) {
		if !force {
			m.log.Warn("nacos server has no login endpoint; sending requests without a token", "server", m.servers[idx].display, "user", m.user)
			m.mu.Lock()
			m.token, m.tokenRefresh = "", m.now().Add(time.Minute)
			m.mu.Unlock()
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	// Refresh a little before expiry so a request never carries a token
	// that dies in flight.
	margin := ttl / 10
	if margin > 5*time.Minute {
		margin = 5 * time.Minute
	}
	m.mu.Lock()
	m.token, m.tokenRefresh = tok, m.now().Add(ttl-margin)
	m.mu.Unlock()
	m.log.Debug("nacos login ok", "server", m.servers[idx].display, "user", m.user, "token_ttl", ttl)
	return tok, nil
}

// login posts the credentials in a form body (never in the URL, where proxies
// and access logs would keep them). Nacos 3.x moved the endpoint.
func (m *mark) login(ctx context.Context, idx int) (string, time.Duration, error) {
	s := m.servers[idx]
	var resp *response
	for _, path := range []string{"/v1/auth/login", "/v3/auth/user/login"} {
		form := url.Values{"username": {m.user}, "password": {m.password}}
		u := *s.base
		u.Path = s.contextPath + path
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return "", 0, m.transportErr(http.MethodPost, s, path, err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err = m.roundTrip(req, http.MethodPost, s, path)
		if err != nil {
			return "", 0, fmt.Errorf("nacos login as %q: %w", m.user, err)
		}
		if resp.status != http.StatusNotFound && resp.status != http.StatusGone && resp.status != http.StatusMethodNotAllowed {
			break
		}
	}
	if resp.status == http.StatusNotFound {
		// No login endpoint at all (Polaris, or Nacos-compatible servers
		// without auth): requests go without a token; a server that does
		// want one answers them 401/403, which says more than this 404.
		return "", 0, errNoAuthEndpoint
	}
	if resp.status != http.StatusOK {
		return "", 0, fmt.Errorf("nacos login as %q: %w", m.user, resp.fail(""))
	}
	type result struct {
		AccessToken string `json:"accessToken"`
		TokenTTL    int64  `json:"tokenTtl"`
	}
	var r struct {
		result
		Data *result `json:"data"` // 3.x wraps answers in {code, message, data}
	}
	if err := json.Unmarshal(resp.body, &r); err != nil {
		return "", 0, fmt.Errorf("nacos login as %q: %w", m.user, resp.fail("unreadable answer"))
	}
	if r.AccessToken == "" && r.Data != nil {
		r.result = *r.Data
	}
	if r.AccessToken == "" {
		return "", 0, fmt.Errorf("nacos login as %q: %w", m.user, resp.fail("no accessToken in the answer"))
	}
	ttl := time.Duration(r.TokenTTL) * time.Second
	if ttl <= 0 {
		ttl = 18000 * time.Second // Nacos's default
	}
	return r.AccessToken, ttl, nil
}

var errNoAuthEndpoint = errors.New("no login endpoint")

// scrub removes secrets from text bound for an error or a log: the
// password, the access token, and the basic-auth credentials of addresses
// that carry userinfo (Go's client sends them, a server may echo them).
func (m *mark) scrub(s string) string {
	m.mu.Lock()
	tok := m.token
	m.mu.Unlock()
	return redact.Text(s, append(m.secrets(), tok)...)
}

func (m *mark) secrets() []string {
	out := []string{m.password, redact.BasicAuth(m.user, m.password)}
	for _, s := range m.servers {
		if pw, ok := s.base.User.Password(); ok {
			out = append(out, pw, redact.BasicAuth(s.base.User.Username(), pw))
		}
	}
	return out
}
