//go:build !nosdk

package nacos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	sdklogger "github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/registrytest"
)

// The test stand-ins for apps and consumers are real nacos-sdk-go clients
// and a real HTTP v1 client, talking to a real Polaris server.

const testGroup = "DEFAULT_GROUP"

func markConfig(s *registrytest.Server, service, ip string, port int) *config.Config {
	return &config.Config{
		Registries:      []string{"nacos"},
		RegistryTimeout: 3 * time.Second,
		Service:         service,
		IP:              ip,
		Ports:           []int{port},
		Nacos: config.Nacos{
			Addrs:     []string{s.NacosAddr},
			Namespace: "public",
			Group:     testGroup,
			Cluster:   "DEFAULT",
			Offline:   "weight",
			Mode:      "mark",
			Weight:    1,
		},
	}
}

var quietSDK sync.Once

// sdkClient is a nacos-sdk-go naming client, as a Java/Go app or a consumer
// would hold one.
func sdkClient(t *testing.T, s *registrytest.Server) naming_client.INamingClient {
	t.Helper()
	quietSDK.Do(func() {
		// The SDK's logger is global; without one it writes files next to
		// the test binary.
		sdklogger.SetLogger(&sdkLog{log: slog.New(slog.DiscardHandler)})
	})
	dir := t.TempDir()
	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			TimeoutMs:           3000,
			CacheDir:            dir,
			LogDir:              dir,
			NotLoadCacheAtStart: true,
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: "127.0.0.1", Port: uint64(s.NacosPort)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

// grpcApp registers ip:port over gRPC, like a Spring Cloud Alibaba 2.x app.
type grpcApp struct {
	t       *testing.T
	s       *registrytest.Server
	service string
	ip      string
	port    int
	client  naming_client.INamingClient
}

func (a *grpcApp) metadata() map[string]string {
	return map[string]string{"app": "grpc", "preserved.register.source": "SPRING_CLOUD"}
}

func (a *grpcApp) start() {
	a.t.Helper()
	a.client = sdkClient(a.t, a.s)
	ok, err := a.client.RegisterInstance(vo.RegisterInstanceParam{
		Ip: a.ip, Port: uint64(a.port), Weight: 1, Enable: true, Healthy: true, Ephemeral: true,
		ServiceName: a.service, GroupName: testGroup, ClusterName: "DEFAULT",
		Metadata: a.metadata(),
	})
	if err != nil || !ok {
		a.t.Fatalf("grpc app register: %v %v", ok, err)
	}
}

func (a *grpcApp) stop() { a.client.CloseClient() }

// httpApp registers ip:port through the v1 HTTP API and sends heartbeats,
// like a Nacos 1.x client.
type httpApp struct {
	t       *testing.T
	s       *registrytest.Server
	service string
	ip      string
	port    int
	cancel  context.CancelFunc
	done    chan struct{}
}

func (a *httpApp) params() url.Values {
	return url.Values{
		"namespaceId": {"public"},
		"serviceName": {testGroup + "@@" + a.service},
		"ip":          {a.ip},
		"port":        {strconv.Itoa(a.port)},
		"clusterName": {"DEFAULT"},
		"ephemeral":   {"true"},
	}
}

func (a *httpApp) call(ctx context.Context, method, path string, p url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.s.NacosAddr+"/nacos/v1/ns"+path+"?"+p.Encode(), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (a *httpApp) register(ctx context.Context) error {
	p := a.params()
	p.Set("weight", "1")
	p.Set("enabled", "true")
	p.Set("healthy", "true")
	p.Set("metadata", `{"app":"http"}`)
	code, body, err := a.call(ctx, http.MethodPost, "/instance", p)
	if err == nil && code != 200 {
		err = fmt.Errorf("register: HTTP %d: %s", code, body)
	}
	return err
}

func (a *httpApp) start() {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.register(ctx); err != nil {
		cancel()
		a.t.Fatal(err)
	}
	a.cancel, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		beat, _ := json.Marshal(map[string]any{
			"ip": a.ip, "port": a.port, "serviceName": testGroup + "@@" + a.service, "cluster": "DEFAULT",
		})
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			p := a.params()
			p.Set("beat", string(beat))
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			code, body, err := a.call(cctx, http.MethodPut, "/instance/beat", p)
			// Like the Java client: an unknown instance (server restarted
			// with fresh state) registers again.
			if err == nil && code == 200 {
				var r struct {
					Code int `json:"code"`
				}
				if json.Unmarshal(body, &r) == nil && r.Code == 20404 {
					_ = a.register(cctx)
				}
			}
			ccancel()
		}
	}()
	a.t.Cleanup(a.stop)
}

