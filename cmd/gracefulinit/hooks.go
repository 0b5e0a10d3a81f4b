package main

import (
	"context"
	"log/slog"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/eureka"
	"github.com/gracefulinit/gracefulinit/internal/registry/httphook"
	"github.com/gracefulinit/gracefulinit/internal/registry/nacos"
	"github.com/gracefulinit/gracefulinit/internal/supervisor"
)

// backends maps --registry names to their constructors.
//
// The rule for registry code in this process, PID 1: no third-party
// registry client runs here. A panic in a goroutine a library starts
// cannot be recovered from outside it, and a library's log.Fatalf ends the
// process: either would kill the container's init and leave the instance
// registered. So Nacos register mode runs nacos-sdk-go in the helper
// process gracefulinit-nacos (internal/registry/nacos/helper.go), which
// gracefulinit restarts when it dies; mark mode and Eureka are our own
// net/http code (Eureka borrows hudl/fargo's instance model to encode its
// JSON; none of fargo's client code runs). Our own registry code recovers
// its panics into errors: registry.Set around every registry call, the
// supervisor around every hook call, the helper's manager and pipe reader.
var backends = map[string]func(*config.Config, *slog.Logger) (registry.Registry, error){
	"nacos": func(cfg *config.Config, log *slog.Logger) (registry.Registry, error) {
		return nacos.New(nacosOptions(cfg), log)
	},
	"eureka": func(cfg *config.Config, log *slog.Logger) (registry.Registry, error) {
		return eureka.New(cfg.Eureka, log)
	},
}

// nacosOptions are the Nacos options the configuration resolved, with
// this release's version for the helper's check.
func nacosOptions(cfg *config.Config) nacos.Options {
	o := cfg.Nacos
	o.Version = version
	return o
}

// probers maps --registry names to their backends' Probe, for --check.
var probers = map[string]func(*config.Config, context.Context) []registry.ProbeResult{
	"nacos": func(cfg *config.Config, ctx context.Context) []registry.ProbeResult {
		return nacosOptions(cfg).Probe(ctx)
	},
	"eureka": func(cfg *config.Config, ctx context.Context) []registry.ProbeResult {
		return cfg.Eureka.Probe(ctx)
	},
}

// buildHooks turns the registry settings into the supervisor's hooks.
// Constructors only validate and prepare; nothing touches the network
// before the app is started.
func buildHooks(cfg *config.Config, log *slog.Logger) (supervisor.Hooks, error) {
	set := &registry.Set{Timeout: cfg.RegistryTimeout, NoHold: !cfg.RegistryHold, Log: log}
	for _, name := range cfg.Registries {
		r, err := backends[name](cfg, log)
		if err != nil {
			return nil, err
		}
		set.Registries = append(set.Registries, r)
	}
	// Registries gracefulinit does not speak, as plain HTTP calls in the
	// same slots; each call retried and bounded on its own.
	if h := httphook.New(httphook.Options{Online: cfg.OnlineHTTP, Offline: cfg.OfflineHTTP, Timeout: cfg.RegistryTimeout, Log: log}); h != nil {
		set.Registries = append(set.Registries, h)
	}
	if len(set.Registries) == 0 {
		return supervisor.NoHooks{}, nil
	}
	return set, nil
}
