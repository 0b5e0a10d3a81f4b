// Package ready tells when the app has become ready to serve: an HTTP
// endpoint answering 2xx, or a TCP port accepting connections.
package ready

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

// Probe checks readiness once. A nil error means ready.
type Probe interface {
	Check(ctx context.Context) error
	String() string
}

// HTTP is ready when GET url answers 2xx.
type HTTP struct {
	URL string
	// Client makes the request; nil means one that dials through selfconn,
	// so the drain does not take the probe for a caller of the app.
	Client *http.Client
}

// client dials through selfconn and otherwise behaves as
// http.DefaultClient (proxy from the environment, keep-alive).
var client = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = selfconn.DialContext
	return &http.Client{Transport: tr}
}()

// String and Check's errors mask a password in the URL's userinfo.
func (p HTTP) String() string { return "http " + redact.URL(p.URL) }

func (p HTTP) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return redact.Err(err, redact.Secrets(p.URL)...)
	}
	c := p.Client
	if c == nil {
		c = client
	}
	resp, err := c.Do(req)
	if err != nil {
		return redact.Err(err, redact.Secrets(p.URL)...)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// TCP is ready when Addr accepts a connection.
type TCP struct{ Addr string }

func (p TCP) String() string { return "tcp " + p.Addr }

// Check dials through selfconn, so the drain does not take the probe for a
// caller of the app.
func (p TCP) Check(ctx context.Context) error {
	c, err := selfconn.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// Wait probes every interval until the probe succeeds, timeout passes (0:
// no timeout) or ctx ends. Each probe is bounded by the interval (at least
// one second) so a hanging endpoint cannot stall the loop.
func Wait(ctx context.Context, p Probe, interval, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	per := interval
	if per < time.Second {
		per = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		pctx, cancel := context.WithTimeout(ctx, per)
		err := p.Check(pctx)
		cancel()
		if err == nil {
			return nil
		}
		// A probe cut short by the overall deadline says nothing about the
		// app: keep the answer before it for the error.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last probe: %v)", p, ctx.Err(), last)
		case <-t.C:
		}
	}
}
