package nacos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestRegisterRoundTrip registers on behalf of an app with the SDK: the
// instance appears for a subscribed consumer after Online and disappears
// after Offline, and the SDK writes nothing outside the configured dir.
// The SDK runs in the helper process, driven over its pipe.
func TestRegisterRoundTrip(t *testing.T) {
	t.Parallel() // its own Polaris
	s := registrytest.StartPolaris(t)
	const service, ip, port = "inventory", "127.0.0.5", 18082
	exe := testbin.Helper(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// The SDK's fallbacks: <dir of the binary>/log and /cache, or the cwd.
	for _, d := range []string{filepath.Dir(exe), wd} {
		for _, sub := range []string{"log", "cache"} {
			if _, err := os.Stat(filepath.Join(d, sub)); err == nil {
				t.Fatalf("%s exists before the test; cannot check the SDK's side effects", filepath.Join(d, sub))
			}
		}
	}

	cacheDir := filepath.Join(t.TempDir(), "nacos-sdk")
	cfg := markConfig(s, service, ip, port)
	cfg.Mode = "register"
	cfg.Helper = exe
	cfg.CacheDir = cacheDir
	cfg.Weight = 3
	cfg.Metadata = map[string]string{"version": "1.2.3"}
	sink := newLogSink(t)
	r, err := New(*cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Nothing registered yet: Offline is a no-op.
	if err := r.Offline(ctx); err != nil {
		t.Fatalf("Offline before Online: %v", err)
	}
	r, err = New(*cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = r.Close(cctx)
	})

	// nacos-sdk-go consumers keep their cached list when it turns empty
	// (UpdateCacheWhenEmpty=false): keep another instance in the service.
	other := &standin.NacosGRPCApp{T: t, Server: s, Service: service, IP: "127.0.0.4", Port: port}
	other.Start()
	consumer := standin.NewNacosConsumer(t, s, service)
	target := fmt.Sprintf("%s:%d", ip, port)
	start := time.Now()
	if err := r.Online(ctx); err != nil {
		t.Fatalf("Online: %v", err)
	}
	t.Logf("Online (client start + register) took %v", time.Since(start).Round(time.Millisecond))
	took := consumer.WaitSelection(t, 10*time.Second, "consumer selects the registered instance", func(sel map[string]bool) error {
		if !sel[target] {
			return fmt.Errorf("not selected: %v", sel)
		}
		return nil
	})
	t.Logf("visible to the consumer %v after Online", took.Round(10*time.Millisecond))
	h, err := standin.FindNacosHost(s, service, ip, port)
	if err != nil || h == nil || h.Weight != 3 || !h.Enabled || h.Metadata["version"] != "1.2.3" {
		t.Fatalf("registered instance: %+v %v", h, err)
	}

	if err := r.Offline(ctx); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	took = consumer.WaitSelection(t, 10*time.Second, "instance gone after Offline", func(sel map[string]bool) error {
		if sel[target] || !sel["127.0.0.4:18082"] {
			return fmt.Errorf("selected: %v", sel)
		}
		if h, err := standin.FindNacosHost(s, service, ip, port); err != nil || h != nil {
			return fmt.Errorf("still listed: %+v %v", h, err)
		}
		return nil
	})
	t.Logf("gone %v after Offline", took.Round(10*time.Millisecond))
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	if _, err := os.Stat(cacheDir); err != nil {
		t.Fatalf("the SDK dir was not used: %v", err)
	}
	for _, d := range []string{filepath.Dir(exe), wd} {
		for _, sub := range []string{"log", "cache"} {
			if _, err := os.Stat(filepath.Join(d, sub)); err == nil {
				t.Fatalf("the SDK wrote %s", filepath.Join(d, sub))
			}
		}
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "log", "nacos-sdk.log")); err == nil {
		t.Fatal("the SDK logged to a file despite our logger")
	}
}

// TestRegisterServerDown: with no server, Online fails within its deadline
// (the SDK's own connect retries run in the background) and registers once
// the server is up, even without a usable cache dir; Close tears the client
// down.
func TestRegisterServerDown(t *testing.T) {
	t.Parallel() // its own Polaris
	s := registrytest.StartPolaris(t)
	const service, ip, port = "billing", "127.0.0.6", 18083
	s.Stop()
	cfg := markConfig(s, service, ip, port)
	cfg.Mode = "register"
	cfg.Helper = testbin.Helper(t)
	// An unusable cache dir (read-only root filesystem) must not keep the
	// instance unregistered: the SDK only writes there for subscriptions.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CacheDir = filepath.Join(blocker, "nacos")
	r, err := New(*cfg, newLogSink(t).logger())
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	start := time.Now()
	err = r.Online(ctx)
	took := time.Since(start)
	cancel()
	if err == nil {
		t.Fatal("Online with the server down succeeded")
	}
	if took > deadline+time.Second {
		t.Fatalf("Online took %v, beyond its %v deadline", took, deadline)
	}
	t.Logf("Online with the server down: %v after %v", err, took.Round(time.Millisecond))

	s.Start(t)
	took = poll.Eventually(t, 30*time.Second, "Online after the server came back", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		return r.Online(ctx)
	})
	t.Logf("Online succeeded %v after the server came back", took.Round(10*time.Millisecond))
	standin.WaitNacosHost(t, s, service, ip, port, "registered instance listed", 10*time.Second, standin.NacosListed)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	standin.WaitNacosHost(t, s, service, ip, port, "gone after Close", 10*time.Second, standin.NacosAbsent)
}
