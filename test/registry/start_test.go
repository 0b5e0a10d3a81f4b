package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// starting is a pod whose app registers itself at once (mark mode) while
// gracefulinit's readiness gate stays closed until the test opens it: an
// app registered but not ready, as Spring Cloud apps are for seconds.
type starting struct {
	p          *pod
	g          *gate
	registry   string // the log attribute: nacos or eureka
	registered string // what the app logs once registered
	// selected says whether a consumer would pick the instance now.
	selected func() bool
	// reregister registers the instance again as UP, as the app does
	// after a lost heartbeat; Polaris then drops a hold.
	reregister func(t *testing.T)
}

func startStarting(t *testing.T, s *registrytest.Server, kind string, drain time.Duration, extra ...string) *starting {
	t.Helper()
	ip, port := podAddr(t)
	st := &starting{registry: kind, registered: kind + " registered"}
	st.g = newGate(t, "http://"+net2(ip, port)+"/actuator/health")
	spec := podSpec{ip: ip, port: port, drain: drain, readyURL: st.g.srv.URL}
	switch kind {
	case "nacos":
		spec.service = "start-" + strings.ToLower(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, t.Name()))
		spec.init, spec.app = nacosInit(s, spec.service, extra...), nacosApp(s)
		// Another pod of the service is in rotation, as in a rolling
		// update: nacos-sdk-go ignores an empty push, so with the
		// instance alone its consumers would keep it whatever happens.
		oip, oport := podAddr(t)
		other := &standin.NacosHTTPApp{T: t, Server: s, Service: spec.service, IP: oip, Port: oport}
		other.Start()
		consumer := standin.NewNacosConsumer(t, s, spec.service)
		st.selected = func() bool { sel, err := consumer.Selected(); return err == nil && sel[net2(ip, port)] }
		st.reregister = func(t *testing.T) { nacosRegister(t, s, spec.service, ip, port) }
	case "eureka":
		app := "START" + strconv.Itoa(port)
		spec.service = strings.ToLower(app)
		id := eurekaID(spec.service, ip, port)
		spec.init, spec.app = eurekaInit(s, app, id, extra...), eurekaApp(s, app, id)
		consumer := standin.NewEurekaConsumer(s.EurekaURL)
		st.selected = func() bool { return consumer.Status(app, id) == "UP" }
		st.reregister = func(t *testing.T) { eurekaRegister(t, s, app, id, ip, port) }
	}
	st.p = startPod(t, spec)
	return st
}

func net2(ip string, port int) string { return ip + ":" + strconv.Itoa(port) }

// exposure watches the selection in the background and records every
// moment a consumer would have picked the instance.
type exposure struct {
	mu   sync.Mutex
	seen []time.Time
	stop chan struct{}
	done chan struct{}
}

func watchSelection(t *testing.T, selected func() bool) *exposure {
	e := &exposure{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for {
			if selected() {
				e.mu.Lock()
				e.seen = append(e.seen, time.Now())
				e.mu.Unlock()
			}
			select {
			case <-e.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(e.end)
	return e
}

func (e *exposure) end() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	<-e.done
}

func (e *exposure) times() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.seen...)
}

// since returns the moments seen after from, and the span they cover.
func (e *exposure) since(from time.Time) (n int, last time.Duration) {
	for _, at := range e.times() {
		if at.After(from) {
			n, last = n+1, at.Sub(from)
		}
	}
	return n, last
}

// holdWindow bounds how long consumers may still see the instance after it
// appeared (or appeared again): the hold can only see it when they do, and
// its write needs the server's read cache and push to reach them (about a
// second on Polaris), plus the hold's interval and slack for the machine.
const holdWindow = 3 * time.Second

