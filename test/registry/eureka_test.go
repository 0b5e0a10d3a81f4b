package registry

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// eurekaPod starts a pod whose app registers itself in Eureka as app, with
// gracefulinit in mark mode (plus extra flags).
func eurekaPod(t *testing.T, s *registrytest.Server, app string, drain time.Duration, extra ...string) *pod {
	t.Helper()
	ip, port := podAddr(t)
	id := eurekaID(strings.ToLower(app), ip, port)
	return startPod(t, podSpec{service: strings.ToLower(app), ip: ip, port: port, drain: drain,
		init: eurekaInit(s, app, id, extra...), app: eurekaApp(s, app, id)})
}

func (p *pod) eurekaID() string { return eurekaID(p.spec.service, p.ip, p.port) }

// TestEurekaMarkDrain: two instances, each under its own gracefulinit.
// SIGTERM to one makes a polling consumer see it not UP within seconds while
// its JVM still runs (the app's heartbeats do not undo it); the other stays
// UP; the JVM gets its stop signal after the drain.
func TestEurekaMarkDrain(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const app = "ORDERS"
	a, b := eurekaPod(t, s, app, 5*time.Second), eurekaPod(t, s, app, 5*time.Second)
	c := standin.NewEurekaConsumer(s.EurekaURL)
	a.waitHealthy()
	b.waitHealthy()
	c.WaitStatus(t, app, a.eurekaID(), "UP", visible, standin.EurekaUp)
	c.WaitStatus(t, app, b.eurekaID(), "UP", visible, standin.EurekaUp)
	a.waitLog("registry online", "eureka", visible)
	b.waitLog("registry online", "eureka", visible)

	a.term()
	gone := c.WaitStatus(t, app, a.eurekaID(), "not UP after SIGTERM", visible, func(st string) bool {
		if other := c.Status(app, b.eurekaID()); other != "UP" {
			t.Fatalf("the other instance is %q, want UP", other)
		}
		return standin.EurekaNotUp(st)
	})
	if a.jvmTermed() {
		t.Fatalf("the JVM got its stop signal before consumers saw the instance out (%v after SIGTERM)", gone)
	}
	t.Logf("consumer saw %s %q %v after SIGTERM, JVM still running", a.eurekaID(), c.Status(app, a.eurekaID()), gone.Round(10*time.Millisecond))
	// The app keeps renewing every second during the drain; the override
	// must hold until the JVM is told to stop.
	for time.Since(a.termAt) < a.spec.drain-500*time.Millisecond {
		if st := c.Status(app, a.eurekaID()); st == "UP" {
			t.Fatalf("instance UP again %v after SIGTERM, during the drain", time.Since(a.termAt).Round(10*time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sum := a.checkStopOnSchedule(); sum.Offline != "ok" {
		t.Errorf("summary: offline %q, want ok", sum.Offline)
	}
	c.WaitStatus(t, app, a.eurekaID(), "deregistered by the app", visible, standin.EurekaMissing)
	if st := c.Status(app, b.eurekaID()); st != "UP" {
		t.Fatalf("the other instance is %q after the first stopped, want UP", st)
	}
	b.term()
	b.checkStopOnSchedule()
}

// TestEurekaStaleOverrideRepaired: an OUT_OF_SERVICE override on the
// instance (left by an earlier drain: Eureka keeps it through
// re-registration) is removed by gracefulinit once the app is ready.
func TestEurekaStaleOverrideRepaired(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const app = "REPAIR"
	ip, port := podAddr(t)
	id := eurekaID("repair", ip, port)
	g := newGate(t, fmt.Sprintf("http://%s:%d/actuator/health", ip, port))
	// Without the hold: the app registers UP, and only the override
	// takes it out.
	p := startPod(t, podSpec{service: "repair", ip: ip, port: port, drain: 2 * time.Second, readyURL: g.srv.URL,
		init: eurekaInit(s, app, id, "--registry-hold=false"), app: eurekaApp(s, app, id)})
	c := standin.NewEurekaConsumer(s.EurekaURL)
	p.waitHealthy()
	c.WaitStatus(t, app, id, "UP (registered by the app)", visible, standin.EurekaUp)
	setEurekaStatus(t, s, app, id, "OUT_OF_SERVICE")
	c.WaitStatus(t, app, id, "OUT_OF_SERVICE", visible, func(st string) bool { return st == "OUT_OF_SERVICE" })
	// A few of the app's renewals later it is still out of rotation.
	time.Sleep(2500 * time.Millisecond)
	if st := c.Status(app, id); st != "OUT_OF_SERVICE" {
		t.Fatalf("status %q after the app's renewals, want OUT_OF_SERVICE", st)
	}
	if l := p.findLogs("registry online", ""); len(l) > 0 {
		t.Fatalf("registry online before readiness: %v", l)
	}

	g.open.Store(true)
	back := c.WaitStatus(t, app, id, "UP after readiness", visible, standin.EurekaUp)
	t.Logf("consumer saw the instance UP %v after readiness", back.Round(10*time.Millisecond))
	p.waitLog("OUT_OF_SERVICE override cleared: instance is UP", "eureka", visible)
	p.waitLog("registry online", "eureka", visible)
	p.term()
	p.checkStopOnSchedule()
}

// TestEurekaRegisterMode: with --eureka-mode register gracefulinit
// registers an app that does not register itself once it is ready, keeps it
// alive, and removes it at SIGTERM while the JVM still serves.
func TestEurekaRegisterMode(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const app = "REG"
	ip, port := podAddr(t)
	id := eurekaID("reg", ip, port)
	p := startPod(t, podSpec{service: "reg", ip: ip, port: port, drain: 4 * time.Second,
		init: eurekaInit(s, app, id, "--eureka-mode", "register", "--eureka-heartbeat", "1s"),
		app:  []string{"--start-delay", "2"}})
	c := standin.NewEurekaConsumer(s.EurekaURL)
	poll.Eventually(t, jvmStart, "app healthy", func() error {
		st := c.Status(app, id)
		healthy := p.health() == http.StatusOK
		if st != "" && !healthy {
			t.Fatalf("registered (%s) before the app was ready", st)
		}
		if !healthy {
			return fmt.Errorf("not healthy yet")
		}
		return nil
	})
	up := c.WaitStatus(t, app, id, "UP (registered by gracefulinit)", visible, standin.EurekaUp)
	t.Logf("registered instance UP %v after the app turned healthy", up.Round(10*time.Millisecond))
	p.waitLog("registry online", "eureka", visible)
	// Past Polaris's expiry of three missed renewals, gracefulinit's
	// heartbeats keep it.
	time.Sleep(4 * time.Second)
	if st := c.Status(app, id); st != "UP" {
		t.Fatalf("after 4 s of heartbeats the instance is %q, want UP", st)
	}

	p.term()
	gone := c.WaitStatus(t, app, id, "deregistered at SIGTERM", visible, standin.EurekaMissing)
	if p.jvmTermed() {
		t.Fatalf("the JVM got its stop signal before the instance was deregistered (%v)", gone)
	}
	t.Logf("deregistered %v after SIGTERM, JVM still running", gone.Round(10*time.Millisecond))
	if sum := p.checkStopOnSchedule(); sum.Offline != "ok" {
		t.Errorf("summary: offline %q, want ok", sum.Offline)
	}
	if st := c.Status(app, id); st != "" {
		t.Errorf("after exit the instance is %q, want gone", st)
	}
}

// TestEurekaServerDownAtShutdown: the Eureka server is gone when the pod
// stops: the JVM still gets its stop signal after the configured drain and
// gracefulinit exits inside the grace period.
func TestEurekaServerDownAtShutdown(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const app = "GONE"
	p := eurekaPod(t, s, app, 3*time.Second)
	p.waitHealthy()
	p.waitLog("registry online", "eureka", visible)
	s.Stop()
	p.term()
	sum := p.checkStopOnSchedule()
	if off := sum.Offline; !strings.HasPrefix(off, "failed: eureka: ") {
		t.Errorf("summary: offline %q, want failed with the reason", off)
	}
}

// TestBothRegistries: --registry nacos,eureka updates both at SIGTERM, side
// by side, before the JVM is told to stop.
func TestBothRegistries(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const service, app = "both", "BOTH"
	ip, port := podAddr(t)
	id := eurekaID(service, ip, port)
	init := []string{"--registry", "nacos,eureka", "--service", service,
		"--nacos-addr", s.NacosAddr, "--eureka-url", s.EurekaURL, "--eureka-app", app, "--eureka-instance-id", id}
	p := startPod(t, podSpec{service: service, ip: ip, port: port, drain: 4 * time.Second, init: init,
		app: append(nacosApp(s), eurekaApp(s, app, id)...)})
	// Another instance keeps the service non-empty: --nacos-offline both
	// disables the instance, which leaves the pushed list, and nacos-sdk-go
	// ignores an empty push (UpdateCacheWhenEmpty is off by default).
	otherIP, _ := podAddr(t)
	other := &standin.NacosGRPCApp{T: t, Server: s, Service: service, IP: otherIP, Port: port}
	other.Start()
	nc := standin.NewNacosConsumer(t, s, service)
	ec := standin.NewEurekaConsumer(s.EurekaURL)
	p.waitHealthy()
	p.waitLog("registry online", "nacos", visible)
	p.waitLog("registry online", "eureka", visible)
	ec.WaitStatus(t, app, id, "UP", visible, standin.EurekaUp)
	nc.WaitSelection(t, visible, "nacos consumer selects the instance", func(sel map[string]bool) error {
		if !sel[p.addr()] {
			return fmt.Errorf("selected: %v", sel)
		}
		return nil
	})

	p.term()
	nc.WaitSelection(t, visible, "nacos consumer drops the instance", func(sel map[string]bool) error {
		if sel[p.addr()] {
			return fmt.Errorf("still selected: %v", sel)
		}
		return nil
	})
	nacosGone := time.Since(p.termAt)
	ec.WaitStatus(t, app, id, "not UP after SIGTERM", visible, standin.EurekaNotUp)
	eurekaGone := time.Since(p.termAt)
	if p.jvmTermed() {
		t.Fatalf("the JVM got its stop signal before both registries took the instance out")
	}
	t.Logf("out of rotation after SIGTERM: nacos by %v, eureka by %v; JVM still running",
		nacosGone.Round(10*time.Millisecond), eurekaGone.Round(10*time.Millisecond))
	for _, r := range []string{"nacos", "eureka"} {
		if l := p.findLogs("registry offline done", r); len(l) != 1 {
			t.Errorf("%d 'registry offline done' logs for %s, want 1", len(l), r)
		}
	}
	if sum := p.checkStopOnSchedule(); sum.Offline != "ok" {
		t.Errorf("summary: offline %q, want ok", sum.Offline)
	}
}

// TestEurekaCustomInstanceID: the app sets its instance id to ${ip}:${port}
// (eureka.instance.instance-id), which gracefulinit cannot derive and is not
// told: it finds the instance by ip and port, so a polling consumer sees it
// out of rotation at SIGTERM while its JVM runs, and the summary says ok.
// An app whose address the server does not hold at all gets not-found.
func TestEurekaCustomInstanceID(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const app = "CUSTOM"
	ip, port := podAddr(t)
	id := fmt.Sprintf("%s:%d", ip, port)
	p := startPod(t, podSpec{service: "custom", ip: ip, port: port, drain: 4 * time.Second,
		init: []string{"--registry", "eureka", "--eureka-url", s.EurekaURL, "--eureka-app", app},
		app:  eurekaApp(s, app, id)})
	c := standin.NewEurekaConsumer(s.EurekaURL)
	p.waitHealthy()
	c.WaitStatus(t, app, id, "UP (registered by the app)", visible, standin.EurekaUp)
	online := p.waitLog("instance id not known to eureka; found the app's instance by address", "eureka", visible)
	if online.Str("id") != id {
		t.Errorf("found %v, want id %s", online, id)
	}
	p.waitLog("registry online", "eureka", visible)

	p.term()
	gone := c.WaitStatus(t, app, id, "not UP after SIGTERM", visible, standin.EurekaNotUp)
	if p.jvmTermed() {
		t.Fatalf("the JVM got its stop signal before consumers saw the instance out (%v after SIGTERM)", gone)
	}
	t.Logf("consumer saw %s %q %v after SIGTERM", id, c.Status(app, id), gone.Round(10*time.Millisecond))
	if sum := p.checkStopOnSchedule(); sum.Offline != "ok" {
		t.Errorf("summary: offline %q, want ok", sum.Offline)
	}

	// Another pod whose app registers under a different address.
	ip2, port2 := podAddr(t)
	lost := startPod(t, podSpec{service: "custom", ip: ip2, port: port2, drain: 2 * time.Second,
		init: []string{"--registry", "eureka", "--eureka-url", s.EurekaURL, "--eureka-app", app},
		app:  append(eurekaApp(s, app, "elsewhere:1"), "--ip", "10.255.0.1")})
	lost.waitHealthy()
	// Told by gracefulinit, the app registers OUT_OF_SERVICE.
	c.WaitStatus(t, app, "elsewhere:1", "registered by the app", visible, func(st string) bool { return st != "" })
	// gracefulinit must have seen the app ready (its online step runs and
	// fails): a SIGTERM before that stops at once, with no offline step.
	lost.waitLog("registry online not done yet, retrying", "eureka", visible)
	lost.term()
	if sum := lost.checkStopOnSchedule(); !strings.HasPrefix(sum.Offline, "not-found: eureka: ") {
		t.Errorf("summary: offline %q, want not-found", sum.Offline)
	}
	warn := lost.waitLog("eureka instance not found: nothing was taken out of rotation", "eureka", time.Second)
	if !strings.Contains(warn.Str("server_holds"), "elsewhere:1 (10.255.0.1:") {
		t.Errorf("not-found warning %v: want what the server holds", warn)
	}
}
