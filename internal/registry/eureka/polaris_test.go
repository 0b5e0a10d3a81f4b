package eureka

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hudl/fargo"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// These tests run against a real Eureka-protocol server, Polaris (see
// /work/shared/reference/test-bed.md). Where Polaris differs from Netflix
// Eureka (400 instead of 404 for an unknown instance's status; re-registering
// as UP clears OUT_OF_SERVICE), the backend tolerates both and the Netflix
// behaviour is covered by the contract tests.

// visible is how long a change may take to reach a polling consumer: Polaris
// rebuilds its /apps cache every second; the rest is slack for a loaded
// 2-core machine.
const visible = 5 * time.Second

func polarisConfig(url, mode, app, id string) *Options {
	cfg := testConfig(mode, url)
	cfg.Service = strings.ToLower(app)
	cfg.App = app
	cfg.InstanceID = id
	return cfg
}

// onlineEventually calls Online until it succeeds, as registry.Set does.
func onlineEventually(t *testing.T, e *Eureka, within time.Duration) {
	t.Helper()
	poll.Eventually(t, within, "Online", func() error { return e.Online(ctxFor(t, 2*time.Second)) })
}

// TestPolarisMarkModeDrain: Offline takes the app's own instance out of what
// consumers see within seconds, the other instance stays, and the app's
// continuing heartbeats do not bring it back.
func TestPolarisMarkModeDrain(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)
	const app, id1, id2 = "DRAIN-SVC", "pod-1:drain-svc:8080", "pod-2:drain-svc:8080"
	standin.StartEurekaApp(t, srv.EurekaURL, app, id1, "127.0.0.2", 8080)
	standin.StartEurekaApp(t, srv.EurekaURL, app, id2, "127.0.0.3", 8080)
	c := standin.NewEurekaConsumer(srv.EurekaURL)
	c.WaitStatus(t, app, id1, "UP", visible, standin.EurekaUp)
	c.WaitStatus(t, app, id2, "UP", visible, standin.EurekaUp)

	log, logs := testLogger()
	e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id1), log)
	onlineEventually(t, e, visible)
	start := time.Now()
	if err := e.Offline(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	took := time.Since(start)
	gone := c.WaitStatus(t, app, id1, "not UP", visible, standin.EurekaNotUp)
	t.Logf("Offline call %v; consumer stopped seeing the instance UP %v after it returned", took.Round(time.Millisecond), gone.Round(time.Millisecond))
	if s := c.Status(app, id2); s != "UP" {
		t.Fatalf("the other instance is %q, want UP", s)
	}
	// Three of the app's heartbeats later it is still out of rotation.
	time.Sleep(3500 * time.Millisecond)
	if s := c.Status(app, id1); s == "UP" {
		t.Fatal("the app's heartbeats put the instance back UP")
	}
	if err := e.Close(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c.Status(app, id1) == "" {
		t.Fatal("Close deregistered the instance without --eureka-deregister-on-exit")
	}
	if !strings.Contains(logs.String(), "instance marked OUT_OF_SERVICE") {
		t.Errorf("Offline not logged:\n%s", logs)
	}
}

// TestPolarisStaleOverrideRepairedByOnline: an OUT_OF_SERVICE left by an
// earlier drain is removed once the app is up again; an instance the app has
// not registered yet makes Online fail (to be retried) and Offline a no-op.
func TestPolarisStaleOverrideRepairedByOnline(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)
	const app, id = "REPAIR-SVC", "pod-1:repair-svc:8080"
	ctx := ctxFor(t, time.Minute)

	// Not registered yet.
	log, logs := testLogger()
	e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), log)
	if err := e.Online(ctxFor(t, 5*time.Second)); err == nil || !strings.Contains(err.Error(), "not registered yet") {
		t.Fatalf("Online before the app registered = %v, want a not-registered error", err)
	}
	other := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, "pod-9:repair-svc:8080"), log)

	standin.StartEurekaApp(t, srv.EurekaURL, app, id, "127.0.0.2", 8080)
	c := standin.NewEurekaConsumer(srv.EurekaURL)
	c.WaitStatus(t, app, id, "UP", visible, standin.EurekaUp)
	if err := other.Offline(ctxFor(t, 5*time.Second)); !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), id+" (127.0.0.2:8080 UP)") {
		t.Fatalf("Offline of an unknown instance = %v, want not-found naming what the server holds", err)
	}

	// The drain of the previous pod left the instance OUT_OF_SERVICE.
	if err := e.Offline(ctx); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	c.WaitStatus(t, app, id, "not UP", visible, standin.EurekaNotUp)

	// Netflix's base path, with a trailing slash, works as well.
	fresh := mustNew(t, polarisConfig(srv.EurekaURL+"/v2/", "mark", app, id), log)
	onlineEventually(t, fresh, visible)
	back := c.WaitStatus(t, app, id, "UP", visible, standin.EurekaUp)
	t.Logf("consumer saw the instance UP again %v after Online", back.Round(time.Millisecond))
	if !strings.Contains(logs.String(), "OUT_OF_SERVICE override cleared") {
		t.Errorf("repair not logged:\n%s", logs)
	}
	// Nothing left to repair: a second Online changes nothing.
	if err := fresh.Online(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("second Online: %v", err)
	}
}