// TestHoldUntilReady: the app registers itself at once and is ready later.
// By default gracefulinit tells it through its environment to register
// itself out of rotation (Spring Cloud's variables, which the example app
// binds as Spring does): a consumer never selects the instance before the
// app is ready, not once. Without that (--registry-hold-env=false, or an
// app that does not read them) the hold takes the registration out from
// the moment it appears: consumers may select it for about one read-cache
// period. Either way a registration again as UP (Polaris drops the hold
// then) is taken out again, and once ready the instance goes in rotation.
func TestHoldUntilReady(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind string
		told bool
	}{
		{"nacos", true}, {"eureka", true}, {"nacos", false}, {"eureka", false},
	} {
		name := tc.kind + "/told"
		var extra []string
		if !tc.told {
			name, extra = tc.kind+"/not-told", []string{"--registry-hold-env=false"}
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := registrytest.StartPolaris(t)
			st := startStarting(t, s, tc.kind, 3*time.Second, extra...)
			w := watchSelection(t, st.selected)
			regAt := st.p.waitJVM(st.registered, jvmStart)
			if tc.told {
				// The hold's first look may find it out of rotation
				// (Nacos), or write first and find it there (Eureka).
				poll.Eventually(t, visible, "the hold sees the registration", func() error {
					if !st.p.heldLogged() {
						return fmt.Errorf("no hold log")
					}
					return nil
				})
				time.Sleep(holdWindow + 2*time.Second) // the app renews meanwhile
				if n, last := w.since(st.p.startAt); n > 0 {
					t.Fatalf("a consumer selected the instance %d times before the app was ready (last %v after the app registered), though it registered itself out of rotation",
						n, last-regAt.Sub(st.p.startAt))
				}
				t.Logf("consumer never selected the instance from the app's start until it was ready (watched every 50 ms for %v)", time.Since(regAt).Round(time.Millisecond))
			} else {
				held := st.p.waitLog("registry hold: the app registered itself before it was ready; kept out of rotation until it is ready", "", visible)
				t.Logf("app registered at %v, held %v later", regAt.Sub(st.p.startAt).Round(time.Millisecond), logAt(t, held).Sub(regAt).Round(time.Millisecond))
				time.Sleep(holdWindow + 2*time.Second) // the app renews meanwhile
				n, last := w.since(regAt)
				t.Logf("consumer saw the instance %d times (every 50 ms), last %v after the app registered", n, last.Round(time.Millisecond))
				if last > holdWindow {
					t.Fatalf("a consumer still selected the instance %v after it registered, before the app was ready (want out within %v)", last, holdWindow)
				}
			}

			again := time.Now()
			st.reregister(t)
			st.p.waitLog("registry hold re-applied: the registry put the instance back in rotation (the app registered again)", "", visible)
			time.Sleep(holdWindow)
			n, last := w.since(again)
			t.Logf("after the app registered again: seen %d times, last %v after", n, last.Round(time.Millisecond))
			if last > holdWindow {
				t.Errorf("after the app registered again a consumer still selected the instance %v later (want out within %v)", last, holdWindow)
			}
			w.end()

			st.g.open.Store(true)
			in := poll.Eventually(t, visible, "a consumer selects the instance once the app is ready", func() error {
				if !st.selected() {
					return fmt.Errorf("not selected")
				}
				return nil
			})
			t.Logf("selected %v after the gate opened", in.Round(time.Millisecond))
			st.p.waitLog(map[string]string{
				"nacos":  "nacos hold released: instance in rotation now that the app is ready",
				"eureka": "eureka hold released: putting the instance in rotation now that the app is ready",
			}[st.registry], "", visible)
			if l := st.p.findLogs("registry hold: cannot keep the app's own registration out of rotation while it starts; consumers may reach it before it is ready", ""); len(l) > 0 {
				t.Errorf("hold warned it could not hold: %v", l)
			}
			if l := st.p.findLogs("stale offline mark", ""); len(l) > 0 {
				t.Errorf("the registration the app was told to make was taken for a stale offline mark: %v", l)
			}
			st.p.term()
			st.p.checkStopOnSchedule()
		})
	}
}

