package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// TestNacosMarkDrain: two app instances, each under its own gracefulinit.
// SIGTERM to one takes it out of what a subscribed consumer selects within
// seconds while its JVM still runs; the other stays selected; the JVM gets
// its stop signal after the fixed drain, and gracefulinit exits 0 (-e 143).
func TestNacosMarkDrain(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const service = "orders"
	spec := podSpec{service: service, init: nacosInit(s, service), app: nacosApp(s), drain: 5 * time.Second}
	a, b := startPod(t, spec), startPod(t, spec)
	consumer := standin.NewNacosConsumer(t, s, service)
	a.waitHealthy()
	b.waitHealthy()
	a.waitLog("registry online", "nacos", visible)
	b.waitLog("registry online", "nacos", visible)
	consumer.WaitSelection(t, visible, "consumer selects both instances", func(sel map[string]bool) error {
		if !sel[a.addr()] || !sel[b.addr()] {
			return fmt.Errorf("selected: %v", sel)
		}
		return nil
	})

	a.term()
	gone := consumer.WaitSelection(t, visible, "consumer stops selecting "+a.addr(), func(sel map[string]bool) error {
		if !sel[b.addr()] {
			t.Fatalf("the other instance %s dropped out of the selection: %v", b.addr(), sel)
		}
		if sel[a.addr()] {
			return fmt.Errorf("still selected: %v", sel)
		}
		return nil
	})
	if a.jvmTermed() {
		t.Fatalf("the JVM got its stop signal before consumers stopped selecting it (%v after SIGTERM)", gone)
	}
	t.Logf("consumer stopped selecting %s %v after SIGTERM, JVM still running", a.addr(), gone.Round(10*time.Millisecond))
	// --nacos-offline both: disabled, which the list hides.
	if h, err := standin.FindNacosHost(s, service, a.ip, a.port); err != nil || h != nil {
		t.Errorf("instance after offline: %+v %v, want disabled (not listed)", h, err)
	}

	sum := a.checkStopOnSchedule()
	if sum.Offline != "ok" {
		t.Errorf("summary: offline %q, want ok", sum.Offline)
	}
	// The app deregistered itself on its way out; the other stays selected.
	standin.WaitNacosHost(t, s, service, a.ip, a.port, "deregistered by the app", visible, standin.NacosAbsent)
	sel, err := consumer.Selected()
	if err != nil || !sel[b.addr()] {
		t.Fatalf("the other instance is not selected after the first stopped: %v %v", sel, err)
	}
	b.term()
	b.checkStopOnSchedule()
}

// TestNacosRestartTrap: the user's production incident end to end. A pod is
// drained (weight 0) and its JVM dies without deregistering; a new JVM at
// the same ip:port registers again while Nacos keeps the weight-0 override
// (alibaba/nacos#12033). The new gracefulinit puts the weight back to 1
// once the app is ready, and says so in its log.
func TestNacosRestartTrap(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const service = "payments"
	ip, port := podAddr(t)
	// Weight 0 is the state this test watches; the disabled state of the
	// default --nacos-offline both is TestNacosEveryWayOfRegistering's.
	spec := podSpec{service: service, init: nacosInit(s, service, "--nacos-offline", "weight"), app: nacosApp(s),
		drain: 10 * time.Second, ip: ip, port: port}

	first := startPod(t, spec)
	first.waitHealthy()
	first.waitLog("registry online", "nacos", visible)
	first.term()
	standin.WaitNacosHost(t, s, service, ip, port, "weight 0 after SIGTERM", visible, standin.NacosWeight0)
	// The JVM dies hard mid-drain (OOM kill, node trouble): no deregistration.
	if err := syscall.Kill(first.javaPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := first.wait(10 * time.Second); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("first gracefulinit exit code %d, want %d (the JVM's SIGKILL)", code, 128+int(syscall.SIGKILL))
	}
	if h, err := standin.FindNacosHost(s, service, ip, port); err != nil || !standin.NacosWeight0(h) {
		t.Fatalf("after the JVM died: %+v %v, want the instance still listed at weight 0", h, err)
	}

	// The restarted pod: readiness is held back by a gate until the test
	// has seen the new JVM register.
	g := newGate(t, "http://"+first.addr()+"/actuator/health")
	spec.readyURL = g.srv.URL
	// The stale mark is made by hand while the gate is closed: the hold
	// (TestHoldUntilReady) would take the instance out first.
	spec.init = append(append([]string(nil), spec.init...), "--registry-hold=false")
	spec.drain = 3 * time.Second
	second := startPod(t, spec)
	second.waitHealthy()
	second.waitJVM("nacos registered", visible)
	// Polaris resets the weight when an instance registers again; real Nacos
	// keeps the override. Its list is served from a cache rebuilt about
	// every second, so watch for a while which of the two happens, and put
	// the override back the way Nacos would have kept it.
	reset := poll.Within(context.Background(), 4*time.Second, 200*time.Millisecond, func() bool {
		h, err := standin.FindNacosHost(s, service, ip, port)
		if err != nil {
			t.Fatal(err)
		}
		return h != nil && h.Weight > 0
	})
	if reset {
		t.Logf("Polaris reset the weight on re-registration; re-applying Nacos's surviving override (weight 0)")
		standin.SetNacosWeight(t, s, service, ip, port, 0)
	} else {
		t.Logf("the re-registered instance kept weight 0 from the drain: the trap, as on Nacos")
	}
	standin.WaitNacosHost(t, s, service, ip, port, "stale weight 0 visible", visible, standin.NacosWeight0)
	if l := second.findLogs("registry online", ""); len(l) > 0 {
		t.Fatalf("registry online before readiness: %v", l)
	}

	g.open.Store(true)
	opened := time.Now()
	back := standin.WaitNacosHost(t, s, service, ip, port, "weight restored", visible, func(h *standin.NacosHost) bool {
		return standin.NacosInRotation(h) && h.Weight == 1
	})
	t.Logf("weight back to 1 %v after readiness", back.Round(10*time.Millisecond))
	warn := second.waitLog("nacos instance carried a stale offline mark from an earlier shutdown; put it back in rotation", "nacos", visible)
	if warn.Num("weight_was") != 0 || warn.Num("weight") != 1 {
		t.Errorf("repair log: %v, want weight_was 0 and weight 1", warn)
	}
	online := second.waitLog("registry online", "nacos", visible)
	t.Logf("gracefulinit: %s (attempts %v, %s after readiness began)", online.Str("msg"), online["attempts"], time.Since(opened).Round(time.Millisecond))
	// The app's heartbeats keep it there.
	time.Sleep(2 * time.Second)
	if h, err := standin.FindNacosHost(s, service, ip, port); err != nil || !standin.NacosInRotation(h) {
		t.Fatalf("2 s after the repair: %+v %v", h, err)
	}
	second.term()
	second.checkStopOnSchedule()
}

