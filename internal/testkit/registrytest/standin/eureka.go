package standin

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hudl/fargo"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
)

// EurekaApp stands in for a Spring Cloud Netflix app: a fargo client that
// registers its own instance and heartbeats every second, registering again
// when the server has lost it, as DiscoveryClient does.
type EurekaApp struct {
	conn     fargo.EurekaConnection
	app, id  string
	ip       string
	port     int
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// StartEurekaApp registers instance id of app (ip:port) at eurekaURL and
// starts the heartbeats; it fails t if the registration does. Cleanup
// stops the heartbeats.
func StartEurekaApp(t testing.TB, eurekaURL, app, id, ip string, port int) *EurekaApp {
	t.Helper()
	a := &EurekaApp{conn: fargo.NewConn(eurekaURL), app: app, id: id, ip: ip, port: port,
		stop: make(chan struct{}), done: make(chan struct{})}
	a.conn.UseJson = true
	if err := a.conn.ReregisterInstance(a.instance()); err != nil {
		t.Fatalf("app %s: register: %v", id, err)
	}
	go a.heartbeat()
	t.Cleanup(a.Exit)
	return a
}

// instance is a fresh document each time: fargo overwrites the one it
// registers with what the server reports (an OUT_OF_SERVICE status too).
func (a *EurekaApp) instance() *fargo.Instance {
	return &fargo.Instance{
		InstanceId:     a.id,
		HostName:       a.ip,
		App:            a.app,
		IPAddr:         a.ip,
		VipAddress:     strings.ToLower(a.app),
		Status:         fargo.UP,
		Port:           a.port,
		PortEnabled:    true,
		DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn},
	}
}

func (a *EurekaApp) heartbeat() {
	defer close(a.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			err := a.conn.HeartBeatInstance(a.instance())
			if code, ok := fargo.HTTPResponseStatusCode(err); ok && code == http.StatusNotFound {
				_ = a.conn.ReregisterInstance(a.instance())
			}
		}
	}
}

// Exit stops the heartbeats, like a JVM that has exited, without
// deregistering.
func (a *EurekaApp) Exit() {
	a.stopOnce.Do(func() { close(a.stop) })
	<-a.done
}

// EurekaConsumer polls the server like a fargo consumer (Ribbon or Spring
// Cloud LoadBalancer on Eureka's client cache). It reads XML, fargo's
// default: Polaris writes the port's "@enabled" as a JSON boolean, which
// fargo's JSON decoding rejects.
type EurekaConsumer struct {
	Conn fargo.EurekaConnection
}

// NewEurekaConsumer returns a consumer of the Eureka server at eurekaURL.
func NewEurekaConsumer(eurekaURL string) *EurekaConsumer {
	c := fargo.NewConn(eurekaURL)
	c.Timeout = 3 * time.Second
	return &EurekaConsumer{Conn: c}
}

// Instance is instance id of app as the consumer sees it, nil when it is
// not listed (or the server does not answer).
func (c *EurekaConsumer) Instance(app, id string) *fargo.Instance {
	a, err := c.Conn.GetApp(app)
	if err != nil {
		return nil
	}
	for _, in := range a.Instances {
		if in.InstanceId == id {
			return in
		}
	}
	return nil
}

// Status is the instance's status, "" when it is not listed.
func (c *EurekaConsumer) Status(app, id string) string {
	if in := c.Instance(app, id); in != nil {
		return string(in.Status)
	}
	return ""
}

// WaitStatus polls until cond accepts the instance's status and returns how
// long that took; it fails t after within.
func (c *EurekaConsumer) WaitStatus(t testing.TB, app, id, what string, within time.Duration, cond func(string) bool) time.Duration {
	t.Helper()
	return poll.Eventually(t, within, app+"/"+id+" "+what, func() error {
		if s := c.Status(app, id); !cond(s) {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
}

// Conditions for WaitStatus.
func EurekaUp(s string) bool      { return s == "UP" }
func EurekaNotUp(s string) bool   { return s != "UP" }
func EurekaMissing(s string) bool { return s == "" }