// TestStopWhileStarting: SIGTERM while the app is registered but not
// ready. A consumer calls the instance as long as its list has it; the
// instance leaves the list (the offline step runs before ready), the
// per-caller drain waits for the consumer to let go, and no request fails.
// Without the hold (--registry-hold=false) the instance is in the list at
// SIGTERM; with it (the app told to register itself out of rotation), it
// never was, and the offline finds it out already.
func TestStopWhileStarting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind string
		hold bool
	}{{"nacos", false}, {"eureka", false}, {"nacos", true}, {"eureka", true}} {
		t.Run(fmt.Sprintf("%s hold=%v", tc.kind, tc.hold), func(t *testing.T) {
			t.Parallel()
			s := registrytest.StartPolaris(t)
			st := startStarting(t, s, tc.kind, 10*time.Second, "--drain-quiet", "1s", "--registry-hold="+strconv.FormatBool(tc.hold))
			st.p.waitJVM(st.registered, jvmStart)
			if tc.hold {
				poll.Eventually(t, visible, "the hold sees the registration", func() error {
					if !st.p.heldLogged() {
						return fmt.Errorf("no hold log")
					}
					return nil
				})
				// Past the moment of registration (see holdWindow).
				poll.Eventually(t, visible, "consumers let go of the held instance", func() error {
					if st.selected() {
						return fmt.Errorf("selected")
					}
					return nil
				})
			} else {
				poll.Eventually(t, visible, "a consumer selects the registered, not ready instance", func() error {
					if !st.selected() {
						return fmt.Errorf("not selected")
					}
					return nil
				})
			}
			c := startConsumer(t, st)
			time.Sleep(2 * time.Second)
			st.p.term()
			if code := st.p.wait(30 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0 (143 remapped)\nstderr:\n%s", code, st.p.p.Stderr)
			}
			c.end()
			ok, failed, last := c.result()
			t.Logf("consumer: %d requests ok, %d failed, last at %s after SIGTERM", ok, failed, sinceTerm(last, st.p.termAt))
			if failed > 0 {
				t.Errorf("%d requests failed", failed)
			}
			if !tc.hold && ok == 0 {
				t.Fatalf("the consumer never reached the instance: the test proves nothing")
			}
			if tc.hold && ok > 0 {
				t.Errorf("the consumer reached a held instance %d times", ok)
			}
			if st.selected() {
				t.Errorf("the instance is still selected after the stop")
			}
			stopAt := st.p.waitJVM("shutdown requested", time.Second)
			if !last.IsZero() && stopAt.Before(last) {
				t.Errorf("the JVM got its stop signal %v before the consumer's last request", last.Sub(stopAt))
			}
			sum := st.p.summary()
			if sum.Offline != "ok" || sum.Record["ready"] != false {
				t.Errorf("summary: offline %q ready %v, want ok and false", sum.Offline, sum.Record["ready"])
			}
			if sum.DrainEnd == "not ready" {
				t.Errorf("summary: drain_end %q, want the per-caller drain's reason", sum.DrainEnd)
			}
			t.Logf("summary: drain_end %s drain %v stop_sent_at %v", sum.DrainEnd, sum.Drain, sum.StopSentAt)
		})
	}
}

// consumer calls the instance every 100 ms while its registry consumer
// selects it, as a service consuming it would.
type consumer struct {
	mu          sync.Mutex
	ok, failed  int
	last        time.Time
	stop, done  chan struct{}
	failedFirst error
}