// TestNacosRegisterMode: with --nacos-mode register gracefulinit registers
// an app that does not register itself, only once it is ready, and removes
// it at SIGTERM while the JVM still serves; an app that never becomes ready
// is never registered.
func TestNacosRegisterMode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, s *registrytest.Server, service string, init []string)
	}{
		{"round-trip", func(t *testing.T, s *registrytest.Server, service string, init []string) {
			p := startPod(t, podSpec{service: service, init: init, app: []string{"--start-delay", "2"}, drain: 4 * time.Second})
			// Until the app answers healthy the instance must not exist.
			poll.Eventually(t, jvmStart, "app healthy", func() error {
				h, err := standin.FindNacosHost(s, service, p.ip, p.port)
				if err != nil {
					return err
				}
				healthy := p.health() == http.StatusOK
				if h != nil && !healthy {
					t.Fatalf("registered before the app was ready: %+v", h)
				}
				if !healthy {
					return fmt.Errorf("not healthy yet")
				}
				return nil
			})
			took := standin.WaitNacosHost(t, s, service, p.ip, p.port, "registered by gracefulinit", visible, func(h *standin.NacosHost) bool {
				return standin.NacosInRotation(h) && h.Weight == 1
			})
			t.Logf("registered %v after the app turned healthy", took.Round(10*time.Millisecond))
			p.waitLog("registry online", "nacos", visible)

			p.term()
			gone := standin.WaitNacosHost(t, s, service, p.ip, p.port, "deregistered at SIGTERM", visible, standin.NacosAbsent)
			if p.jvmTermed() {
				t.Fatalf("the JVM got its stop signal before the instance was deregistered (%v)", gone)
			}
			t.Logf("deregistered %v after SIGTERM, JVM still running", gone.Round(10*time.Millisecond))
			if sum := p.checkStopOnSchedule(); sum.Offline != "ok" {
				t.Errorf("summary: offline %q, want ok", sum.Offline)
			}
			if h, err := standin.FindNacosHost(s, service, p.ip, p.port); err != nil || h != nil {
				t.Errorf("after exit: %+v %v, want no instance", h, err)
			}
		}},
		{"never-ready", func(t *testing.T, s *registrytest.Server, service string, init []string) {
			// --early-bind: the port answers at once, health 503 while starting.
			p := startPod(t, podSpec{service: service, init: init, app: []string{"--early-bind", "--start-delay", "120"}, drain: 4 * time.Second})
			poll.Eventually(t, jvmStart, "health answers 503", func() error {
				if c := p.health(); c != http.StatusServiceUnavailable {
					return fmt.Errorf("health %d", c)
				}
				return nil
			})
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
				if h, err := standin.FindNacosHost(s, service, p.ip, p.port); err != nil || h != nil {
					t.Fatalf("instance of a never-ready app: %+v %v", h, err)
				}
			}
			if l := p.findLogs("registry online", ""); len(l) > 0 {
				t.Fatalf("registry online for a never-ready app: %v", l)
			}
			p.term()
			if code := p.wait(15 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
			sum := p.summary()
			if sum.DrainEnd != "not ready" || sum.Offline != "none" {
				t.Errorf("summary: drain_end %q offline %q, want not ready / none", sum.DrainEnd, sum.Offline)
			}
			if d := sum.StopSentAt; d > late {
				t.Errorf("stop signal %v after SIGTERM for a never-ready app, want at once", d)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := registrytest.StartPolaris(t)
			service := "reg-" + tc.name
			init := nacosInit(s, service, "--nacos-mode", "register", "--nacos-cache-dir", t.TempDir())
			tc.run(t, s, service, init)
		})
	}
}

