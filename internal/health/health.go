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
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
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

// Limits of the server: small, because only probes talk to it.
const (
	MaxConns       = 16
	readTimeout    = 2 * time.Second
	writeTimeout   = 2 * time.Second
	idleTimeout    = 30 * time.Second
	maxHeaderBytes = 4 << 10
)

// Server answers the probes. The zero value is not usable; use Listen.
type Server struct {
	state atomic.Int32
	ln    net.Listener
	srv   *http.Server
	done  chan struct{}
}

// Listen binds addr (HOST:PORT) at once, so a bad or busy address is an
// error at start rather than a probe that silently never answers. Serving
// starts with Serve.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--health-addr %s: %w", addr, unwrapOp(err))
	}
	s := &Server{ln: &limitListener{Listener: ln, sem: make(chan struct{}, MaxConns)}, done: make(chan struct{})}
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
		ErrorLog:          nil,
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers probes in the background until Close. It returns at once.
func (s *Server) Serve() {
	go func() {
		defer close(s.done)
		defer func() { _ = recover() }() // a probe endpoint must never take PID 1 down
		_ = s.srv.Serve(s.ln)
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

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	if !probeMethod(w, r) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("live\n"))
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
// a port scan costs at most MaxConns goroutines. Accept waits for a free
// slot, so excess connections queue in the kernel's backlog.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
