package nacos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

func newMarkFor(t *testing.T, s *registrytest.Server, service, ip string, port int, cluster, offline string) registry.Registry {
	t.Helper()
	cfg := markConfig(s, service, ip, port)
	cfg.Cluster = cluster
	cfg.Offline = offline
	r, err := New(*cfg, newLogSink(t).logger())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMarkAgainstPolaris takes apps' own instances out of rotation and puts
// them back, with a subscribed consumer as the judge. Apps register the ways
// real ones do: over gRPC (nacos-sdk-go, like Spring Cloud Alibaba on Nacos
// 2.x) without a cluster name (Polaris keeps it empty), with DEFAULT, or in a
// named cluster; and through the v1 HTTP API with heartbeats (a 1.x client).
func TestMarkAgainstPolaris(t *testing.T) {
	t.Parallel() // its own Polaris
	s := registrytest.StartPolaris(t)
	const service, port = "orders", 18080
	// restart stops the app at ip and starts it again: it registers
	// afresh, which on Polaris resets weight and enabled.
	restart := map[string]func(*testing.T){}
	grpcApp := func(ip, cluster string) {
		a := &standin.NacosGRPCApp{T: t, Server: s, Service: service, IP: ip, Port: port, Cluster: cluster}
		a.Start()
		restart[ip] = func(t *testing.T) { a.Stop(); waitDeregistered(t, s, service, ip, port); a.Start() }
	}
	httpApp := func(ip string) {
		a := &standin.NacosHTTPApp{T: t, Server: s, Service: service, IP: ip, Port: port}
		a.Start()
		restart[ip] = func(t *testing.T) { a.Stop(); waitDeregistered(t, s, service, ip, port); a.Start() }
	}
	grpcApp("127.0.0.2", "DEFAULT")
	httpApp("127.0.0.3")
	grpcApp("127.0.0.4", "DEFAULT") // the other instance, always in rotation
	grpcApp("127.0.0.5", "")
	grpcApp("127.0.0.6", "BJ")
	grpcApp("127.0.0.7", "DEFAULT")
	httpApp("127.0.0.8")
	consumer := standin.NewNacosConsumer(t, s, service)
	consumer.WaitSelection(t, 10*time.Second, "consumer sees every instance", func(sel map[string]bool) error {
		for i := 2; i <= 8; i++ {
			if a := fmt.Sprintf("127.0.0.%d:%d", i, port); !sel[a] {
				return fmt.Errorf("%s not selected yet: %v", a, sel)
			}
		}
		return nil
	})

	cases := []struct {
		name    string
		ip      string
		cluster string // --nacos-cluster
		offline string
	}{
		{"grpc-default/weight", "127.0.0.2", "DEFAULT", "weight"},
		{"http-app/weight", "127.0.0.3", "DEFAULT", "weight"},
		{"grpc-default/disable", "127.0.0.7", "DEFAULT", "disable"},
		{"grpc-no-cluster/both", "127.0.0.5", "DEFAULT", "both"},
		{"grpc-no-cluster/both/empty-cluster-flag", "127.0.0.5", "", "both"},
		{"grpc-named-cluster/both", "127.0.0.6", "BJ", "both"},
		{"grpc-named-cluster/both/not-configured", "127.0.0.6", "DEFAULT", "both"},
		{"http-app/both", "127.0.0.8", "DEFAULT", "both"},
	}
	// The cases of one instance run in order; the instances run side by
	// side (t.Run from goroutines, not t.Parallel: go test's -parallel, 2
	// on 2 cores, would queue them), each case waiting seconds for the
	// consumer's pushes.
	var ips []string
	lanes := map[string][]int{}
	for i, tc := range cases {
		if lanes[tc.ip] == nil {
			ips = append(ips, tc.ip)
		}
		lanes[tc.ip] = append(lanes[tc.ip], i)
	}
	t.Run("instances", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, ip := range ips {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.Run(ip, func(t *testing.T) {
					for _, i := range lanes[ip] {
						markCase(t, s, consumer, restart, service, port, cases[i].name, cases[i].ip, cases[i].cluster, cases[i].offline)
					}
				})
			}()
		}
		wg.Wait()
	})

	t.Run("credentials-without-auth-endpoint", func(t *testing.T) {
		// Polaris has no Nacos login endpoint: credentials must not break
		// the calls.
		cfg := markConfig(s, service, "127.0.0.4", port)
		cfg.Username, cfg.Password = "nacos", "nacos-pw"
		r, err := New(*cfg, newLogSink(t).logger())
		if err != nil {
			t.Fatal(err)
		}
		if err := bounded(r.Online); err != nil {
			t.Fatalf("Online with credentials: %v", err)
		}
	})

	t.Run("not-registered", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, tc := range []struct {
			name, service, ip, cluster string
			holds                      string // in the error: what the server lists
		}{
			{"unknown ip", service, "127.0.0.9", "DEFAULT", "127.0.0.4:18080:DEFAULT"},
			{"another cluster configured", service, "127.0.0.4", "SH", "127.0.0.4:18080:DEFAULT"},
			{"unknown service", "no-such-service", "127.0.0.9", "DEFAULT", "no instances"},
		} {
			r := newMarkFor(t, s, tc.service, tc.ip, port, tc.cluster, "weight")
			err := r.Offline(ctx)
			if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), tc.holds) {
				t.Errorf("%s: Offline: %v, want not-found naming %q", tc.name, err, tc.holds)
			}
			if err := r.Online(ctx); err == nil {
				t.Errorf("%s: Online of an unregistered instance succeeded; want a retryable error", tc.name)
			}
		}
	})
}