// TestNacosServerTroubleAtShutdown: a registry that is down, or that
// accepts connections and never answers, when the pod stops costs nothing:
// the JVM gets its stop signal after the configured drain, gracefulinit exits
// well inside the grace period, and the summary says the offline step did not
// succeed.
func TestNacosServerTroubleAtShutdown(t *testing.T) {
	t.Parallel()
	const troubleService = "trouble-svc"
	cases := []struct {
		name  string
		setup func(t *testing.T) (init, app []string, wentWrong func())
	}{
		{"down", func(t *testing.T) ([]string, []string, func()) {
			s := registrytest.StartPolaris(t)
			return nacosInit(s, troubleService), nacosApp(s), s.Stop
		}},
		{"hanging", func(t *testing.T) ([]string, []string, func()) {
			// Nothing can register in a server that never answers: the app
			// runs without a registry, gracefulinit's online step keeps
			// retrying, and the offline step meets the same silence.
			return []string{"--registry", "nacos", "--nacos-addr", "http://" + registrytest.Hanging(t), "--service", troubleService}, nil, func() {}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			init, app, wentWrong := tc.setup(t)
			p := startPod(t, podSpec{service: troubleService, init: init, app: app, drain: 3 * time.Second, grace: 15 * time.Second})
			p.waitHealthy()
			if tc.name == "down" {
				p.waitLog("registry online", "nacos", visible)
			} else {
				p.waitLog(onlineRetryMsg, "nacos", 10*time.Second)
			}
			wentWrong()
			p.term()
			sum := p.checkStopOnSchedule()
			// The offline step retries until the app has exited, then
			// reports its last error.
			// The reason is the registry's (refused, timed out), not the
			// cancellation that ended the retries.
			if off := sum.Offline; !strings.HasPrefix(off, "failed: nacos: ") || strings.Contains(off, "context canceled") {
				t.Errorf("summary: offline %q, want failed with the registry's reason", off)
			}
			if l := p.findLogs("registry offline attempt failed, retrying", "nacos"); len(l) == 0 {
				t.Errorf("no failed offline attempt logged\nstderr:\n%s", p.p.Stderr)
			}
		})
	}
}

// TestNacosServerDownAtStart: the registry is down while the pod starts.
// The app starts at once (gracefulinit never holds it back for the
// registry); once the server is back, the app registers itself through its
// heartbeats and gracefulinit's online step, retried meanwhile, succeeds.
func TestNacosServerDownAtStart(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	s.Stop()
	const service = "late-svc"
	p := startPod(t, podSpec{service: service, init: nacosInit(s, service), app: nacosApp(s), drain: 2 * time.Second})
	healthy := p.waitHealthy()
	if _, ok := p.jvmEvent("nacos register failed"); !ok {
		t.Fatalf("the app did not meet the registry down at start\nstdout:\n%s", p.p.Stdout)
	}
	t.Logf("app healthy %v after the pod started, with the registry down", healthy.Round(10*time.Millisecond))
	testbinWaitRetries(t, p, 2)
	if l := p.findLogs("registry online", "nacos"); len(l) > 0 {
		t.Fatalf("registry online while the server is down: %v", l)
	}

	s.Start(t)
	restarted := time.Now()
	standin.WaitNacosHost(t, s, service, p.ip, p.port, "registered by the app after the outage", 30*time.Second, standin.NacosInRotation)
	online := p.waitLog("registry online", "nacos", 30*time.Second)
	t.Logf("registry online %v after the server came back, attempt %v", time.Since(restarted).Round(100*time.Millisecond), online["attempts"])
	if n := online.Num("attempts"); n < 2 {
		t.Errorf("registry online after %v attempts, want retries (>= 2)", n)
	}
	if h, err := standin.FindNacosHost(s, service, p.ip, p.port); err != nil || !standin.NacosInRotation(h) {
		t.Errorf("after online: %+v %v", h, err)
	}
	p.term()
	p.checkStopOnSchedule()
}

// testbinWaitRetries waits until gracefulinit logged n failed online
// attempts for nacos.
func testbinWaitRetries(t *testing.T, p *pod, n int) {
	t.Helper()
	poll.Eventually(t, 20*time.Second, fmt.Sprintf("%d failed online attempts", n), func() error {
		if got := len(p.findLogs(onlineRetryMsg, "nacos")); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}
