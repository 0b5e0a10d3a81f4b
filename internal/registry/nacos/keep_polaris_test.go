package nacos

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// TestMarkKeep: an app told to register itself at weight 0 is put in
// rotation by Online; when it registers again at weight 0 (the server
// forgot it: its next beat is answered 404 and it registers as told),
// Keep puts it back. An instance disabled by hand is left alone, an app
// that was not told is never looked at, and after Offline nothing is
// written.
func TestMarkKeep(t *testing.T) {
	t.Parallel() // its own Polaris
	s := registrytest.StartPolaris(t)
	const service, port = "keep", 18082
	const ip = "127.0.0.2"
	app := &standin.NacosHTTPApp{T: t, Server: s, Service: service, IP: ip, Port: port, Weight: "0"}
	app.Start()
	other := &standin.NacosHTTPApp{T: t, Server: s, Service: service, IP: "127.0.0.3", Port: port}
	other.Start()
	consumer := standin.NewNacosConsumer(t, s, service)
	selected := func(want bool, what string) {
		t.Helper()
		consumer.WaitSelection(t, 10*time.Second, what, func(sel map[string]bool) error {
			if sel[ip+":18082"] != want || !sel["127.0.0.3:18082"] {
				return fmt.Errorf("selection %v", sel)
			}
			return nil
		})
	}
	selected(false, "the told registration is not selected")

	cfg := markConfig(s, service, ip, port)
	cfg.Offline = "both"
	r, err := New(*cfg, newLogSink(t).logger())
	if err != nil {
		t.Fatal(err)
	}
	m := r.(*mark)
	ctx := context.Background()
	keep := func(want bool) {
		t.Helper()
		put, err := m.Keep(ctx)
		if err != nil || put != want {
			t.Fatalf("Keep = %v, %v; want %v", put, err, want)
		}
	}
	keep(false) // not told, not online: no request

	if env := m.AppEnv(func(string) (string, bool) { return "", false }); len(env) != 1 {
		t.Fatalf("AppEnv = %q", env)
	}
	standin.WaitNacosHost(t, s, service, ip, port, "registered at weight 0", 10*time.Second, standin.NacosWeight0)
	if st, err := m.Hold(ctx); err != nil || st != registry.HoldRegisteredOut {
		t.Fatalf("Hold = %v, %v; want HoldRegisteredOut", st, err)
	}
	keep(false) // before Online: the hold's business
	if err := m.Online(ctx); err != nil {
		t.Fatal(err)
	}
	selected(true, "in rotation after Online")
	keep(false) // in rotation: nothing to do

	// The server forgets the instance; the app's next beat is answered
	// 404 and it registers again, at weight 0 as told.
	deregister(t, s, service, ip, port)
	standin.WaitNacosHost(t, s, service, ip, port, "registered again at weight 0", 10*time.Second, standin.NacosWeight0)
	selected(false, "the registration again is out of rotation")
	keep(true)
	standin.WaitNacosHost(t, s, service, ip, port, "back in rotation", 10*time.Second, standin.NacosInRotation)
	selected(true, "selected again after Keep")

	// Taken out by hand (disabled): left alone.
	h, err := standin.FindNacosHost(s, service, ip, port)
	if err != nil || h == nil {
		t.Fatalf("%+v %v", h, err)
	}
	if err := standin.SetNacosInstance(s, service, h.Cluster, ip, port, 0, false, h.Metadata); err != nil {
		t.Fatal(err)
	}
	standin.WaitNacosHost(t, s, service, ip, port, "disabled by hand", 10*time.Second, standin.NacosAbsent)
	keep(false)
	if err := standin.SetNacosInstance(s, service, h.Cluster, ip, port, 1, true, h.Metadata); err != nil {
		t.Fatal(err)
	}
	standin.WaitNacosHost(t, s, service, ip, port, "enabled by hand", 10*time.Second, standin.NacosInRotation)

	// After Offline: a registration again at weight 0 stays there.
	if err := m.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	deregister(t, s, service, ip, port)
	standin.WaitNacosHost(t, s, service, ip, port, "registered again after the offline", 10*time.Second, standin.NacosWeight0)
	keep(false)
	time.Sleep(2 * time.Second) // a cached read would show a write by now
	if h, err := standin.FindNacosHost(s, service, ip, port); err != nil || h == nil || h.Weight != 0 {
		t.Fatalf("after Offline: %+v %v, want weight 0", h, err)
	}
}

// deregister removes the instance behind the app's back, as a server that
// lost its state would have.
func deregister(t *testing.T, s *registrytest.Server, service, ip string, port int) {
	t.Helper()
	q := url.Values{"namespaceId": {"public"}, "serviceName": {standin.NacosGroup + "@@" + service}, "ip": {ip},
		"port": {strconv.Itoa(port)}, "clusterName": {"DEFAULT"}, "ephemeral": {"true"}}
	req, err := http.NewRequest(http.MethodDelete, s.NacosAddr+"/nacos/v1/ns/instance?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deregister: %s", resp.Status)
	}
}

// TestMarkOfflineRightAfterOnline: a stop that comes right after the
// online step (a rollback, a scale-down) meets Polaris's list still showing
// the instance as it was before Online's write, for up to its 1 s cache
// tick: hidden (the hold disabled it) or at the told weight 0. The offline
// step must take the instance out all the same, not report it not found
// or already out while it is in rotation.
func TestMarkOfflineRightAfterOnline(t *testing.T) {
	t.Parallel() // its own Polaris
	s := registrytest.StartPolaris(t)
	for i, tc := range []struct {
		offline string
		before  func(*standin.NacosHost) bool // what the list shows before Online's write
		after   func(*standin.NacosHost) bool // out of rotation as the offline step leaves it
	}{
		{"both", standin.NacosAbsent, standin.NacosAbsent},
		{"weight", standin.NacosWeight0, standin.NacosWeight0},
	} {
		t.Run(tc.offline, func(t *testing.T) {
			service, ip, port := "offnow-"+tc.offline, "127.0.0.2", 18090+i
			app := &standin.NacosHTTPApp{T: t, Server: s, Service: service, IP: ip, Port: port, Weight: "0"}
			app.Start()
			cfg := markConfig(s, service, ip, port)
			cfg.Offline = tc.offline
			r, err := New(*cfg, newLogSink(t).logger())
			if err != nil {
				t.Fatal(err)
			}
			m := r.(*mark)
			m.AppEnv(func(string) (string, bool) { return "", false })
			standin.WaitNacosHost(t, s, service, ip, port, "registered at weight 0", 10*time.Second, standin.NacosWeight0)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if st, err := m.Hold(ctx); err != nil || st != registry.HoldRegisteredOut {
				t.Fatalf("Hold = %v, %v; want HoldRegisteredOut", st, err)
			}
			standin.WaitNacosHost(t, s, service, ip, port, "held", 10*time.Second, tc.before)
			if err := m.Online(ctx); err != nil {
				t.Fatal(err)
			}
			set := &registry.Set{Registries: []registry.Registry{m}, Timeout: cfg.Timeout, Log: newLogSink(t).logger()}
			if err := set.Offline(ctx); err != nil {
				t.Fatalf("Offline right after Online: %v", err)
			}
			time.Sleep(2 * time.Second) // the list shows every write by now
			h, err := standin.FindNacosHost(s, service, ip, port)
			if err != nil || !tc.after(h) {
				t.Fatalf("after the offline step: %+v %v: still in rotation", h, err)
			}
		})
	}
}