// bounded runs one registry call with a fresh deadline, as registry.Set does.
func bounded(call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return call(ctx)
}

// waitDeregistered waits until the app's stopped instance is gone. A
// disabled one is never listed, so that wait is a fixed one: Polaris drops a
// closed gRPC client's instances about 0.5 s later.
func waitDeregistered(t *testing.T, s *registrytest.Server, service, ip string, port int) {
	t.Helper()
	standin.WaitNacosHost(t, s, service, ip, port, "deregistered", 10*time.Second, standin.NacosAbsent)
	time.Sleep(2 * time.Second)
}

// TestMarkServerDown: a registry outage must cost at most the call's
// deadline, and Online must succeed once the server is back.
func TestMarkServerDown(t *testing.T) {
	t.Parallel() // its own Polaris
	s := registrytest.StartPolaris(t)
	const service, port = "payments", 18081
	app := &standin.NacosGRPCApp{T: t, Server: s, Service: service, IP: "127.0.0.2", Port: port, Cluster: "DEFAULT"}
	app.Start()
	standin.WaitNacosHost(t, s, service, "127.0.0.2", port, "listed", 10*time.Second, standin.NacosListed)
	r := newMarkFor(t, s, service, "127.0.0.2", port, "DEFAULT", "weight")

	s.Stop()
	const deadline = 2 * time.Second
	for _, step := range []struct {
		name string
		call func(context.Context) error
	}{{"Offline", r.Offline}, {"Online", r.Online}} {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		err := step.call(ctx)
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("%s with the server down succeeded", step.name)
		}
		if took > deadline+time.Second {
			t.Fatalf("%s took %v, beyond its %v deadline", step.name, took, deadline)
		}
		t.Logf("%s with the server down: %v after %v", step.name, err, took.Round(time.Millisecond))
	}

	// Server down at Online: errors until it is back, then success once
	// the app's SDK has re-registered (the Set retries like this).
	s.Start(t)
	took := poll.Eventually(t, 30*time.Second, "Online after the server came back", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		return r.Online(ctx)
	})
	t.Logf("Online succeeded %v after the server came back", took.Round(10*time.Millisecond))
}

