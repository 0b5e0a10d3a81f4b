package eureka

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry/failover"
)

// maxBody bounds what is read from a response: instance documents are a few
// KiB, and a misbehaving proxy must not make PID 1 buffer without limit.
const maxBody = 1 << 20

// client issues Eureka REST calls itself instead of through fargo's
// EurekaConnection, because fargo's network layer fits none of what PID 1
// needs: its calls take no context (an abandoned goroutine would still land
// its request later, e.g. a register after our deregister), it uses a
// process-global http.Client, picks a random service URL instead of failing
// over in order, retries after sleeping 10 ns, and logs full URLs. fargo's
// types still describe the instance we register (see register in eureka.go).
type client struct {
	bases   []string
	hc      *http.Client
	timeout time.Duration // bound of a call when ctx has no deadline
	// secrets are masked in errors: the password and the Authorization
	// value built from it, which a server or proxy may echo.
	secrets []string

	list failover.List // which base URL answered last
}

// answer is a definitive HTTP answer from one Eureka server: anything but a
// transport error or a 5xx, which are failed over.
type answer struct {
	code int
	body []byte
	base string
}

// notFound reports whether the server says the instance does not exist.
// Netflix Eureka answers 404; Polaris answers 400 to status changes on an
// unknown instance (its "instance not found" code 400xxx mapped to HTTP).
func (a answer) notFound() bool {
	return a.code == http.StatusNotFound || a.code == http.StatusBadRequest
}

func (a answer) ok() bool { return a.code >= 200 && a.code < 300 }

// statusError is an unexpected HTTP status; it names the request without
// credentials (service URLs never carry userinfo, see New).
type statusError struct {
	method, url string
	code        int
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d %s", e.method, e.url, e.code, http.StatusText(e.code))
	if e.code == http.StatusUnauthorized || e.code == http.StatusForbidden {
		msg += " (check --eureka-username and --eureka-password)"
	}
	return msg
}

// do sends method to path (below the service URL) on each service URL in
// turn (see failover.List) until one gives a definitive answer: transport
// errors and 5xx move on to the next URL.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body []byte) (answer, error) {
	var a answer
	err := c.list.Do(ctx, len(c.bases), c.timeout, func(ctx context.Context, idx int) error {
		var err error
		a, err = c.once(ctx, method, c.bases[idx], path, query, body)
		return err
	})
	if err != nil {
		return answer{}, err
	}
	return a, nil
}

func (c *client) once(ctx context.Context, method, base, path string, query url.Values, body []byte) (answer, error) {
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, redact.URL(u), err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, redact.URL(u), redact.Err(err, c.secrets...))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading response: %w", method, redact.URL(u), err)
	}
	if resp.StatusCode >= 500 {
		return answer{}, &statusError{method: method, url: redact.URL(u), code: resp.StatusCode}
	}
	return answer{code: resp.StatusCode, body: b, base: base}, nil
}

// instancePath is the resource of one instance, below a service URL.
func instancePath(app, id string) string {
	return "/apps/" + url.PathEscape(app) + "/" + url.PathEscape(id)
}

// trimBase normalises a service URL: a trailing slash would make "//apps",
// which Eureka does not route.
func trimBase(s string) string { return strings.TrimRight(s, "/") }