func (a *httpApp) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, _ = a.call(ctx, http.MethodDelete, "/instance", a.params())
}

// host is an instance as the v1 list shows it.
type host struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Weight   float64           `json:"weight"`
	Enabled  bool              `json:"enabled"`
	Healthy  bool              `json:"healthy"`
	Metadata map[string]string `json:"metadata"`
}

func listHosts(t *testing.T, s *registrytest.Server, service string) []host {
	t.Helper()
	q := url.Values{"namespaceId": {"public"}, "serviceName": {testGroup + "@@" + service}, "healthyOnly": {"false"}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.NacosAddr+"/nacos/v1/ns/instance/list?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct {
		Hosts []host `json:"hosts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return l.Hosts
}

func findHost(hosts []host, ip string, port int) *host {
	for i := range hosts {
		if hosts[i].IP == ip && hosts[i].Port == port {
			return &hosts[i]
		}
	}
	return nil
}

// setWeightRaw writes a weight the way an operator (or Nacos's surviving
// override) would, bypassing the code under test.
func setWeightRaw(t *testing.T, s *registrytest.Server, service, ip string, port int, weight float64) {
	t.Helper()
	h := findHost(listHosts(t, s, service), ip, port)
	if h == nil {
		t.Fatalf("%s:%d not in the list", ip, port)
	}
	setInstanceRaw(t, s, service, ip, port, weight, true, h.Metadata)
}

// setEnabledRaw re-enables a disabled instance (which Polaris hides from
// every read, so its metadata must be known).
func setEnabledRaw(t *testing.T, s *registrytest.Server, service, ip string, port int, md map[string]string) {
	t.Helper()
	setInstanceRaw(t, s, service, ip, port, 1, true, md)
}

func setInstanceRaw(t *testing.T, s *registrytest.Server, service, ip string, port int, weight float64, enabled bool, md map[string]string) {
	t.Helper()
	p := url.Values{
		"namespaceId": {"public"}, "serviceName": {testGroup + "@@" + service}, "ip": {ip},
		"port": {strconv.Itoa(port)}, "clusterName": {"DEFAULT"}, "ephemeral": {"true"},
		"weight": {formatWeight(weight)}, "enabled": {strconv.FormatBool(enabled)}, "metadata": {metadataJSON(md)},
	}
	a := &httpApp{s: s}
	code, body, err := a.call(context.Background(), http.MethodPut, "/instance", p)
	if err != nil || code != 200 {
		t.Fatalf("raw instance write: %d %s %v", code, body, err)
	}
}

// consumer is a subscribed nacos-sdk-go client, the judge of what traffic
// an instance gets.
type consumer struct {
	client  naming_client.INamingClient
	service string

	mu     sync.Mutex
	pushed []model.Instance // copy of the last pushed list
}

func newConsumer(t *testing.T, s *registrytest.Server, service string) *consumer {
	t.Helper()
	c := &consumer{client: sdkClient(t, s), service: service}
	err := c.client.Subscribe(&vo.SubscribeParam{ServiceName: service, GroupName: testGroup,
		SubscribeCallback: func(ins []model.Instance, err error) {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.pushed = append([]model.Instance(nil), ins...)
			c.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// selected is the set of ip:port the consumer picks from: the SDK's
// SelectInstances(healthy) drops weight<=0 and disabled instances, as every
// Nacos client does. Under -race the same filter runs on a copy of the
// pushed list instead, because SelectInstances races inside the SDK.
func (c *consumer) selected() (map[string]bool, error) {
	var ins []model.Instance
	if raceEnabled {
		c.mu.Lock()
		for _, i := range c.pushed {
			if i.Healthy && i.Enable && i.Weight > 0 {
				ins = append(ins, i)
			}
		}
		c.mu.Unlock()
	} else {
		var err error
		ins, err = c.client.SelectInstances(vo.SelectInstancesParam{ServiceName: c.service, GroupName: testGroup, HealthyOnly: true})
		if err != nil {
			return nil, err
		}
	}
	m := map[string]bool{}
	for _, i := range ins {
		m[fmt.Sprintf("%s:%d", i.Ip, i.Port)] = true
	}
	return m, nil
}

// pickOne is the SDK's weighted random choice (SelectOneHealthyInstance).
func (c *consumer) pickOne() (string, error) {
	if raceEnabled {
		sel, err := c.selected()
		for k := range sel {
			return k, err
		}
		return "", fmt.Errorf("nothing selectable")
	}
	i, err := c.client.SelectOneHealthyInstance(vo.SelectOneHealthInstanceParam{ServiceName: c.service, GroupName: testGroup})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", i.Ip, i.Port), nil
}

// eventually polls cond until it returns nil, and reports how long it took.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
