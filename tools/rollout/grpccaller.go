package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// grpcCaller is a gRPC consumer as grpc-go builds one: a name resolver fed
// from the discovery client's view, round robin over one HTTP/2 connection
// per instance, keepalive pings on idle connections. When an instance
// leaves the resolver, grpc-go closes its connection: the caller has let
// go. Each connection's close is recorded, to compare with the pod's end.
type grpcCaller struct {
	spec    ConsumerSpec
	disc    discovery
	port    int // the pods' gRPC port
	timeout time.Duration
	start   time.Time

	mu     sync.Mutex
	reqs   []Request
	closed map[string][]time.Duration // pod IP: when a connection to it closed (phase clock)
}

// grpcKeepalive is grpc-go's shortest client keepalive (it raises shorter
// ones to 10 s): a ping after 10 s without reads, also with no call open.
const grpcKeepalive = 10 * time.Second

// rawCodec sends and receives the messages as bytes: the app's method
// takes and returns an empty message.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// closeConn records when grpc-go closes a connection.
type closeConn struct {
	net.Conn
	once  sync.Once
	onEnd func()
}

func (c *closeConn) Close() error {
	c.once.Do(c.onEnd)
	return c.Conn.Close()
}

func (g *grpcCaller) addrs() []resolver.Address {
	insts, err := g.disc.Instances()
	if err != nil {
		return nil
	}
	var out []resolver.Address
	for _, in := range insts {
		host, _, err := net.SplitHostPort(in)
		if err != nil {
			continue
		}
		out = append(out, resolver.Address{Addr: net.JoinHostPort(host, fmt.Sprint(g.port))})
	}
	return out
}

func (g *grpcCaller) run(ctx context.Context) {
	r := manual.NewBuilderWithScheme("rollout")
	current := g.addrs()
	r.InitialState(resolver.State{Addresses: current})
	dialer := sourceDialer(g.spec.From, g.timeout)
	cc, err := grpc.NewClient("rollout:///"+g.spec.Name,
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: grpcKeepalive, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			host, _, _ := net.SplitHostPort(addr)
			return &closeConn{Conn: c, onEnd: func() {
				g.mu.Lock()
				g.closed[host] = append(g.closed[host], time.Since(g.start))
				g.mu.Unlock()
			}}, nil
		}))
	if err != nil {
		g.record(Request{Consumer: g.spec.Name, At: time.Since(g.start), Outcome: "error"})
		return
	}
	defer cc.Close()
	// The resolver follows the discovery client's view, as a Nacos or
	// Eureka name resolver does; an empty view keeps the last list.
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			next := g.addrs()
			if len(next) == 0 || slices.Equal(next, current) {
				continue
			}
			current = next
			r.UpdateState(resolver.State{Addresses: next})
		}
	}()
	t := time.NewTicker(g.spec.Period)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.one(ctx, cc)
		}()
	}
}

func (g *grpcCaller) one(ctx context.Context, cc *grpc.ClientConn) {
	at := time.Since(g.start)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	var p peer.Peer
	in, out := []byte{}, []byte{}
	begin := time.Now()
	err := cc.Invoke(cctx, "/rollout.Echo/Call", &in, &out, grpc.Peer(&p))
	q := Request{Consumer: g.spec.Name, At: at, Outcome: "ok", Latency: time.Since(begin)}
	if p.Addr != nil {
		q.Instance = p.Addr.String()
	}
	if err != nil {
		q.Outcome = grpcOutcome(err)
	}
	g.record(q)
}

func (g *grpcCaller) record(r Request) {
	g.mu.Lock()
	g.reqs = append(g.reqs, r)
	g.mu.Unlock()
}

func (g *grpcCaller) requests() []Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := append([]Request(nil), g.reqs...)
	sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// closes is when the caller's connections to ip closed, on the phase clock.
func (g *grpcCaller) closes(ip string) []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]time.Duration(nil), g.closed[ip]...)
}

func grpcOutcome(err error) string {
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return "timeout"
	case codes.Unavailable:
		return "unavailable"
	}
	return "error"
}
