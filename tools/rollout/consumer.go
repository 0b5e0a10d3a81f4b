package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hudl/fargo"
	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	logging "github.com/op/go-logging"
)

// discovery is the consumer's view of the registry: what a Spring Cloud
// DiscoveryClient would return right now.
type discovery interface {
	Instances() ([]string, error) // "ip:port" of instances in rotation
	Close()
}

// nacosDiscovery is nacos-sdk-go subscribed to the service: the server
// pushes changes, and SelectInstances(healthy) drops weight-0 and disabled
// instances, as Spring Cloud Alibaba's discovery does.
type nacosDiscovery struct {
	client  naming_client.INamingClient
	service string
}

func newNacosDiscovery(host string, port int, service, dir string) (*nacosDiscovery, error) {
	cc := constant.NewClientConfig(
		constant.WithTimeoutMs(3000),
		constant.WithNotLoadCacheAtStart(true),
		constant.WithLogDir(dir),
		constant.WithCacheDir(dir),
		constant.WithLogLevel("error"),
		constant.WithUpdateCacheWhenEmpty(false),
	)
	sc := []constant.ServerConfig{*constant.NewServerConfig(host, uint64(port))}
	c, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: cc, ServerConfigs: sc})
	if err != nil {
		return nil, err
	}
	d := &nacosDiscovery{client: c, service: service}
	err = c.Subscribe(&vo.SubscribeParam{ServiceName: service, GroupName: "DEFAULT_GROUP",
		SubscribeCallback: func([]model.Instance, error) {}})
	if err != nil {
		c.CloseClient()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return d, nil
}

func (d *nacosDiscovery) Instances() ([]string, error) {
	ins, err := d.client.SelectInstances(vo.SelectInstancesParam{ServiceName: d.service, GroupName: "DEFAULT_GROUP", HealthyOnly: true})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range ins {
		if i.Weight > 0 && i.Enable && i.Healthy {
			out = append(out, fmt.Sprintf("%s:%d", i.Ip, i.Port))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (d *nacosDiscovery) Close() { d.client.CloseClient() }

// eurekaDiscovery polls the Eureka server with fargo every refresh, as the
// Eureka client's registry fetch does, and keeps UP instances.
type eurekaDiscovery struct {
	mu      sync.Mutex
	view    []string
	err     error
	stop    chan struct{}
	stopped chan struct{}
}

func newEurekaDiscovery(url, app string, refresh time.Duration) *eurekaDiscovery {
	logging.SetLevel(logging.CRITICAL, "fargo")
	conn := fargo.NewConn(url)
	d := &eurekaDiscovery{stop: make(chan struct{}), stopped: make(chan struct{})}
	poll := func() {
		a, err := conn.GetApp(strings.ToUpper(app))
		var view []string
		if err == nil {
			for _, i := range a.Instances {
				if i.Status == fargo.UP {
					view = append(view, fmt.Sprintf("%s:%d", i.IPAddr, i.Port))
				}
			}
			sort.Strings(view)
		}
		d.mu.Lock()
		switch {
		case err == nil, isNotFound(err):
			d.view, d.err = view, nil
		default:
			// Like the Eureka client, keep the last registry copy when a
			// fetch fails.
			d.err = err
		}
		d.mu.Unlock()
	}
	poll()
	go func() {
		defer close(d.stopped)
		t := time.NewTicker(refresh)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				poll()
			}
		}
	}()
	return d
}

func isNotFound(err error) bool {
	code, ok := fargo.HTTPResponseStatusCode(err)
	return ok && code == 404
}

func (d *eurekaDiscovery) Instances() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.view...), nil
}

func (d *eurekaDiscovery) Close() { close(d.stop); <-d.stopped }

// lbCache is Spring Cloud LoadBalancer's cached instance list: refreshed
// from discovery when older than ttl, round-robin over what it holds. A
// refresh that fails keeps the old list, as the cache does.
type lbCache struct {
	d   discovery
	ttl time.Duration

	mu      sync.Mutex
	list    []string
	fetched time.Time
	next    int
}

func (c *lbCache) pick() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttl == 0 || time.Since(c.fetched) >= c.ttl || len(c.list) == 0 {
		if l, err := c.d.Instances(); err == nil {
			c.list, c.fetched = l, time.Now()
		}
	}
	if len(c.list) == 0 {
		return "", false
	}
	c.next++
	return c.list[c.next%len(c.list)], true
}

// Request is one request's record.
type Request struct {
	Consumer string        `json:"consumer,omitempty"` // mix mode: which consumer sent it
	At       time.Duration `json:"at_ns"`              // since the phase began
	Instance string        `json:"instance"`
	Outcome  string        `json:"outcome"` // ok, refused, reset, 5xx, timeout, no-instance, error
	Latency  time.Duration `json:"latency_ns"`
}

// load sends rate requests per second through the cache until ctx ends.
type load struct {
	cache   *lbCache
	rate    int
	period  time.Duration // between requests; 0: a second / rate
	name    string        // recorded with each request
	timeout time.Duration
	start   time.Time
	client  *http.Client
	// Consumer classes (classes.go): burst requests back to back per
	// period (a fan-out caller); pooled clients used in turn, each with
	// its own connection; a request body and header large enough to span
	// several segments.
	burst  int
	pool   []*http.Client
	body   []byte
	header string

	mu   sync.Mutex
	reqs []Request
	next int
	wg   sync.WaitGroup
}

func newLoad(cache *lbCache, rate int, timeout time.Duration, start time.Time) *load {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: timeout}).DialContext}
	return &load{cache: cache, rate: rate, timeout: timeout, start: start, client: &http.Client{Transport: tr, Timeout: timeout}}
}

func (l *load) run(ctx context.Context) {
	period := l.period
	if period <= 0 {
		period = time.Second / time.Duration(l.rate)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.wg.Wait()
			l.client.CloseIdleConnections()
			for _, c := range l.pool {
				c.CloseIdleConnections()
			}
			return
		case <-t.C:
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for range max(1, l.burst) {
					l.one()
				}
			}()
		}
	}
}

func (l *load) one() {
	at := time.Since(l.start)
	inst, ok := l.cache.pick()
	if !ok {
		l.record(Request{Consumer: l.name, At: at, Outcome: "no-instance"})
		return
	}
	client := l.client
	if len(l.pool) > 0 {
		l.mu.Lock()
		client = l.pool[l.next%len(l.pool)]
		l.next++
		l.mu.Unlock()
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+inst+"/", nil)
	if l.body != nil {
		req, err = http.NewRequest(http.MethodPost, "http://"+inst+"/", bytes.NewReader(l.body))
	}
	if err != nil {
		l.record(Request{Consumer: l.name, At: at, Instance: inst, Outcome: "error"})
		return
	}
	if l.header != "" {
		req.Header.Set("X-Payload", l.header)
	}
	begin := time.Now()
	resp, err := client.Do(req)
	lat := time.Since(begin)
	out := "ok"
	if err != nil {
		out = classify(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			out = "5xx"
		} else if resp.StatusCode >= 400 {
			out = "4xx"
		}
	}
	l.record(Request{Consumer: l.name, At: at, Instance: inst, Outcome: out, Latency: lat})
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}

func (l *load) record(r Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
}

func (l *load) requests() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]Request(nil), l.reqs...)
	sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}
