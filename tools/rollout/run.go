package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// Run executes every registry x variant phase in turn against one Polaris
// server and returns the report. A phase that fails to run is recorded with
// its error; the run goes on with the next.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Report, error) {
	logf := func(format string, a ...any) {
		fmt.Fprintf(logw, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
	root, err := repo.Root()
	if err != nil {
		return nil, err
	}
	for _, p := range []*string{&cfg.Init, &cfg.Out} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	if _, err := os.Stat(cfg.Init); err != nil {
		return nil, fmt.Errorf("gracefulinit binary %s: %v (run make build)", cfg.Init, err)
	}
	if _, err := os.Stat(cfg.Tini); err != nil {
		return nil, fmt.Errorf("tini binary %s: %v (apt-get install tini)", cfg.Tini, err)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	jar, err := javatest.Cached(ctx, filepath.Join(root, "examples", "javaapp"), "")
	if err != nil {
		return nil, fmt.Errorf("building the example app: %w", err)
	}
	binary := cfg.Polaris
	if binary == "" {
		logf("finding or building the Polaris test server (first build takes about 80 s)")
		if binary, err = registrytest.FindPolaris(ctx); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp("", "rollout-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	nacosPort, eurekaPort, err := registrytest.FreePorts()
	if err != nil {
		return nil, err
	}
	srv, err := registrytest.Launch(ctx, binary, filepath.Join(work, "polaris"), nacosPort, eurekaPort)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	logf("polaris up: nacos %s, eureka %s", srv.NacosAddr, srv.EurekaURL)

	bins := map[string]string{}
	for _, v := range cfg.Variants {
		switch v {
		case "tini":
		case "today":
			if cfg.Today == "" {
				if cfg.Today, err = buildToday(ctx, root, logf); err != nil {
					return nil, err
				}
			}
			bins[v] = cfg.Today
		default:
			bins[v] = cfg.Init
		}
	}
	warm, hold := map[string]bool{}, map[string]bool{}
	for _, b := range bins {
		if _, ok := warm[b]; !ok {
			warm[b], hold[b] = hasFlag(b, "--warmup-http"), hasFlag(b, "--registry-hold")
		}
	}

	rep := &Report{Config: cfg, Started: time.Now()}
	var phases []*phase
	for _, reg := range cfg.Registries {
		for _, variant := range cfg.Variants {
			phases = append(phases, &phase{cfg: cfg, registry: reg, variant: variant, srv: srv, jar: jar, gen: int(phaseSeq.Add(1)), logf: logf,
				logDir: filepath.Join(cfg.Out, "logs", reg+"-"+variant), initBin: bins[variant], warmup: warm[bins[variant]]})
		}
	}
	if n := len(phases); n > 0 && phases[n-1].gen > 190 {
		return nil, fmt.Errorf("more than 190 phases in one process: pod addresses 127.60+N.G.S run out")
	}
	// Phases run -parallel at a time; each has its own service and its
	// own addresses, and they share the registry.
	results := make([]PhaseResult, len(phases))
	sem := make(chan struct{}, max(1, cfg.Parallel))
	var wg sync.WaitGroup
	for i, ph := range phases {
		// Taken here, in order: with -parallel 1 the phases run one
		// after the other as listed.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results[i] = PhaseResult{Registry: ph.registry, Variant: ph.variant, Error: ctx.Err().Error()}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := ph.run(ctx)
			res.Warmup = ph.warmup && ph.variant != "tini"
			res.Hold = hold[ph.initBin] && ph.variant != "tini"
			results[i] = res
			logf("%s/%s: %d requests, %d failed %v, rollout %s", ph.registry, ph.variant, res.Requests, res.Failed, res.FailureKinds, res.RolloutTime)
		}()
	}
	wg.Wait()
	rep.Phases = results
	rep.Finished = time.Now()
	return rep, ctx.Err()
}

// phaseSeq numbers the phases of every run in this process: a phase's
// number gives its service name and its pods' addresses (127.60+N.base+G.S),
// so runs side by side (tests) never share a pod address.
var phaseSeq atomic.Int32

// phase is one registry x variant run: N pods, a consumer, K rollouts.
type phase struct {
	cfg      Config
	registry string
	variant  string
	srv      *registrytest.Server
	jar      string
	gen      int
	logDir   string
	logf     func(string, ...any)

	start   time.Time
	mu      sync.Mutex // events and podIPs: generation 0 starts at once
	events  []PodEvent
	probers []*prober         // mix mode: direct callers (a kubelet prober, a scraper)
	grpc    []*grpcCaller     // gRPC consumers
	podIPs  map[string]string // pod name to address
	initBin string            // the gracefulinit binary of this variant
	warmup  bool              // the binary has --warmup-http
}

// kubelet reports whether the phase has a prober given as HOST_IP.
func (ph *phase) kubelet() bool {
	return slices.ContainsFunc(ph.probers, func(p *prober) bool { return p.spec.Prober })
}

func (ph *phase) service() string {
	return fmt.Sprintf("rollout-%s-%s-%d", ph.registry, ph.variant, ph.gen)
}

// ip gives each pod generation and slot its own loopback address.
func (ph *phase) ip(generation, slot int) string {
	return fmt.Sprintf("127.%d.%d.%d", 60+ph.gen, ipBase+generation, slot+1)
}

// ipBase starts this process's generations at a random third octet. Pods
// share the host's network namespace here, so a pod whose address an
// earlier run used would see that run's leftover sockets (TIME-WAIT) in
// the kernel's tables; a Kubernetes pod has its own namespace and never
// does.
var ipBase = 16 * rand.IntN(15)

func (ph *phase) spec(ip string) podSpec {
	s := podSpec{cfg: ph.cfg, variant: ph.variant, registry: ph.registry, service: ph.service(), ip: ip, jar: ph.jar,
		javaArgs: javaFlags, logDir: ph.logDir, ignoreSig: ph.cfg.Fault == "ignore-term", init: ph.initBin, warmup: ph.warmup}
	if ph.kubelet() {
		s.hostIP = proberAddr
	}
	switch ph.registry {
	case "nacos", nacosGRPC:
		s.regAddr, s.initAddr = ph.srv.NacosAddr, ph.srv.NacosAddr
	case "eureka":
		s.regAddr, s.initAddr = ph.srv.EurekaURL, ph.srv.EurekaURL
	}
	return s
}

// javaFlags make a small JVM start fast, as the tests do.
// -XX:-UsePerfData: pods share /tmp, and JVMs that are all pid 10 in their
// own namespaces would fight over the same hsperfdata file.
var javaFlags = []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss512k", "-Xshare:auto", "-XX:-UsePerfData"}

func (ph *phase) event(pod, what string) {
	ph.mu.Lock()
	ph.events = append(ph.events, PodEvent{At: time.Since(ph.start), Pod: pod, Event: what})
	ph.mu.Unlock()
}

func (ph *phase) run(ctx context.Context) (res PhaseResult) {
	res = PhaseResult{Registry: ph.registry, Variant: ph.variant}
	if err := os.MkdirAll(ph.logDir, 0o755); err != nil {
		res.Error = err.Error()
		return res
	}
	ph.start = time.Now()
	ph.podIPs = map[string]string{}
	if ph.cfg.Mix {
		for _, c := range ph.cfg.Consumers {
			if c.direct() {
				ph.probers = append(ph.probers, newProber(c, ph.cfg.Port, cmp.Or(c.Timeout, ph.cfg.ReqTimeout), ph.start))
			}
		}
	}
	for _, pr := range ph.probers {
		pctx, stopProber := context.WithCancel(ctx)
		proberDone := make(chan struct{})
		go func() { pr.run(pctx); close(proberDone) }()
		defer func() { stopProber(); <-proberDone }()
	}
	var proxy *slowProxy
	if ph.cfg.Fault == "registry-slow" && ph.variant != "tini" {
		target := ph.srv.NacosAddr
		if ph.registry == "eureka" {
			target = ph.srv.EurekaURL
		}
		p, err := newSlowProxy(target, ph.cfg.SlowDelay)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		proxy = p
		defer p.Close()
	}
	specFor := func(ip string) podSpec {
		s := ph.spec(ip)
		if proxy != nil {
			s.initAddr = proxy.URL(s.initAddr)
		}
		return s
	}

	pods := make([]*Pod, ph.cfg.Instances)
	var all []*Pod
	defer func() {
		for _, p := range all {
			p.Kill()
		}
	}()
	// Generation 0 comes up, all at once, before the load starts.
	errs := make([]error, len(pods))
	var up sync.WaitGroup
	for slot := range pods {
		up.Add(1)
		go func() {
			defer up.Done()
			pods[slot], errs[slot] = ph.startReady(ctx, specFor(ph.ip(0, slot)), fmt.Sprintf("g0-s%d", slot))
		}()
	}
	up.Wait()
	for slot, p := range pods {
		if p != nil {
			all = append(all, p)
		}
		if errs[slot] != nil && res.Error == "" {
			res.Error = errs[slot].Error()
		}
	}
	if res.Error != "" {
		return res
	}

	var disc discovery
	var err error
	switch ph.registry {
	case "nacos", nacosGRPC:
		disc, err = newNacosDiscovery("127.0.0.1", ph.srv.NacosPort, ph.service(), filepath.Join(ph.logDir, "consumer"))
	case "eureka":
		disc = newEurekaDiscovery(ph.srv.EurekaURL, ph.service(), ph.cfg.EurekaRefresh)
	}
	if err != nil {
		res.Error = "consumer: " + err.Error()
		return res
	}
	defer disc.Close()
	if !poll.Within(ctx, 30*time.Second, 100*time.Millisecond, func() bool { l, _ := disc.Instances(); return len(l) == ph.cfg.Instances }) {
		res.Error = "the consumer never saw every instance"
		return res
	}

	loads := []caller{newLoad(&lbCache{d: disc, ttl: ph.cfg.CacheTTL}, ph.cfg.Rate, ph.cfg.ReqTimeout, ph.start)}
	if ph.cfg.Mix {
		loads = ph.startConsumers(disc)
	}
	lctx, stopLoad := context.WithCancel(ctx)
	var loadsDone sync.WaitGroup
	for _, ld := range loads {
		loadsDone.Add(1)
		go func() { defer loadsDone.Done(); ld.run(lctx) }()
	}
	// Steady state before the first rollout; pods learn their callers.
	time.Sleep(ph.cfg.Warmup)

	rollStart := time.Now()
	var faultDone chan struct{}
	for r := 1; r <= ph.cfg.Rollouts && ctx.Err() == nil; r++ {
		for slot := range pods {
			if ph.cfg.Fault == "registry-restart" && r == 1 && slot == 0 && faultDone == nil {
				faultDone = make(chan struct{})
				go ph.restartRegistry(ctx, faultDone)
			}
			next, err := ph.startReady(ctx, specFor(ph.ip(r, slot)), fmt.Sprintf("g%d-s%d", r, slot))
			if next != nil {
				all = append(all, next)
			}
			if err != nil {
				res.Error = err.Error()
				break
			}
			old := pods[slot]
			ph.event(old.Name, "sigterm")
			old.Terminate()
			if err := old.Wait(ctx); err != nil {
				res.Error = err.Error()
				break
			}
			ph.event(old.Name, "exited")
			for _, pr := range ph.probers {
				pr.remove(old)
			}
			res.Shutdowns = append(res.Shutdowns, Shutdown{Pod: old.Name, Took: old.ShutdownTime(), Exit: old.ExitCode,
				Deadline: ph.spec(old.IP).grace()})
			pods[slot] = next
		}
		if res.Error != "" {
			break
		}
	}
	res.RolloutTime = time.Since(rollStart)
	if faultDone != nil {
		<-faultDone
	}
	// A tail, to see failures that trail the last rollout, and with the
	// start side the last new pod's first startWindow of traffic.
	tail := time.Second
	if ph.cfg.StartSide {
		tail = startWindow + ph.cfg.EurekaRefresh + time.Second
	}
	time.Sleep(tail)
	stopLoad()
	loadsDone.Wait()
	var reqs []Request
	for _, ld := range loads {
		reqs = append(reqs, ld.requests()...)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].At < reqs[j].At })
	res.fill(reqs, ph.events)
	if ph.cfg.Mix {
		res.Consumers = consumerResults(ph.cfg.Consumers, reqs)
		ph.attribute(res.Consumers, reqs)
		for _, pr := range ph.probers {
			if pr.spec.Prober {
				res.Prober = pr.result()
			} else {
				res.Scraper = pr.result()
			}
		}
		ph.oracles(&res, reqs)
		ph.classResults(&res, reqs)
	}
	return res
}

// startReady starts a pod and waits until it serves and is registered, as
// a rollout waits for the new pod's readiness before stopping an old one.
func (ph *phase) startReady(ctx context.Context, spec podSpec, name string) (*Pod, error) {
	p, err := startPod(spec, name)
	if err != nil {
		return nil, err
	}
	ph.event(name, "started")
	ph.mu.Lock()
	ph.podIPs[name] = spec.ip
	ph.mu.Unlock()
	for _, pr := range ph.probers {
		pr.add(p)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if spec.registry == nacosGRPC && ph.cfg.StartSide {
		// The app registers at once, before it is ready, with the
		// weight its environment gives (a Spring Cloud Alibaba app on a
		// 2.x client: told by gracefulinit, it registers at weight 0).
		w, err := toldWeight(wctx, p.cmd.Process.Pid, "java")
		if err != nil {
			return p, fmt.Errorf("%s: %w", name, err)
		}
		logPath := filepath.Join(spec.logDir, name+".log")
		if err := grpcRegistration(ctx, p, logPath, spec.service, grpcDir(spec.logDir, name), ph.srv.NacosPort, ph.cfg.Port, w); err != nil {
			return p, err
		}
		// The JVM logs no registration line here: the hold's lag is
		// measured from this event (holdTimes).
		ph.event(name, registeredEvent)
		if w == 0 {
			ph.event(name, registeredOutEvent)
		}
	}
	// The rollout's readiness probe: gracefulinit's /ready where the pod
	// serves it, else the app's health.
	readyURL := ""
	if spec.healthAddr() != "" {
		readyURL = "http://" + spec.healthAddr() + "/ready"
	}
	if err := p.WaitHealthy(wctx, ph.cfg.Port, readyURL); err != nil {
		return p, err
	}
	if spec.registry == nacosGRPC && !ph.cfg.StartSide {
		logPath := filepath.Join(spec.logDir, name+".log")
		if err := grpcRegistration(ctx, p, logPath, spec.service, grpcDir(spec.logDir, name), ph.srv.NacosPort, ph.cfg.Port, 1); err != nil {
			return p, err
		}
	}
	if !poll.Until(wctx, 100*time.Millisecond, func() bool { return ph.registered(spec) }) {
		return p, fmt.Errorf("%s never showed up in rotation in %s", name, ph.registry)
	}
	ph.event(name, "ready")
	return p, nil
}

// registered asks the registry directly whether the pod is in rotation.
func (ph *phase) registered(s podSpec) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	switch ph.registry {
	case "nacos", nacosGRPC:
		q := url.Values{"serviceName": {"DEFAULT_GROUP@@" + s.service}, "healthyOnly": {"false"}}
		resp, err := c.Get(ph.srv.NacosAddr + "/nacos/v1/ns/instance/list?" + q.Encode())
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Hosts []struct {
				IP      string  `json:"ip"`
				Weight  float64 `json:"weight"`
				Healthy bool    `json:"healthy"`
				Enabled bool    `json:"enabled"`
			} `json:"hosts"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return false
		}
		for _, h := range body.Hosts {
			if h.IP == s.ip && h.Weight > 0 && h.Healthy && h.Enabled {
				return true
			}
		}
	case "eureka":
		req, _ := http.NewRequest(http.MethodGet, ph.srv.EurekaURL+"/apps/"+strings.ToUpper(s.service)+"/"+url.PathEscape(s.instanceID()), nil)
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Instance struct {
				Status string `json:"status"`
			} `json:"instance"`
		}
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&body) == nil && body.Instance.Status == "UP"
	}
	return false
}

// restartDowntime is how long the registry-restart fault keeps it down.
const restartDowntime = 5 * time.Second

// restartRegistry is the registry-restart fault: the server dies shortly
// after the first pod's shutdown begins and is back restartDowntime later.
func (ph *phase) restartRegistry(ctx context.Context, done chan struct{}) {
	defer close(done)
	time.Sleep(ph.cfg.AppStart + 2*time.Second)
	ph.logf("fault: killing the registry")
	ph.event("registry", "down")
	ph.srv.Stop()
	time.Sleep(restartDowntime)
	if err := ph.srv.Relaunch(ctx); err != nil {
		ph.logf("fault: registry restart failed: %v", err)
		return
	}
	ph.event("registry", "up")
	ph.logf("fault: registry back")
}