func startConsumer(t *testing.T, st *starting) *consumer {
	c := &consumer{stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	target := "http://" + st.p.addr() + "/"
	go func() {
		defer close(c.done)
		for {
			if st.selected() {
				resp, err := hc.Get(target)
				at := time.Now()
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				c.mu.Lock()
				if err != nil {
					c.failed++
					if c.failedFirst == nil {
						c.failedFirst = err
					}
				} else {
					c.ok++
					c.last = at
				}
				c.mu.Unlock()
			}
			select {
			case <-c.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(c.end)
	return c
}

func (c *consumer) end() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

func (c *consumer) result() (ok, failed int, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.failed, c.last
}

func logAt(t *testing.T, l interface{ Str(string) string }) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, l.Str("time"))
	if err != nil {
		t.Fatalf("log time %q: %v", l.Str("time"), err)
	}
	return at
}

// nacosRegister registers ip:port in service over the v1 HTTP API, as a
// Nacos 1.x client does again after a lost heartbeat.
func nacosRegister(t *testing.T, s *registrytest.Server, service, ip string, port int) {
	t.Helper()
	// The example app's own registration (a Nacos 1.x client's form).
	p := url.Values{
		"namespaceId": {"public"}, "serviceName": {standin.NacosGroup + "@@" + service}, "clusterName": {"DEFAULT"},
		"ip": {ip}, "port": {strconv.Itoa(port)}, "groupName": {standin.NacosGroup}, "weight": {"1.0"},
		"enable": {"true"}, "healthy": {"true"}, "ephemeral": {"true"}, "metadata": {`{"preserved.register.source":"SPRING_CLOUD"}`},
	}
	send(t, http.MethodPost, s.NacosAddr+"/nacos/v1/ns/instance", "application/x-www-form-urlencoded", p.Encode())
}

// nacosDeregister removes ip:port from service behind the app's back, as
// a registry that lost its state would have.
func nacosDeregister(t *testing.T, s *registrytest.Server, service, ip string, port int) {
	t.Helper()
	p := url.Values{"namespaceId": {"public"}, "serviceName": {standin.NacosGroup + "@@" + service}, "clusterName": {"DEFAULT"},
		"ip": {ip}, "port": {strconv.Itoa(port)}, "ephemeral": {"true"}}
	send(t, http.MethodDelete, s.NacosAddr+"/nacos/v1/ns/instance?"+p.Encode(), "", "")
}

// eurekaRegister registers the instance again as UP, as a Eureka client
// does after its renewal was refused.
func eurekaRegister(t *testing.T, s *registrytest.Server, app, id, ip string, port int) {
	t.Helper()
	body := fmt.Sprintf(`{"instance":{"instanceId":%q,"hostName":%q,"app":%q,"ipAddr":%q,"status":"UP","overriddenStatus":"UNKNOWN",`+
		`"port":{"$":%d,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},"countryId":1,`+
		`"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},`+
		`"leaseInfo":{"renewalIntervalInSecs":1,"durationInSecs":3},"vipAddress":%q,"secureVipAddress":%q}}`,
		id, ip, app, ip, port, strings.ToLower(app), strings.ToLower(app))
	send(t, http.MethodPost, s.EurekaURL+"/apps/"+url.PathEscape(app), "application/json", body)
}

func send(t *testing.T, method, u, ctype, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "Nacos-Java-Client:v1.4.6")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: HTTP %d", method, u, resp.StatusCode)
	}
}

func sinceTerm(at, term time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return at.Sub(term).Round(time.Millisecond).String()
}

// heldLogged reports whether the hold has said it holds the app's
// registration, either way: registered out of rotation as told, or taken
// out (Eureka's hold may write before its first look shows the told
// registration).
func (p *pod) heldLogged() bool {
	return len(p.findLogs("registry hold: the app registered itself out of rotation, as its environment told it; kept so until it is ready", ""))+
		len(p.findLogs("registry hold: the app registered itself before it was ready; kept out of rotation until it is ready", "")) > 0
}

// TestToldAppKeptInRotation: once in rotation, a told app that registers
// itself again (the registry forgot it: its next heartbeat is answered
// "not found" and it registers as told, out of rotation) is put back by
// gracefulinit within the keep interval (10 s), and the stop afterwards is
// clean.
func TestToldAppKeptInRotation(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const service = "kept"
	spec := podSpec{service: service, init: nacosInit(s, service), app: nacosApp(s), drain: 2 * time.Second}
	p := startPod(t, spec)
	consumer := standin.NewNacosConsumer(t, s, service)
	p.waitHealthy()
	p.waitLog("registry online", "nacos", visible)
	standin.WaitNacosHost(t, s, service, p.ip, p.port, "in rotation", visible, standin.NacosInRotation)

	forgot := time.Now()
	nacosDeregister(t, s, service, p.ip, p.port)
	p.waitJVM("nacos heartbeat: instance not found", visible)
	standin.WaitNacosHost(t, s, service, p.ip, p.port, "registered again, at weight 0 as told", visible, standin.NacosWeight0)
	standin.WaitNacosHost(t, s, service, p.ip, p.port, "put back in rotation", registry.DefaultKeepInterval+visible, standin.NacosInRotation)
	t.Logf("in rotation again %v after the registry forgot the instance", time.Since(forgot).Round(time.Millisecond))
	p.waitLog("nacos instance registered again at weight 0, as its environment told it at start; put back in rotation", "nacos", visible)
	p.waitLog("registry keep: the app registered itself again out of rotation, as it was told at start; put back in rotation", "nacos", visible)
	consumer.WaitSelection(t, visible, "consumer selects it again", func(sel map[string]bool) error {
		if !sel[p.addr()] {
			return fmt.Errorf("selected: %v", sel)
		}
		return nil
	})
	p.term()
	if sum := p.checkStopOnSchedule(); sum.Offline != "ok" {
		t.Errorf("summary: offline %q, want ok", sum.Offline)
	}
}