// TestPolarisRegisterModeRoundTrip: gracefulinit registers the instance,
// keeps it alive with heartbeats, and removes it at Offline.
func TestPolarisRegisterModeRoundTrip(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)
	const app, id = "REG-SVC", "pod-1:reg-svc:9090"
	// The first service URL is down: every call fails over to Polaris.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/eureka"
	ln.Close()
	cfg := polarisConfig(dead, "register", app, id)
	cfg.URLs = append(cfg.URLs, srv.EurekaURL)
	cfg.IP, cfg.Port = "127.0.0.4", 9090
	// Polaris expires an instance after 3 renewal intervals without a
	// heartbeat: 1 s makes a stopped heartbeat show within the test.
	cfg.Heartbeat = time.Second
	cfg.Metadata = map[string]string{"zone": "zone-a"}
	log, logs := testLogger()
	e := mustNew(t, cfg, log)

	start := time.Now()
	onlineEventually(t, e, visible)
	c := standin.NewEurekaConsumer(srv.EurekaURL)
	c.WaitStatus(t, app, id, "UP", visible, standin.EurekaUp)
	t.Logf("registered instance visible %v after Online began", time.Since(start).Round(time.Millisecond))
	in := c.Instance(app, id)
	if in == nil || in.IPAddr != "127.0.0.4" || in.Port != 9090 || in.VipAddress != "reg-svc" {
		t.Fatalf("registered instance %+v does not match the config", in)
	}
	if zone, _ := in.Metadata.GetString("zone"); zone != "zone-a" {
		t.Errorf("metadata zone = %q, want zone-a", zone)
	}
	// Well past Polaris's 3 s expiry, heartbeats keep it UP.
	time.Sleep(5 * time.Second)
	if s := c.Status(app, id); s != "UP" {
		t.Fatalf("after 5 s of heartbeats the instance is %q, want UP", s)
	}

	// Removed behind our back (an eviction, a wiped server): a heartbeat's
	// 404 registers it again. Polaris keeps accepting heartbeats for about
	// 4 s after a deregistration (its health-check cache), hence the wait.
	if err := c.Conn.DeregisterInstance(&fargo.Instance{App: app, InstanceId: id}); err != nil {
		t.Fatalf("removing the instance: %v", err)
	}
	c.WaitStatus(t, app, id, "removed", visible, standin.EurekaMissing)
	back := c.WaitStatus(t, app, id, "UP again", 2*visible, standin.EurekaUp)
	t.Logf("re-registered by the heartbeat, visible %v after the removal was", back.Round(time.Millisecond))
	if !strings.Contains(logs.String(), "registering it again") {
		t.Errorf("re-registration not logged:\n%s", logs)
	}

	if err := e.Offline(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	c.WaitStatus(t, app, id, "deregistered", visible, standin.EurekaMissing)
	if err := e.Close(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if strings.Contains(logs.String(), "heartbeat failed") {
		t.Errorf("heartbeats failed:\n%s", logs)
	}
}

// TestPolarisDownAtOffline: a registry that is gone answers nothing; Offline
// reports it within its deadline instead of hanging the drain.
func TestPolarisDownAtOffline(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)
	const app, id = "DOWN-SVC", "pod-1:down-svc:8080"
	standin.StartEurekaApp(t, srv.EurekaURL, app, id, "127.0.0.2", 8080)
	standin.NewEurekaConsumer(srv.EurekaURL).WaitStatus(t, app, id, "UP", visible, standin.EurekaUp)
	e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), nil)
	onlineEventually(t, e, visible)

	srv.Stop()
	const deadline = 2 * time.Second
	start := time.Now()
	err := e.Offline(ctxFor(t, deadline))
	took := time.Since(start)
	if err == nil {
		t.Fatal("Offline with the server down succeeded")
	}
	if took > deadline+time.Second {
		t.Fatalf("Offline took %v, deadline %v", took, deadline)
	}
	t.Logf("Offline with the server down failed after %v: %v", took.Round(time.Millisecond), err)
}

// TestPolarisDownAtOnline: while the registry is down Online keeps failing
// and registry.Set keeps retrying; once it is back the stale override is
// repaired.
func TestPolarisDownAtOnline(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)
	const app, id = "BACK-SVC", "pod-1:back-svc:8080"
	standin.StartEurekaApp(t, srv.EurekaURL, app, id, "127.0.0.2", 8080)
	c := standin.NewEurekaConsumer(srv.EurekaURL)
	c.WaitStatus(t, app, id, "UP", visible, standin.EurekaUp)
	if err := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), nil).Offline(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	c.WaitStatus(t, app, id, "not UP", visible, standin.EurekaNotUp)

	srv.Stop()
	log, logs := testLogger()
	e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), log)
	set := &registry.Set{Registries: []registry.Registry{e}, Timeout: time.Second,
		RetryMin: 200 * time.Millisecond, RetryMax: time.Second, Log: log}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { set.Online(ctx); close(done) }()

	time.Sleep(2 * time.Second)
	select {
	case <-done:
		t.Fatalf("Online gave up or succeeded with the server down:\n%s", logs)
	default:
	}
	if n := strings.Count(logs.String(), "registry online not done yet, retrying"); n < 2 {
		t.Fatalf("%d failed attempts logged while the server was down, want >= 2:\n%s", n, logs)
	}

	srv.Start(t)
	restarted := time.Now()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Online did not succeed within 30 s of the server's return:\n%s", logs)
	}
	if ctx.Err() != nil {
		t.Fatalf("Online ended by its context, not by success:\n%s", logs)
	}
	c.WaitStatus(t, app, id, "UP", visible, standin.EurekaUp)
	t.Logf("instance back UP %v after the server restarted", time.Since(restarted).Round(time.Millisecond))
}
