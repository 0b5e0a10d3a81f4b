package standin

import (
	"cmp"
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

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

// NacosGroup is the group every Nacos stand-in uses.
const NacosGroup = "DEFAULT_GROUP"

var quietSDK sync.Once

// discardLog is the SDK's logger interface, discarding everything: without
// a logger the SDK writes log files next to the test binary.
type discardLog struct{ log *slog.Logger }

func (l discardLog) Info(args ...any)             { l.log.Info(fmt.Sprint(args...)) }
func (l discardLog) Warn(args ...any)             { l.log.Warn(fmt.Sprint(args...)) }
func (l discardLog) Error(args ...any)            { l.log.Error(fmt.Sprint(args...)) }
func (l discardLog) Debug(args ...any)            { l.log.Debug(fmt.Sprint(args...)) }
func (l discardLog) Infof(f string, args ...any)  { l.log.Info(fmt.Sprintf(f, args...)) }
func (l discardLog) Warnf(f string, args ...any)  { l.log.Warn(fmt.Sprintf(f, args...)) }
func (l discardLog) Errorf(f string, args ...any) { l.log.Error(fmt.Sprintf(f, args...)) }
func (l discardLog) Debugf(f string, args ...any) { l.log.Debug(fmt.Sprintf(f, args...)) }
func (l discardLog) Close() error                 { return nil }

// NacosClient returns a nacos-sdk-go naming client of s, as a Java or Go
// app or a consumer holds one; it is closed at cleanup. The SDK's logger is
// process-wide: the first call points it at nowhere.
func NacosClient(t testing.TB, s *registrytest.Server) naming_client.INamingClient {
	t.Helper()
	quietSDK.Do(func() { sdklogger.SetLogger(discardLog{log: slog.New(slog.DiscardHandler)}) })
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

// NacosGRPCApp registers IP:Port over gRPC, like a Spring Cloud Alibaba 2.x
// app. Set the exported fields, then Start.
type NacosGRPCApp struct {
	T       testing.TB
	Server  *registrytest.Server
	Service string
	IP      string
	Port    int
	// Cluster is the cluster name registered; "" registers without one,
	// as nacos-sdk-go does by default (Polaris then lists clusterName "",
	// real Nacos stores DEFAULT).
	Cluster string

	client naming_client.INamingClient
}

// Metadata is what the app registers with.
func (a *NacosGRPCApp) Metadata() map[string]string {
	return map[string]string{"app": "grpc", "preserved.register.source": "SPRING_CLOUD"}
}

// Start registers the instance with a fresh client; it fails T if the
// server refuses.
func (a *NacosGRPCApp) Start() {
	a.T.Helper()
	a.client = NacosClient(a.T, a.Server)
	ok, err := a.client.RegisterInstance(vo.RegisterInstanceParam{
		Ip: a.IP, Port: uint64(a.Port), Weight: 1, Enable: true, Healthy: true, Ephemeral: true,
		ServiceName: a.Service, GroupName: NacosGroup, ClusterName: a.Cluster,
		Metadata: a.Metadata(),
	})
	if err != nil || !ok {
		a.T.Fatalf("grpc app register: %v %v", ok, err)
	}
}

// Stop closes the client, like an app that exits: the server drops the
// instance with its connection.
func (a *NacosGRPCApp) Stop() { a.client.CloseClient() }

// NacosHTTPApp registers IP:Port through the v1 HTTP API and sends a
// heartbeat every second, like a Nacos 1.x client. Set the exported fields,
// then Start.
type NacosHTTPApp struct {
	T       testing.TB
	Server  *registrytest.Server
	Service string
	IP      string
	Port    int
	// Weight is the weight it registers with; "" is 1. "0" is an app told
	// to register itself out of rotation (SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT).
	Weight string

	cancel context.CancelFunc
	done   chan struct{}
}

func (a *NacosHTTPApp) params() url.Values {
	return url.Values{
		"namespaceId": {"public"},
		"serviceName": {NacosGroup + "@@" + a.Service},
		"ip":          {a.IP},
		"port":        {strconv.Itoa(a.Port)},
		"clusterName": {"DEFAULT"},
		"ephemeral":   {"true"},
	}
}

func (a *NacosHTTPApp) register(ctx context.Context) error {
	p := a.params()
	p.Set("weight", cmp.Or(a.Weight, "1"))
	p.Set("enabled", "true")
	p.Set("healthy", "true")
	p.Set("metadata", `{"app":"http"}`)
	code, body, err := nacosV1(ctx, a.Server, http.MethodPost, "/instance", p)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("register: HTTP %d: %s", code, body)
	}
	return err
}

// Start registers the instance and starts the heartbeats; it fails T if the
// registration does. Cleanup stops the app.
func (a *NacosHTTPApp) Start() {
	a.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.register(ctx); err != nil {
		cancel()
		a.T.Fatal(err)
	}
	a.cancel, a.done = cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		beat, _ := json.Marshal(map[string]any{
			"ip": a.IP, "port": a.Port, "serviceName": NacosGroup + "@@" + a.Service, "cluster": "DEFAULT",
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
			code, body, err := nacosV1(cctx, a.Server, http.MethodPut, "/instance/beat", p)
			// Like the Java client: an unknown instance (server restarted
			// with fresh state) registers again.
			if err == nil && code == http.StatusOK {
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
	a.T.Cleanup(a.Stop)
}

// Stop ends the heartbeats and deregisters, like an app shutting down
// cleanly. Stopping a stopped app does nothing.
func (a *NacosHTTPApp) Stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, _ = nacosV1(ctx, a.Server, http.MethodDelete, "/instance", a.params())
}

// nacosV1 calls the v1 naming API with form parameters in the query.
func nacosV1(ctx context.Context, s *registrytest.Server, method, path string, p url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.NacosAddr+"/nacos/v1/ns"+path+"?"+p.Encode(), nil)
	if err != nil {
		return 0, nil, err
	}
	// Polaris's router answers a PUT without a content type with 406.
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// NacosHost is an instance as the v1 list shows it.
type NacosHost struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Cluster  string            `json:"clusterName"`
	Weight   float64           `json:"weight"`
	Enabled  bool              `json:"enabled"`
	Healthy  bool              `json:"healthy"`
	Metadata map[string]string `json:"metadata"`
}

// NacosHosts reads every instance of service, healthy or not: Polaris
// answers the detail GET with 405, the list is where weight and metadata
// show.
func NacosHosts(s *registrytest.Server, service string) ([]NacosHost, error) {
	q := url.Values{"namespaceId": {"public"}, "serviceName": {NacosGroup + "@@" + service}, "healthyOnly": {"false"}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	code, body, err := nacosV1(ctx, s, http.MethodGet, "/instance/list", q)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("instance list: HTTP %d: %s", code, body)
	}
	var l struct {
		Hosts []NacosHost `json:"hosts"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("instance list: %v: %s", err, body)
	}
	return l.Hosts, nil
}

// FindNacosHost returns ip:port's instance, nil when it is not listed.
func FindNacosHost(s *registrytest.Server, service, ip string, port int) (*NacosHost, error) {
	hosts, err := NacosHosts(s, service)
	if err != nil {
		return nil, err
	}
	for i := range hosts {
		if hosts[i].IP == ip && hosts[i].Port == port {
			return &hosts[i], nil
		}
	}
	return nil, nil
}

// WaitNacosHost polls ip:port's instance until cond accepts it (nil: not
// listed) and returns how long that took; it fails t after within.
func WaitNacosHost(t testing.TB, s *registrytest.Server, service, ip string, port int, what string, within time.Duration, cond func(*NacosHost) bool) time.Duration {
	t.Helper()
	return poll.Eventually(t, within, fmt.Sprintf("%s:%d %s", ip, port, what), func() error {
		h, err := FindNacosHost(s, service, ip, port)
		if err != nil {
			return err
		}
		if !cond(h) {
			return fmt.Errorf("instance is %+v", h)
		}
		return nil
	})
}

// Conditions for WaitNacosHost.
func NacosListed(h *NacosHost) bool  { return h != nil }
func NacosAbsent(h *NacosHost) bool  { return h == nil }
func NacosWeight0(h *NacosHost) bool { return h != nil && h.Weight == 0 }
func NacosInRotation(h *NacosHost) bool {
	return h != nil && h.Weight > 0 && h.Enabled && h.Healthy
}

// SetNacosInstance writes weight, enabled and metadata behind the app's and
// gracefulinit's back, as an operator or Nacos's surviving override would.
// Polaris replaces the metadata with what the PUT carries, so md must be the
// instance's own (a disabled instance is hidden from every read on Polaris,
// so its metadata must be known).
//
// cluster is the instance's cluster: Polaris moves the instance to the one a
// write names (an empty one becomes DEFAULT over HTTP).
func SetNacosInstance(s *registrytest.Server, service, cluster, ip string, port int, weight float64, enabled bool, md map[string]string) error {
	if md == nil {
		md = map[string]string{}
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return err
	}
	p := url.Values{
		"namespaceId": {"public"}, "serviceName": {NacosGroup + "@@" + service},
		"ip": {ip}, "port": {strconv.Itoa(port)}, "clusterName": {cluster}, "ephemeral": {"true"},
		"weight": {strconv.FormatFloat(weight, 'f', -1, 64)}, "enabled": {strconv.FormatBool(enabled)}, "metadata": {string(mdJSON)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	code, body, err := nacosV1(ctx, s, http.MethodPut, "/instance", p)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("HTTP %d: %s", code, body)
	}
	if err != nil {
		return fmt.Errorf("setting weight %v enabled %v on %s:%d: %w", weight, enabled, ip, port, err)
	}
	return nil
}

// SetNacosWeight is SetNacosInstance on a listed, enabled instance, keeping
// its metadata; it fails t if that does not work.
func SetNacosWeight(t testing.TB, s *registrytest.Server, service, ip string, port int, weight float64) {
	t.Helper()
	h, err := FindNacosHost(s, service, ip, port)
	if err != nil || h == nil {
		t.Fatalf("%s:%d not listed: %v", ip, port, err)
	}
	if err := SetNacosInstance(s, service, h.Cluster, ip, port, weight, true, h.Metadata); err != nil {
		t.Fatal(err)
	}
}

// NacosConsumer is a subscribed nacos-sdk-go client (gRPC, like a Spring
// Cloud Alibaba 2.x consumer): the judge of which instances get traffic.
type NacosConsumer struct {
	client  naming_client.INamingClient
	service string

	mu     sync.Mutex
	pushed []model.Instance // copy of the last pushed list
}

// NewNacosConsumer subscribes to service on s; it fails t if it cannot.
func NewNacosConsumer(t testing.TB, s *registrytest.Server, service string) *NacosConsumer {
	t.Helper()
	c := &NacosConsumer{client: NacosClient(t, s), service: service}
	err := c.client.Subscribe(&vo.SubscribeParam{ServiceName: service, GroupName: NacosGroup,
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

// Selected is the set of "ip:port" the consumer picks from: the SDK's
// SelectInstances(healthy) drops weight<=0 and disabled instances, as every
// Nacos client does. Under -race the same filter runs on a copy of the
// pushed list (see raceEnabled).
func (c *NacosConsumer) Selected() (map[string]bool, error) {
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
		ins, err = c.client.SelectInstances(vo.SelectInstancesParam{ServiceName: c.service, GroupName: NacosGroup, HealthyOnly: true})
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

// WaitSelection polls Selected until check accepts the selection and
// returns how long that took; it fails t after within.
func (c *NacosConsumer) WaitSelection(t testing.TB, within time.Duration, what string, check func(sel map[string]bool) error) time.Duration {
	t.Helper()
	return poll.Eventually(t, within, what, func() error {
		sel, err := c.Selected()
		if err != nil {
			return err
		}
		return check(sel)
	})
}

// PickOne is the SDK's weighted random choice (SelectOneHealthyInstance);
// under -race any selected instance.
func (c *NacosConsumer) PickOne() (string, error) {
	if raceEnabled {
		sel, err := c.Selected()
		for k := range sel {
			return k, err
		}
		return "", fmt.Errorf("nothing selectable")
	}
	i, err := c.client.SelectOneHealthyInstance(vo.SelectOneHealthInstanceParam{ServiceName: c.service, GroupName: NacosGroup})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", i.Ip, i.Port), nil
}
