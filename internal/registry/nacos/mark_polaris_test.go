package nacos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/poll"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/registrytest/standin"
)

func newMarkFor(t *testing.T, s *registrytest.Server, service, ip string, port int, offline string) registry.Registry {
	t.Helper()
	cfg := markConfig(s, service, ip, port)
	cfg.Nacos.Offline = offline
	r, err := New(cfg, newLogSink(t).logger())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMarkAgainstPolaris takes apps' own instances out of rotation and puts
// them back, with a subscribed consumer as the judge. One app registers over
// gRPC (nacos-sdk-go, like Spring Cloud Alibaba on Nacos 2.x), one through
// the v1 HTTP API with heartbeats (like a 1.x client).
func TestMarkAgainstPolaris(t *testing.T) {
	s := registrytest.StartPolaris(t)
	const service, port = "orders", 18080
	grpcA := &standin.NacosGRPCApp{T: t, Server: s, Service: service, IP: "127.0.0.2", Port: port}
	httpB := &standin.NacosHTTPApp{T: t, Server: s, Service: service, IP: "127.0.0.3", Port: port}
	other := &standin.NacosGRPCApp{T: t, Server: s, Service: service, IP: "127.0.0.4", Port: port}
	grpcA.Start()
	httpB.Start()
	other.Start()
	consumer := standin.NewNacosConsumer(t, s, service)
	all := []string{"127.0.0.2:18080", "127.0.0.3:18080", "127.0.0.4:18080"}
	consumer.WaitSelection(t, 10*time.Second, "consumer sees all three instances", func(sel map[string]bool) error {
		for _, a := range all {
			if !sel[a] {
				return fmt.Errorf("%s not selected yet: %v", a, sel)
			}
		}
		return nil
	})

	cases := []struct {
		name    string
		ip      string
		offline string
		restart func() // the app restarts and registers again
	}{
		{"grpc-app/weight", "127.0.0.2", "weight", func() { grpcA.Stop(); waitGone(t, s, service, "127.0.0.2", port); grpcA.Start() }},
		{"http-app/weight", "127.0.0.3", "weight", func() { httpB.Stop(); waitGone(t, s, service, "127.0.0.3", port); httpB.Start() }},
		{"grpc-app/disable", "127.0.0.2", "disable", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := fmt.Sprintf("%s:%d", tc.ip, port)
			r := newMarkFor(t, s, service, tc.ip, port, tc.offline)
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
			// Twice is fine: a no-op, even while the server's list cache
			// still shows the old weight.
			if err := bounded(r.Offline); err != nil {
				t.Fatalf("second Offline: %v", err)
			}

			if tc.restart == nil {
				// Polaris hides disabled instances from every read, so
				// Online cannot see this one; put it back by hand.
				if err := standin.SetNacosInstance(s, service, tc.ip, port, 1, true, grpcA.Metadata()); err != nil {
					t.Fatal(err)
				}
			} else {
				// The restart trap: the app comes back within Nacos's
				// 60 s override expiry and keeps weight 0. Polaris resets
				// the weight on re-registration, so re-apply the override
				// the way Nacos would keep it.
				tc.restart()
				standin.WaitNacosHost(t, s, service, tc.ip, port, "registered again", 10*time.Second, standin.NacosListed)
				standin.SetNacosWeight(t, s, service, tc.ip, port, 0)
				standin.WaitNacosHost(t, s, service, tc.ip, port, "stale weight 0 visible", 10*time.Second, standin.NacosWeight0)
				if err := bounded(r.Online); err != nil {
					t.Fatalf("Online: %v", err)
				}
				if h, err := standin.FindNacosHost(s, service, tc.ip, port); err != nil || h == nil {
					t.Fatalf("instance gone after Online: %v", err)
				}
			}
			took = consumer.WaitSelection(t, 10*time.Second, "consumer selects "+target+" again", func(sel map[string]bool) error {
				if !sel[target] {
					return fmt.Errorf("not selected: %v", sel)
				}
				return nil
			})
			t.Logf("consumer selected %s again %v after Online", target, took.Round(10*time.Millisecond))
			if h, err := standin.FindNacosHost(s, service, tc.ip, port); err != nil || h == nil || h.Weight != 1 || !h.Enabled {
				t.Fatalf("after Online: %+v %v", h, err)
			}
			// Online on a healthy instance changes nothing.
			if err := bounded(r.Online); err != nil {
				t.Fatalf("second Online: %v", err)
			}
		})
	}

	t.Run("credentials-without-auth-endpoint", func(t *testing.T) {
		// Polaris has no Nacos login endpoint: credentials must not break
		// the calls.
		cfg := markConfig(s, service, "127.0.0.4", port)
		cfg.Nacos.Username, cfg.Nacos.Password = "nacos", "nacos-pw"
		r, err := New(cfg, newLogSink(t).logger())
		if err != nil {
			t.Fatal(err)
		}
		if err := bounded(r.Online); err != nil {
			t.Fatalf("Online with credentials: %v", err)
		}
	})

	t.Run("not-registered", func(t *testing.T) {
		r := newMarkFor(t, s, service, "127.0.0.9", port, "weight")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Offline(ctx); err != nil {
			t.Fatalf("Offline of an unregistered instance: %v", err)
		}
		if err := r.Online(ctx); err == nil {
			t.Fatal("Online of an unregistered instance succeeded; want a retryable error")
		}
		// Unknown service too.
		r = newMarkFor(t, s, "no-such-service", "127.0.0.9", port, "weight")
		if err := r.Offline(ctx); err != nil {
			t.Fatalf("Offline in an unknown service: %v", err)
		}
	})
}

// bounded runs one registry call with a fresh deadline, as registry.Set does.
func bounded(call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return call(ctx)
}

func waitGone(t *testing.T, s *registrytest.Server, service, ip string, port int) {
	t.Helper()
	standin.WaitNacosHost(t, s, service, ip, port, "deregistered", 10*time.Second, standin.NacosAbsent)
}

// TestMarkServerDown: a registry outage must cost at most the call's
// deadline, and Online must succeed once the server is back.
func TestMarkServerDown(t *testing.T) {
	s := registrytest.StartPolaris(t)
	const service, port = "payments", 18081
	app := &standin.NacosGRPCApp{T: t, Server: s, Service: service, IP: "127.0.0.2", Port: port}
	app.Start()
	standin.WaitNacosHost(t, s, service, "127.0.0.2", port, "listed", 10*time.Second, standin.NacosListed)
	r := newMarkFor(t, s, service, "127.0.0.2", port, "weight")

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
