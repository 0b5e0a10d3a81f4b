// Command rollout reproduces a rolling update under load on one machine and
// counts the requests that fail: a real Nacos/Eureka-protocol server
// (Polaris), N instances of the example Java app each under an init (tini or
// gracefulinit) bound to its own loopback address like pods, a consumer that
// discovers them the way Spring Cloud consumers do (registry push or polling,
// plus a load-balancer cache), and a constant request rate.
//
// Each variant rolls every instance K times on the same load: (a) tini, the
// app deregistering itself on SIGTERM; (b) gracefulinit with a fixed drain
// of the consumer's cache TTL plus propagation (what a preStop sleep does);
// (c) gracefulinit with the traffic-aware drain. Results go to a JSON file,
// a markdown table and a timeline chart per run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Config is one harness run. Every field has a flag.
type Config struct {
	Registries    []string      // nacos, eureka
	Variants      []string      // tini, fixed, quiet, global, gi, gi-look, today
	Instances     int           // pods per service
	Rollouts      int           // full rollouts per variant
	Rate          int           // requests per second
	CacheTTL      time.Duration // consumer load-balancer cache (Spring Cloud LoadBalancer: 35s)
	EurekaRefresh time.Duration // consumer's Eureka registry fetch interval (Eureka client: 30s)
	Propagation   time.Duration // added to the cache TTL for the fixed drain
	Quiet         time.Duration // --drain-quiet of the traffic-aware variant
	StopTimeout   time.Duration // --stop-timeout
	AppStart      time.Duration // the app's start-up delay
	Latency       time.Duration // the app's per-request latency
	ReqTimeout    time.Duration // consumer's request timeout
	MaxDuration   time.Duration // abort the whole run after this
	Fault         string        // none, registry-restart, registry-slow, ignore-term
	SlowDelay     time.Duration // registry-slow: delay the proxy adds to each answer
	Out           string        // output directory
	Init          string        // gracefulinit binary
	Tini          string        // tini binary
	Polaris       string        // polaris-server binary ("" = build/find the cached one)
	Port          int           // the app's port on every pod address
	Verbose       bool
	Warmup        time.Duration // steady load before the first rollout (pods learn their callers meanwhile)
	// Mix: several consumers, each from its own loopback address, instead
	// of the one at Rate (see mix.go).
	Mix       bool
	Consumers []ConsumerSpec
	// Consumer classes (classes.go): Mix with the issue-19 callers, the
	// start side, gracefulinit's /ready as the rollout's readiness probe.
	Classes       bool
	StartSide     bool          // pods register at once, answer 503 until ready, then initialise lazily
	LazyInit      time.Duration // the first request's lazy initialisation
	Work          int           // records each request parses, sorts and maps
	GRPCPort      int           // the app's gRPC port (0: none)
	HealthPort    int           // gracefulinit's --health-addr port on the pod address
	DrainCacheMax time.Duration // --drain-cache-max given to gracefulinit; 0: its default
	Parallel      int           // phases run at once
	Today         string        // gracefulinit binary of "today's rule"; "" builds it from todayCommit
}

// classesPreset is the consumer classes run (issues 19 and 21).
func classesPreset(c Config, t classTimes) Config {
	c.Mix, c.Classes, c.StartSide = true, true, true
	c.Consumers = classConsumers(t)
	c.GRPCPort, c.HealthPort = 9090, 9901
	return c
}

