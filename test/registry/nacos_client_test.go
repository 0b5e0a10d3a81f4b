package registry

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

	"github.com/gracefulinit/gracefulinit/internal/registrytest"
)

const nacosGroup = "DEFAULT_GROUP"

// nacosInit are gracefulinit's flags for Nacos mark mode against s.
func nacosInit(s *registrytest.Server, service string, extra ...string) []string {
	return append([]string{"--registry", "nacos", "--nacos-addr", s.NacosAddr, "--service", service}, extra...)
}

// nacosApp are the example app's flags to register itself in Nacos over
// HTTP v1 with a heartbeat every second (Polaris drops an instance about
// 15 s after its last heartbeat).
func nacosApp(s *registrytest.Server) []string {
	return []string{"--nacos", s.NacosAddr, "--nacos-beat", "1"}
}

// nacosHost is an instance as the v1 list shows it.
type nacosHost struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Weight   float64           `json:"weight"`
	Enabled  bool              `json:"enabled"`
	Healthy  bool              `json:"healthy"`
	Metadata map[string]string `json:"metadata"`
}

// nacosHosts reads every instance of service, healthy or not: Polaris answers
// the detail GET with 405, the list is where weight and metadata show.
func nacosHosts(s *registrytest.Server, service string) ([]nacosHost, error) {
	q := url.Values{"namespaceId": {"public"}, "serviceName": {nacosGroup + "@@" + service}, "healthyOnly": {"false"}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.NacosAddr+"/nacos/v1/ns/instance/list?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("instance list: %s: %s", resp.Status, body)
	}
	var l struct {
		Hosts []nacosHost `json:"hosts"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("instance list: %v: %s", err, body)
	}
	return l.Hosts, nil
}

// nacosFind returns ip:port's instance, nil when it is not listed.
func nacosFind(s *registrytest.Server, service, ip string, port int) (*nacosHost, error) {
	hosts, err := nacosHosts(s, service)
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

// waitNacos polls ip:port's instance until cond accepts it (nil: not
// listed) and returns how long that took.
func waitNacos(t *testing.T, s *registrytest.Server, service, ip string, port int, what string, within time.Duration, cond func(*nacosHost) bool) time.Duration {
	t.Helper()
	return eventually(t, within, fmt.Sprintf("%s:%d %s", ip, port, what), func() error {
		h, err := nacosFind(s, service, ip, port)
		if err != nil {
			return err
		}
		if !cond(h) {
			return fmt.Errorf("instance is %+v", h)
		}
		return nil
	})
}

func nacosAbsent(h *nacosHost) bool  { return h == nil }
func nacosWeight0(h *nacosHost) bool { return h != nil && h.Weight == 0 }
func nacosInRotation(h *nacosHost) bool {
	return h != nil && h.Weight > 0 && h.Enabled && h.Healthy
}

// setNacosWeight writes a weight behind the app's and gracefulinit's back,
// as an operator or Nacos's surviving metadata override would. Polaris
// needs the instance's metadata re-sent with the PUT.
func setNacosWeight(t *testing.T, s *registrytest.Server, service, ip string, port int, weight float64) {
	t.Helper()
	h, err := nacosFind(s, service, ip, port)
	if err != nil || h == nil {
		t.Fatalf("%s:%d not listed: %v", ip, port, err)
	}
	md, _ := json.Marshal(h.Metadata)
	p := url.Values{
		"namespaceId": {"public"}, "serviceName": {nacosGroup + "@@" + service},
		"ip": {ip}, "port": {strconv.Itoa(port)}, "clusterName": {"DEFAULT"}, "ephemeral": {"true"},
		"weight": {strconv.FormatFloat(weight, 'f', -1, 64)}, "enabled": {"true"}, "metadata": {string(md)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.NacosAddr+"/nacos/v1/ns/instance?"+p.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Polaris's router answers a PUT without a content type with 406.
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("setting weight %v on %s:%d: %s: %s", weight, ip, port, resp.Status, body)
	}
}

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

func newDiscardLog() sdklogger.Logger { return discardLog{log: slog.New(slog.DiscardHandler)} }

// nacosConsumer is a subscribed nacos-sdk-go client (gRPC, like a Spring
// Cloud Alibaba 2.x consumer): the judge of which instances get traffic.
type nacosConsumer struct {
	client  naming_client.INamingClient
	service string

	mu     sync.Mutex
	pushed []model.Instance // copy of the last pushed list
}

func newNacosConsumer(t *testing.T, s *registrytest.Server, service string) *nacosConsumer {
	t.Helper()
	quietSDK.Do(func() { sdklogger.SetLogger(newDiscardLog()) })
	dir := t.TempDir()
	client, err := clients.NewNamingClient(vo.NacosClientParam{
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
	t.Cleanup(client.CloseClient)
	c := &nacosConsumer{client: client, service: service}
	err = client.Subscribe(&vo.SubscribeParam{ServiceName: service, GroupName: nacosGroup,
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

// selected is the set of "ip:port" the consumer picks from: the SDK's
// SelectInstances(healthy) drops weight<=0 and disabled instances, as every
// Nacos client does. Under -race the same filter runs on a copy of the
// pushed list (see raceEnabled).
func (c *nacosConsumer) selected() (map[string]bool, error) {
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
		ins, err = c.client.SelectInstances(vo.SelectInstancesParam{ServiceName: c.service, GroupName: nacosGroup, HealthyOnly: true})
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
