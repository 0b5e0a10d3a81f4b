// Package health serves gracefulinit's Kubernetes probe endpoints:
//
//	/live   200 while gracefulinit supervises the app
//	/ready  200 only between "the app is ready and back in the registry"
//	        and the start of the stop sequence; 503 before and after
//
// A readinessProbe on /ready holds a rollout until consumers can find the
// new pod in the registry, not merely until its port answers, and takes the
// pod out of the Service the moment the stop sequence begins.
//
// The server never blocks the supervisor: state changes are atomic stores,
// the listener is bounded in connections, and every connection has read,
// write and idle deadlines.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
)

// State is where the app stands, as /ready reports it.
type State int32

const (
	Starting State = iota // not yet ready, or not yet back in the registry
	Ready                 // ready and online
	Stopping              // the stop sequence has begun
)

func (s State) String() string {
	switch s {
	case Ready:
		return "ready"
	case Stopping:
		return "stopping"
	}
	return "starting"
}

// Limits of the server: small, because only probes talk to it. A probe
// (the kubelet's opens a connection per probe) sends its request at once
// and needs no keep-alive: a connection that has not sent its headers
// within readTimeout, or sits idle for idleTimeout, is closed.
const (
	MaxConns       = 16
	readTimeout    = 2 * time.Second
	writeTimeout   = 2 * time.Second
	idleTimeout    = 5 * time.Second
	maxHeaderBytes = 4 << 10
)

// Server answers the probes. The zero value is not usable; use Listen.
type Server struct {
	state atomic.Int32
	ln    *limitListener
	srv   *http.Server
	done  chan struct{}
}

// Listen binds addr (HOST:PORT) at once, so a bad or busy address is an
// error at start rather than a probe that silently never answers. Serving
// starts with Serve.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError(addr, err)
	}
	l := newLimitListener(ln, MaxConns)
	s := &Server{ln: l, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/live", s.live)
	mux.HandleFunc("/ready", s.ready)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         l.track,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers probes in the background until Close. It returns at once.
func (s *Server) Serve() {
	go func() {
		defer close(s.done)
		// A probe endpoint must never take PID 1 down.
		_ = registry.Recover("the health server", func() error { return s.srv.Serve(s.ln) })
	}()
}

// Ready marks the app ready and online, unless the stop sequence already
// began: Stopping is final, so a late online step cannot flip /ready back.
// Safe from any goroutine; never blocks. A nil Server ignores it.
func (s *Server) Ready() {
	if s != nil {
		s.state.CompareAndSwap(int32(Starting), int32(Ready))
	}
}

// Stopping marks the start of the stop sequence: /ready answers 503 from
// now on. A nil Server ignores it.
func (s *Server) Stopping() {
	if s != nil {
		s.state.Store(int32(Stopping))
	}
}

// State is the state /ready reports now.
func (s *Server) State() State { return State(s.state.Load()) }

// Close stops the server, waiting at most until ctx ends.
func (s *Server) Close(ctx context.Context) {
	if s == nil {
		return
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

// liveBody is /live's answer, which Check recognises.
const liveBody = "live\n"

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(w, r) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(liveBody))
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(w, r) {
		return
	}
	st := s.State()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if st != Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(st.String() + "\n"))
}

func probeMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "use GET", http.StatusMethodNotAllowed)
	return false
}

// limitListener bounds the connections open at once: a flood of probes or
// a port scan costs at most max goroutines. A new connection is never
// starved by the ones already open: when every slot is taken, the one
// that has waited longest without a request in progress (silent since it
// connected, or idle between keep-alive requests) is closed to make room.
// Only when every slot serves a request (each bounded by the read and
// write timeouts) does the new one wait.
type limitListener struct {
	net.Listener
	sem chan struct{}

	mu    sync.Mutex
	conns map[*limitConn]struct{}
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), conns: map[*limitConn]struct{}{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.sem <- struct{}{}:
	default:
		// The evicted connection's Close frees its slot at once; with
		// none to evict, every slot serves a request, each bounded by the
		// timeouts, and the new connection waits for one to end, or for
		// a slow sender of headers to become evictable.
		for acquired := false; !acquired; {
			l.evict()
			select {
			case l.sem <- struct{}{}:
				acquired = true
			case <-time.After(slowHeaders / 2):
			}
		}
	}
	lc := &limitConn{Conn: c, l: l, since: time.Now()}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// slowHeaders is how long a connection may take to send its headers
// before it gives way when every slot is taken: a probe sends them at
// once, in one segment; a slowloris client a byte at a time.
const slowHeaders = 50 * time.Millisecond

// evict closes the connection that has waited longest without a request
// in progress, if there is one, else the one that has been sending its
// headers longest, if for more than slowHeaders.
func (l *limitListener) evict() {
	l.mu.Lock()
	var oldest, slowest *limitConn
	now := time.Now()
	for c := range l.conns {
		switch {
		case !c.busy:
			if oldest == nil || c.since.Before(oldest.since) {
				oldest = c
			}
		case !c.reading.IsZero() && now.Sub(c.reading) >= slowHeaders:
			if slowest == nil || c.reading.Before(slowest.reading) {
				slowest = c
			}
		}
	}
	if oldest == nil {
		oldest = slowest
	}
	if oldest != nil {
		delete(l.conns, oldest)
	}
	l.mu.Unlock()
	if oldest != nil {
		_ = oldest.Close()
	}
}

// track is the server's ConnState hook: a connection is busy from the
// first byte of a request (see Read: net/http reports StateActive only once
// the headers are in) to the end of its answer.
func (l *limitListener) track(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateActive:
		lc.busy, lc.reading = true, time.Time{}
	case http.StateIdle:
		lc.busy, lc.since, lc.reading = false, time.Now(), time.Time{}
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, lc)
	}
}

type limitConn struct {
	net.Conn
	l     *limitListener
	once  sync.Once
	busy  bool      // guarded by l.mu
	since time.Time // guarded by l.mu: connected, or last became idle
	// reading is when the request in progress began, while its headers
	// are not all in (net/http reports StateActive once they are); zero
	// otherwise. Guarded by l.mu.
	reading time.Time
}

// Read marks the connection busy once a request's first bytes arrive.
func (c *limitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.l.mu.Lock()
		if !c.busy {
			c.busy, c.reading = true, time.Now()
		}
		c.l.mu.Unlock()
	}
	return n, err
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// Check reports, for --check, whether Listen would succeed on addr: it
// binds the address and lets it go. A busy address that answers /live as
// this server does is taken by a running gracefulinit (--check run inside
// a running container), which is no problem: inUse says so.
func Check(addr string) (inUse bool, err error) {
	ln, lerr := net.Listen("tcp", addr)
	if lerr == nil {
		return false, ln.Close()
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	if resp, gerr := c.Get("http://" + addr + "/live"); gerr == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && string(b) == liveBody {
			return true, nil
		}
	}
	return false, listenError(addr, lerr)
}

// listenError names addr, why it cannot be served and the fix, which
// depends on the why.
func listenError(addr string, err error) error {
	fix := "use an address of this machine, e.g. 0.0.0.0:8558"
	if errors.Is(err, syscall.EADDRINUSE) {
		fix = "choose a free port"
	}
	return fmt.Errorf("--health-addr %s: %w: %s", addr, unwrapOp(err), fix)
}