// markCase is one case of TestMarkAgainstPolaris: Offline with the consumer
// as the judge, the restart trap, Online.
func markCase(t *testing.T, s *registrytest.Server, consumer *standin.NacosConsumer, restart map[string]func(*testing.T), service string, port int, name, ip, cluster, offline string) {
	t.Run(name, func(t *testing.T) {
		tc := struct{ ip, cluster, offline string }{ip, cluster, offline}
		target := fmt.Sprintf("%s:%d", tc.ip, port)
		r := newMarkFor(t, s, service, tc.ip, port, tc.cluster, tc.offline)
		if err := bounded(r.Offline); err != nil {
			t.Fatalf("Offline: %v", err)
		}
		took := consumer.WaitSelection(t, 10*time.Second, "consumer stops selecting "+target, func(sel map[string]bool) error {
			if sel[target] {
				return fmt.Errorf("still selected: %v", sel)
			}
			if !sel["127.0.0.4:18080"] {
				return fmt.Errorf("the other instance is not selected: %v", sel)
			}
			return nil
		})
		t.Logf("consumer stopped selecting %s %v after Offline", target, took.Round(10*time.Millisecond))
		for i := 0; i < 20; i++ {
			one, err := consumer.PickOne()
			if err != nil {
				t.Fatal(err)
			}
			if one == target {
				t.Fatalf("SelectOneHealthyInstance picked %s after Offline", target)
			}
		}
		h, err := standin.FindNacosHost(s, service, tc.ip, port)
		if err != nil {
			t.Fatal(err)
		}
		hidden := tc.offline != "weight"
		if hidden && h != nil {
			t.Fatalf("after Offline: %+v, want disabled (Polaris's list hides it)", h)
		}
		if !hidden && !standin.NacosWeight0(h) {
			t.Fatalf("after Offline: %+v, want weight 0", h)
		}
		// Twice is fine: a no-op, even while the server's list cache
		// still shows the old state.
		if err := bounded(r.Offline); err != nil {
			t.Fatalf("second Offline: %v", err)
		}

		// A restarted gracefulinit (a fresh backend) cannot see a
		// disabled instance on Polaris, and writes nothing blind.
		r = newMarkFor(t, s, service, tc.ip, port, tc.cluster, tc.offline)
		if hidden {
			if err := bounded(r.Online); err == nil || !strings.Contains(err.Error(), "not registered yet") {
				t.Fatalf("Online of a disabled instance on Polaris: %v, want not registered yet", err)
			}
		}
		// The restart trap: the app comes back within Nacos's 60 s
		// override expiry. Polaris resets weight and enabled when it
		// registers again (so there is no enabled trap there); Nacos
		// keeps the weight-0 override, re-applied here as it would be.
		restart[tc.ip](t)
		standin.WaitNacosHost(t, s, service, tc.ip, port, "registered again, enabled", 10*time.Second, standin.NacosListed)
		standin.SetNacosWeight(t, s, service, tc.ip, port, 0)
		standin.WaitNacosHost(t, s, service, tc.ip, port, "stale weight 0 visible", 10*time.Second, standin.NacosWeight0)
		if err := bounded(r.Online); err != nil {
			t.Fatalf("Online: %v", err)
		}
		took = consumer.WaitSelection(t, 10*time.Second, "consumer selects "+target+" again", func(sel map[string]bool) error {
			if !sel[target] {
				return fmt.Errorf("not selected: %v", sel)
			}
			return nil
		})
		t.Logf("consumer selected %s again %v after Online", target, took.Round(10*time.Millisecond))
		if h, err := standin.FindNacosHost(s, service, tc.ip, port); err != nil || h == nil || h.Weight != 1 || !h.Enabled || !h.Healthy {
			t.Fatalf("after Online: %+v %v", h, err)
		}
		// Online on an instance in rotation changes nothing.
		if err := bounded(r.Online); err != nil {
			t.Fatalf("second Online: %v", err)
		}
	})
}