// Presets give flag defaults; explicit flags override them.
var presets = map[string]Config{
	// Every consumer class in one run per registry and variant, the start
	// side of each new pod, production-like rhythms and default flags;
	// today's rule (gracefulinit at todayCommit) beside this build.
	"quick": classesPreset(Config{Registries: []string{"nacos", "eureka"}, Variants: []string{"tini", "today", "gi"},
		Instances: 2, Rollouts: 1, Rate: 1, EurekaRefresh: 5 * time.Second,
		Propagation: 3 * time.Second, Quiet: 2 * time.Second, StopTimeout: 10 * time.Second,
		AppStart: 3 * time.Second, LazyInit: 1500 * time.Millisecond, Work: 1000,
		Latency: 5 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 20 * time.Minute,
		Warmup: 30 * time.Second, Parallel: 3},
		classTimes{busy: 40 * time.Millisecond, cache: 200 * time.Millisecond, cacheTTL: 35 * time.Second,
			rare: 1600 * time.Millisecond, rareTTL: 15 * time.Second, fan: 4 * time.Second, fanTTL: 15 * time.Second,
			seg: 1500 * time.Millisecond, segTTL: 15 * time.Second, pool: 500 * time.Millisecond, poolTTL: 15 * time.Second,
			grpc: 6 * time.Second, scrape: 15 * time.Second, start: 100 * time.Millisecond}),
	// make test: every class once, on both registries, with caches and
	// the scraper scaled down and every phase at once (about a minute).
	"test": classesPreset(Config{Registries: []string{"nacos", "eureka"}, Variants: []string{"tini", "gi"},
		Instances: 2, Rollouts: 1, Rate: 1, EurekaRefresh: time.Second,
		Propagation: 2 * time.Second, Quiet: time.Second, StopTimeout: 5 * time.Second,
		AppStart: 2 * time.Second, LazyInit: 1500 * time.Millisecond, Work: 1000,
		Latency: 5 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 5 * time.Minute,
		Warmup: 14 * time.Second, Parallel: 4, DrainCacheMax: 9 * time.Second},
		classTimes{busy: 50 * time.Millisecond, cache: 200 * time.Millisecond, cacheTTL: 6 * time.Second,
			rare: 1500 * time.Millisecond, rareTTL: 4 * time.Second, fan: 2 * time.Second, fanTTL: 4 * time.Second,
			seg: time.Second, segTTL: 4 * time.Second, pool: 300 * time.Millisecond, poolTTL: 4 * time.Second,
			grpc: 6 * time.Second, scrape: 3 * time.Second, start: 100 * time.Millisecond}),
	// One consumer at a constant rate, tini beside a fixed and a
	// traffic-aware drain, Nacos over HTTP and gRPC and Eureka (the
	// quick preset before the consumer classes; the faults run on it).
	"basic": {Registries: []string{"nacos", nacosGRPC, "eureka"}, Variants: []string{"tini", "fixed", "quiet"},
		Instances: 2, Rollouts: 1, Rate: 100, CacheTTL: 2 * time.Second, EurekaRefresh: time.Second,
		Propagation: 2 * time.Second, Quiet: 700 * time.Millisecond, StopTimeout: 5 * time.Second,
		AppStart: 300 * time.Millisecond, Latency: 5 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 8 * time.Minute},
	// make demo: today's setup next to gracefulinit, on Nacos.
	"demo": {Registries: []string{"nacos"}, Variants: []string{"tini", "quiet"},
		Instances: 2, Rollouts: 1, Rate: 100, CacheTTL: 3 * time.Second, EurekaRefresh: time.Second,
		Propagation: 2 * time.Second, Quiet: time.Second, StopTimeout: 5 * time.Second,
		AppStart: time.Second, Latency: 5 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 8 * time.Minute},
	// The goal: 5 full rollouts of 3 pods at 200 req/s.
	"full": {Registries: []string{"nacos", "eureka"}, Variants: []string{"tini", "fixed", "quiet"},
		Instances: 3, Rollouts: 5, Rate: 200, CacheTTL: 10 * time.Second, EurekaRefresh: 3 * time.Second,
		Propagation: 3 * time.Second, Quiet: time.Second, StopTimeout: 10 * time.Second,
		AppStart: 2 * time.Second, Latency: 10 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 90 * time.Minute},
	// Production-like caches: Spring Cloud LoadBalancer's 35 s TTL, Eureka's 30 s fetch.
	// Several callers in one run (mix.go), with production-like caches:
	// per-caller drain beside a fixed drain for the slowest cache and the
	// one quiet window it replaces.
	"mix": {Registries: []string{"nacos", "eureka"}, Variants: []string{"fixed", "global", "quiet"},
		Instances: 2, Rollouts: 1, Rate: 200, EurekaRefresh: 5 * time.Second,
		Propagation: 3 * time.Second, Quiet: 2 * time.Second, StopTimeout: 10 * time.Second,
		AppStart: 2 * time.Second, Latency: 10 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 60 * time.Minute,
		Warmup: 30 * time.Second, Mix: true, Consumers: mixConsumers(35*time.Second, 15*time.Second, 5*time.Millisecond)},
	// The same callers with short caches: what CI runs.
	"mix-quick": {Registries: []string{"nacos", "eureka"}, Variants: []string{"quiet"},
		Instances: 2, Rollouts: 1, Rate: 100, EurekaRefresh: time.Second,
		Propagation: 2 * time.Second, Quiet: 700 * time.Millisecond, StopTimeout: 5 * time.Second,
		AppStart: 300 * time.Millisecond, Latency: 5 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 12 * time.Minute,
		Warmup: 22 * time.Second, Mix: true, Consumers: mixConsumers(6*time.Second, 4*time.Second, 10*time.Millisecond)},
	"production": {Registries: []string{"nacos", "eureka"}, Variants: []string{"tini", "fixed", "quiet"},
		Instances: 3, Rollouts: 1, Rate: 200, CacheTTL: 35 * time.Second, EurekaRefresh: 30 * time.Second,
		Propagation: 5 * time.Second, Quiet: 2 * time.Second, StopTimeout: 10 * time.Second,
		AppStart: 3 * time.Second, Latency: 10 * time.Millisecond, ReqTimeout: 2 * time.Second, MaxDuration: 90 * time.Minute},
}

func parseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	preset := fs.String("preset", "quick", "quick (every consumer class, both ends of a pod, tini, today's rule and this build; a few minutes), test (the same, scaled down, as make test runs it), basic (one consumer), demo, full (5 rollouts x 3 pods at 200 req/s), production (35 s caches), mix (several callers, production caches) or mix-quick")
	consumers := fs.String("consumers", "", "mix presets: keep only these callers (comma list of names, e.g. push-200rps,cache-20rps)")
	var c Config
	regs := fs.String("registry", "", "registries to test: nacos (the app registers over HTTP v1), nacos-grpc (over gRPC with nacos-sdk-go, no cluster name; with the start side at the weight the app's environment gives, as a Spring Cloud Alibaba app on a 2.x client), eureka (comma list; preset)")
	vars := fs.String("variants", "", "variants: tini, fixed, quiet, global, gi (default flags), gi-look (default flags but --registry-hold-env=false: the app is not told, the hold's look alone), today (default flags, gracefulinit at "+todayCommit+") (comma list; preset)")
	fs.IntVar(&c.Instances, "instances", 0, "pods per service (preset)")
	fs.IntVar(&c.Rollouts, "rollouts", 0, "full rollouts per variant (preset)")
	fs.IntVar(&c.Rate, "rate", 0, "requests per second (preset)")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", 0, "consumer load-balancer cache TTL, 0 = none (preset)")
	fs.DurationVar(&c.EurekaRefresh, "eureka-refresh", 0, "consumer's Eureka fetch interval (preset)")
	fs.DurationVar(&c.Propagation, "propagation", 0, "added to the cache TTL for the fixed drain (preset)")
	fs.DurationVar(&c.Quiet, "drain-quiet", 0, "--drain-quiet of the traffic-aware variant (preset)")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", 0, "--stop-timeout given to gracefulinit (preset)")
	fs.DurationVar(&c.AppStart, "app-start", 0, "the app's start-up delay (preset)")
	fs.DurationVar(&c.Latency, "latency", 0, "the app's per-request latency (preset)")
	fs.DurationVar(&c.ReqTimeout, "timeout", 0, "consumer request timeout (preset)")
	fs.DurationVar(&c.MaxDuration, "max-duration", 0, "abort after this long (preset)")
	fs.StringVar(&c.Fault, "fault", "none", "inject a fault: none, registry-restart, registry-slow, ignore-term")
	fs.DurationVar(&c.SlowDelay, "slow-delay", 2*time.Second, "registry-slow: delay added to each registry answer")
	fs.StringVar(&c.Out, "out", "tools/rollout/out", "output directory")
	fs.StringVar(&c.Init, "gracefulinit", "bin/gracefulinit", "gracefulinit binary")
	fs.StringVar(&c.Tini, "tini", "/usr/bin/tini-static", "tini binary")
	fs.StringVar(&c.Polaris, "polaris", "", "polaris-server binary (default: the cached build, built if missing)")
	fs.IntVar(&c.Port, "port", 8080, "the app's port on every pod address")
	fs.BoolVar(&c.Verbose, "v", false, "print the log of each variant's first pod shutdown")
	fs.DurationVar(&c.Warmup, "warmup", 0, "steady load before the first rollout (preset; 1s unless a mix preset)")
	fs.IntVar(&c.Parallel, "parallel", 0, "phases (registry x variant) run at once (preset; 1 unless a consumer-class preset)")
	fs.StringVar(&c.Today, "today", "", "gracefulinit binary for the today variant (default: built from this repository at "+todayCommit+")")
	fs.DurationVar(&c.DrainCacheMax, "drain-cache-max", 0, "consumer-class presets: --drain-cache-max given to gracefulinit (preset; 0: its default)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	p, ok := presets[*preset]
	if !ok {
		return c, fmt.Errorf("-preset %q: use quick, test, basic, demo, full, production, mix or mix-quick", *preset)
	}
	c.Mix, c.Consumers = p.Mix, p.Consumers
	c.Classes, c.StartSide, c.LazyInit, c.Work, c.GRPCPort, c.HealthPort = p.Classes, p.StartSide, p.LazyInit, p.Work, p.GRPCPort, p.HealthPort
	if p.Warmup == 0 {
		p.Warmup = time.Second
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.Registries, c.Variants = p.Registries, p.Variants
	if set["registry"] {
		c.Registries = splitList(*regs)
	}
	if set["variants"] {
		c.Variants = splitList(*vars)
	}
	ints := []struct {
		name     string
		dst, def *int
	}{{"instances", &c.Instances, &p.Instances}, {"rollouts", &c.Rollouts, &p.Rollouts}, {"rate", &c.Rate, &p.Rate}, {"parallel", &c.Parallel, &p.Parallel}}
	for _, f := range ints {
		if !set[f.name] {
			*f.dst = *f.def
		}
	}
	durs := []struct {
		name     string
		dst, def *time.Duration
	}{
		{"cache-ttl", &c.CacheTTL, &p.CacheTTL}, {"eureka-refresh", &c.EurekaRefresh, &p.EurekaRefresh},
		{"propagation", &c.Propagation, &p.Propagation}, {"drain-quiet", &c.Quiet, &p.Quiet},
		{"stop-timeout", &c.StopTimeout, &p.StopTimeout}, {"app-start", &c.AppStart, &p.AppStart},
		{"latency", &c.Latency, &p.Latency}, {"timeout", &c.ReqTimeout, &p.ReqTimeout}, {"max-duration", &c.MaxDuration, &p.MaxDuration},
		{"warmup", &c.Warmup, &p.Warmup}, {"drain-cache-max", &c.DrainCacheMax, &p.DrainCacheMax},
	}
	for _, f := range durs {
		if !set[f.name] {
			*f.dst = *f.def
		}
	}
	if set["consumers"] {
		if !c.Mix {
			return c, fmt.Errorf("-consumers applies to the mix presets only")
		}
		var keep []ConsumerSpec
		for _, name := range splitList(*consumers) {
			i := slices.IndexFunc(c.Consumers, func(s ConsumerSpec) bool { return s.Name == name })
			if i < 0 {
				return c, fmt.Errorf("-consumers %q: no such caller in -preset %s", name, *preset)
			}
			keep = append(keep, c.Consumers[i])
		}
		c.Consumers = keep
	}
	if c.Mix && !set["cache-ttl"] {
		// The fixed drain and the grace period cover the slowest cache.
		c.CacheTTL = slowestTTL(c.Consumers)
	}
	return c, c.validate()
}

func (c Config) validate() error {
	for _, r := range c.Registries {
		if r != "nacos" && r != nacosGRPC && r != "eureka" {
			return fmt.Errorf("-registry %q: use nacos, nacos-grpc, eureka", r)
		}
	}
	for _, v := range c.Variants {
		if _, ok := variantNames[v]; !ok {
			return fmt.Errorf("-variants %q: use tini, fixed, quiet, global, gi, gi-look or today", v)
		}
	}
	switch c.Fault {
	case "none", "registry-restart", "registry-slow", "ignore-term":
	default:
		return fmt.Errorf("-fault %q: use none, registry-restart, registry-slow, ignore-term", c.Fault)
	}
	if c.Instances < 1 || c.Instances > 200 || c.Rollouts < 1 || c.Rollouts > 15 || c.Rate < 1 {
		return fmt.Errorf("-instances (1-200), -rollouts (1-15) and -rate must be positive")
	}
	if c.EurekaRefresh <= 0 || c.Quiet <= 0 || c.ReqTimeout <= 0 || c.MaxDuration <= 0 {
		return fmt.Errorf("-eureka-refresh, -drain-quiet, -timeout and -max-duration must be positive")
	}
	if c.Parallel < 0 || c.Parallel > 16 || c.DrainCacheMax < 0 {
		return fmt.Errorf("-parallel runs 0 to 16 phases at once; -drain-cache-max must not be negative")
	}
	if c.Parallel > 1 && c.Fault == "registry-restart" {
		return fmt.Errorf("-fault registry-restart stops the registry every phase shares: use -parallel 1")
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollout:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancelRun()
	rep, err := Run(ctx, cfg, os.Stderr)
	if rep != nil {
		if werr := rep.Write(cfg.Out); werr != nil {
			fmt.Fprintln(os.Stderr, "rollout: writing results:", werr)
		}
		if cfg.Verbose {
			printFirstShutdowns(rep, cfg.Out)
		}
		fmt.Println(rep.Markdown())
		fmt.Printf("results, charts and pod logs: %s\n", cfg.Out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollout:", err)
		os.Exit(1)
	}
}

// printFirstShutdowns shows, per phase, what the first old pod logged: the
// init's shutdown sequence next to the app's own lines.
func printFirstShutdowns(rep *Report, out string) {
	for _, p := range rep.Phases {
		b, err := os.ReadFile(filepath.Join(out, "logs", p.Registry+"-"+p.Variant, "g0-s0.log"))
		if err != nil {
			continue
		}
		fmt.Printf("\n==== %s / %s: pod g0-s0 ====\n%s", p.Registry, variantNames[p.Variant], b)
	}
}
