package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// Consumer classes (issues 19 and 21): the callers whose rhythm a
// per-caller drain must learn, each from its own source address, and the
// start of each new pod as a consumer with a tight timeout sees it, in one
// run per registry and variant.

// classConsumers is the set of classes, timed by s: the quick preset's
// production-like rhythms (s = 1) or shorter ones for make test.
type classTimes struct {
	busy, cache, cacheTTL, rare, rareTTL, fan, fanTTL, seg, segTTL, pool, poolTTL, grpc, scrape, start time.Duration
}

func classConsumers(t classTimes) []ConsumerSpec {
	return []ConsumerSpec{
		// Today's push: busy, on the discovery client's own view.
		{Name: "push", From: "127.0.100.1", Period: t.busy},
		// Spring Cloud LoadBalancer's 35 s cache.
		{Name: "cache-35s", From: "127.0.100.2", Period: t.cache, TTL: t.cacheTTL},
		// A rare caller behind a 15 s cache.
		{Name: "rare", From: "127.0.100.3", Period: t.rare, TTL: t.rareTTL},
		// A gateway or BFF at low traffic: 5 calls back to back, then quiet.
		{Name: "fan-out", From: "127.0.100.4", Kind: "fanout", Burst: 5, Period: t.fan, TTL: t.fanTTL},
		// Uploads: each request spans several segments (256 KiB body, 16 KiB header).
		{Name: "multi-segment", From: "127.0.100.5", Kind: "multiseg", Body: 256 << 10, Period: t.seg, TTL: t.segTTL},
		// A pool spreading its calls over 4 connections per pod.
		{Name: "pooled", From: "127.0.100.6", Kind: "pooled", Conns: 4, Period: t.pool, TTL: t.poolTTL},
		// gRPC: one HTTP/2 connection per pod, keepalive pings, closed when
		// the instance leaves the resolver.
		{Name: "grpc", From: "127.0.100.7", Kind: "grpc", Period: t.grpc},
		// A gateway with a fixed 1 s timeout on the discovery client's own
		// view: it meets each new pod as soon as the registry lists it.
		{Name: "start-1s-timeout", From: "127.0.100.8", Kind: "start", Period: t.start, Timeout: time.Second},
		// A Prometheus-like scraper on the serving port, not left out:
		// the pods of slot 0 only, so the other slot shows the drain
		// without it.
		{Name: "scraper", From: "127.0.100.10", Kind: "scraper", Period: t.scrape, Slot: 0},
		// The kubelet's probes, left out as HOST_IP (examples/kubernetes).
		{Name: "kubelet", From: proberAddr, Period: time.Second, Prober: true},
	}
}

// todayCommit is "today's rule": main when issues 19 and 21 were filed.
const todayCommit = "286bd70"

// buildToday builds gracefulinit at todayCommit from this repository's
// history, once per machine (cached).
func buildToday(ctx context.Context, root string, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(repo.CacheDir(), "rollout-today-"+todayCommit)
	bin := filepath.Join(dir, "gracefulinit")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	logf("building today's rule: gracefulinit at %s (once, cached in %s)", todayCommit, dir)
	src := filepath.Join(dir, "src")
	if err := os.RemoveAll(src); err != nil {
		return "", err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.CommandContext(ctx, "sh", "-c", "git -C \"$1\" archive \"$2\" | tar -x -C \"$3\"", "sh", root, todayCommit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("today's rule: git archive %s: %v: %s", todayCommit, err, out)
	}
	tmp := bin + ".tmp"
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-E _gracefulinit_rt0", "-o", tmp, "./cmd/gracefulinit")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("today's rule: building gracefulinit at %s: %v: %s", todayCommit, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	_ = os.RemoveAll(src)
	return bin, nil
}

// hasFlag reports whether a gracefulinit binary knows a flag (its --help
// lists it): a build without --warmup-http runs without warm-up, and the
// report says so.
func hasFlag(bin, flag string) bool {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	return bytes.Contains(out, []byte(flag))
}

// podSlot is the slot of a pod named gG-sS, or -1.
func podSlot(name string) int {
	i := strings.LastIndex(name, "-s")
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(name[i+2:])
	if err != nil {
		return -1
	}
	return n
}

func podGen(name string) int {
	var g, s int
	if _, err := fmt.Sscanf(name, "g%d-s%d", &g, &s); err != nil {
		return -1
	}
	return g
}

func hostOf(inst string) string {
	h, _, err := net.SplitHostPort(inst)
	if err != nil {
		return inst
	}
	return h
}

// podTimes is each pod's events on the phase clock.
type podTimes struct {
	ip                         string
	started, ready, term, exit time.Duration
	hasReady, hasTerm, hasExit bool
}

func (ph *phase) podTimes() map[string]*podTimes {
	out := map[string]*podTimes{}
	ph.mu.Lock()
	defer ph.mu.Unlock()
	for name, ip := range ph.podIPs {
		out[name] = &podTimes{ip: ip}
	}
	for _, e := range ph.events {
		p := out[e.Pod]
		if p == nil {
			continue
		}
		switch e.Event {
		case "started":
			p.started = e.At
		case "ready":
			p.ready, p.hasReady = e.At, true
		case "sigterm":
			p.term, p.hasTerm = e.At, true
		case "exited":
			p.exit, p.hasExit = e.At, true
		}
	}
	return out
}

// side says which end of a pod's life a failed request belongs to: its
// start (sent before the pod's SIGTERM: 503 while it starts, timeouts
// while it is cold) or its stop (sent after the SIGTERM, and requests no
// pod answered).
func side(q Request, byIP map[string]string, pods map[string]*podTimes) string {
	name, ok := byIP[hostOf(q.Instance)]
	if !ok {
		return "stop"
	}
	if p := pods[name]; !p.hasTerm || q.At < p.term {
		return "start"
	}
	return "stop"
}

var (
	holdRE       = regexp.MustCompile(`(?m)^time=(\S+) level=INFO msg="registry hold: ([^"]*)"`)
	registeredRE = regexp.MustCompile(`(?m)^(\S+) javaapp (?:nacos|eureka) registered (.*)$`)
	// The app's registration line shows it out of rotation: weight 0 or
	// disabled (Nacos), OUT_OF_SERVICE (Eureka).
	registeredOutRE = regexp.MustCompile(`(?:^| )(?:weight=0(?:\.0+)?|enabled=false|status=OUT_OF_SERVICE)(?: |$)`)
)

// registeredEvent is the pod event of a registration the harness made for
// the app (nacos-grpc), which the app's log does not show;
// registeredOutEvent follows it when that registration was out of
// rotation (weight 0: the app's environment told it so).
const (
	registeredEvent    = "registered"
	registeredOutEvent = "registered out of rotation"
)

// holdTimes reads, from each pod's log, when the app registered itself
// (or the harness's registeredEvent for it, and registeredOutEvent) and when gracefulinit's hold
// took its registration out of rotation, on the phase clock; pods without
// a hold are absent.
func (ph *phase) holdTimes() map[string]holdTime {
	out := map[string]holdTime{}
	ph.mu.Lock()
	var names []string
	for name := range ph.podIPs {
		names = append(names, name)
	}
	byHarness, outByHarness := map[string]time.Duration{}, map[string]bool{}
	for _, e := range ph.events {
		if _, seen := byHarness[e.Pod]; e.Event == registeredEvent && !seen {
			byHarness[e.Pod] = e.At
		}
		if e.Event == registeredOutEvent {
			outByHarness[e.Pod] = true
		}
	}
	ph.mu.Unlock()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(ph.logDir, name+".log"))
		if err != nil {
			continue
		}
		h := registeredRE.FindSubmatch(b)
		// The first line of the hold taking the registration: not the
		// start's line saying what the app is told.
		var m [][]byte
		for _, c := range holdRE.FindAllSubmatch(b, -1) {
			if !bytes.HasPrefix(c[2], []byte("the app is told")) {
				m = c
				break
			}
		}
		at, byH := byHarness[name]
		if (h == nil && !byH) || m == nil {
			continue
		}
		hold, err := time.Parse(time.RFC3339Nano, string(m[1]))
		if err != nil {
			continue
		}
		if h != nil {
			reg, err := time.Parse(time.RFC3339Nano, string(h[1]))
			if err != nil {
				continue
			}
			at = reg.Sub(ph.start)
		}
		// Told: the hold says the app registered itself out of
		// rotation, or the app's own registration line shows it (on
		// Polaris the Eureka hold writes its override before the
		// server's reads show the told registration, and logs a take-out).
		told := bytes.Contains(m[2], []byte("registered itself out of rotation")) ||
			(h != nil && registeredOutRE.Match(h[2])) || (h == nil && outByHarness[name])
		out[name] = holdTime{registered: at, hold: hold.Sub(ph.start), told: told}
	}
	return out
}

type holdTime struct {
	registered, hold time.Duration
	told             bool // the app registered itself out of rotation, as told: no race
}

// raceEnd is when a consumer can last have been handed a pod before its
// hold: the hold, plus the consumer's list cache, plus the registry's own
// propagation (Eureka's fetch interval, Nacos's push).
func (ph *phase) raceEnd(h holdTime, c ConsumerSpec) time.Duration {
	end := h.hold + c.TTL + ph.cfg.Propagation
	if ph.registry == "eureka" {
		end += ph.cfg.EurekaRefresh
	}
	return end
}

// attribute splits each consumer's failures into the stop side and the
// start side, and among the latter those in the registration race: sent
// before the hold could have reached that consumer.
func (ph *phase) attribute(rs []ConsumerResult, reqs []Request) {
	pods := ph.podTimes()
	holds := ph.holdTimes()
	byIP := map[string]string{}
	for name, p := range pods {
		byIP[p.ip] = name
	}
	specs := map[string]ConsumerSpec{}
	for _, c := range ph.cfg.Consumers {
		specs[c.Name] = c
	}
	for i := range rs {
		for _, q := range reqs {
			if q.Consumer != rs[i].Name || q.Outcome == "ok" {
				continue
			}
			timeout := 0
			if q.Outcome == "timeout" {
				timeout = 1
			}
			if side(q, byIP, pods) != "start" {
				rs[i].FailedStop++
				rs[i].TimeoutsStop += timeout
				continue
			}
			rs[i].FailedStart++
			// A pod that registered itself out of rotation had no race.
			if h, ok := holds[byIP[hostOf(q.Instance)]]; ok && !h.told && q.At < ph.raceEnd(h, specs[q.Consumer]) {
				rs[i].FailedRace++
			} else {
				rs[i].TimeoutsLate += timeout
			}
		}
	}
}

// StartPod is one new pod's first traffic (issue 21): every consumer's
// requests in the first startWindow after the first one reached it.
type StartPod struct {
	Pod      string        `json:"pod"`
	Requests int           `json:"requests"`
	Failed   int           `json:"failed"`    // any answer but 200, timeouts included
	TimedOut int           `json:"timed_out"` // of those, timeouts
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	// Its 1 s-timeout consumer alone.
	TightFailed int `json:"tight_failed"`
	// gracefulinit's hold: how long after the app registered itself it
	// took the registration out of rotation (-1: no hold seen).
	HoldLag time.Duration `json:"hold_lag_ns"`
	// Told: the app registered itself out of rotation, as gracefulinit
	// told it through its environment; no consumer could have it before.
	Told bool `json:"told"`
}

// startWindow is how much of a new pod's first traffic counts as its start.
const startWindow = 10 * time.Second

// ScrapeHold is what a scraper that is not left out did to one pod's drain.
type ScrapeHold struct {
	Pod       string        `json:"pod"`
	Drain     string        `json:"drain"`       // the summary's drain length
	DrainEnd  string        `json:"drain_end"`   // why it ended
	LastCall  time.Duration `json:"last_call"`   // SIGTERM to the last consumer request the pod received
	Held      time.Duration `json:"held"`        // drain beyond that last request
	Told      []string      `json:"told"`        // gracefulinit's lines naming the scraper
	SummaryIs string        `json:"drain_peers"` // the summary's drain_peers
}

var (
	grpcConnRE   = regexp.MustCompile(`grpc connection from /([0-9.]+):\d+ closed: calls=(\d+) pings=(\d+)`)
	drainRE      = regexp.MustCompile(`\bdrain=(\S+)`)
	drainPeersRE = regexp.MustCompile(`\bdrain_peers=("(?:[^"\\]|\\.)*"|\S+)`)
)

// latencies of the requests that reached a pod and got an answer or timed
// out (a refused connection has no latency).
func percentiles(qs []Request) (p50, p99 time.Duration) {
	var lats []time.Duration
	for _, q := range qs {
		if q.Outcome == "ok" || q.Outcome == "timeout" || q.Outcome == "5xx" || q.Outcome == "4xx" {
			lats = append(lats, q.Latency)
		}
	}
	if len(lats) == 0 {
		return 0, 0
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	return lats[len(lats)/2], lats[min(len(lats)-1, len(lats)*99/100)]
}

// startSide measures each new pod's first startWindow of traffic, and the
// warm figures: generation 0's requests after its own first startWindow,
// up to the start of the first new pod (whose JVM start and warm-up load
// the machine), or the first SIGTERM. gRPC calls are left out of both
// (another protocol, another latency).
func startSide(reqs []Request, pods map[string]*podTimes, tight string) (out []StartPod, warm50, warm99 time.Duration) {
	byIP := map[string]string{}
	for name, p := range pods {
		byIP[p.ip] = name
	}
	perPod := map[string][]Request{}
	for _, q := range reqs {
		if q.Instance == "" || q.Consumer == "grpc" {
			continue
		}
		if name, ok := byIP[hostOf(q.Instance)]; ok {
			perPod[name] = append(perPod[name], q)
		}
	}
	firstTerm := time.Duration(1<<62 - 1)
	for name, p := range pods {
		if p.hasTerm {
			firstTerm = min(firstTerm, p.term)
		}
		if podGen(name) >= 1 {
			firstTerm = min(firstTerm, p.started)
		}
	}
	var warm []Request
	var names []string
	for name := range perPod {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		qs := perPod[name]
		first := qs[0].At
		if podGen(name) == 0 {
			for _, q := range qs {
				if q.At >= first+startWindow && q.At < firstTerm {
					warm = append(warm, q)
				}
			}
			continue
		}
		s := StartPod{Pod: name}
		var in []Request
		for _, q := range qs {
			if q.At >= first+startWindow {
				break
			}
			in = append(in, q)
			s.Requests++
			if q.Outcome != "ok" {
				s.Failed++
				if q.Consumer == tight {
					s.TightFailed++
				}
			}
			if q.Outcome == "timeout" {
				s.TimedOut++
			}
		}
		s.P50, s.P99 = percentiles(in)
		out = append(out, s)
	}
	warm50, warm99 = percentiles(warm)
	return out, warm50, warm99
}

// classResults fills the start side, the gRPC caller's connection close
// against each pod's end, and what the scraper did to the drains.
func (ph *phase) classResults(res *PhaseResult, reqs []Request) {
	pods := ph.podTimes()
	if ph.cfg.StartSide {
		tight := ""
		for _, c := range ph.cfg.Consumers {
			if c.Kind == "start" {
				tight = c.Name
			}
		}
		res.StartPods, res.WarmP50, res.WarmP99 = startSide(reqs, pods, tight)
		holds := ph.holdTimes()
		for i := range res.StartPods {
			res.StartPods[i].HoldLag = -1
			if h, ok := holds[res.StartPods[i].Pod]; ok {
				res.StartPods[i].HoldLag = h.hold - h.registered
				res.StartPods[i].Told = h.told
			}
		}
	}
	var scraper *ConsumerSpec
	for i, c := range ph.cfg.Consumers {
		if c.Kind == "scraper" {
			scraper = &ph.cfg.Consumers[i]
		}
	}
	for i := range res.Shutdowns {
		s := &res.Shutdowns[i]
		p := pods[s.Pod]
		if p == nil || !p.hasTerm || !p.hasExit {
			continue
		}
		for _, g := range ph.grpc {
			for _, c := range g.closes(p.ip) {
				if c >= p.term {
					s.GRPCClose = c - p.term
					s.GRPCCloseSeen = true
					break
				}
			}
		}
		b, err := os.ReadFile(filepath.Join(ph.logDir, s.Pod+".log"))
		if err != nil {
			continue
		}
		for _, m := range grpcConnRE.FindAllSubmatch(b, -1) {
			n, _ := strconv.Atoi(string(m[3]))
			s.GRPCPings += n
		}
		if line := summaryRE.Find(b); line != nil {
			if m := drainRE.FindSubmatch(line); m != nil {
				s.Drain = string(m[1])
			}
			if m := drainPeersRE.FindSubmatch(line); m != nil {
				s.DrainPeers = strings.Trim(string(m[1]), `"`)
			}
		}
		for _, c := range ph.cfg.Consumers {
			if c.Kind == "grpc" {
				s.GRPCPeer = peerEntry(s.DrainPeers, c.From)
			}
		}
		if scraper == nil || ph.variant == "tini" || (scraper.Slot >= 0 && podSlot(s.Pod) != scraper.Slot) {
			continue
		}
		s.Scraped = true
		h := ScrapeHold{Pod: s.Pod, Drain: s.Drain, DrainEnd: s.DrainEnd, SummaryIs: s.DrainPeers, LastCall: s.LastCall}
		if d, err := time.ParseDuration(s.Drain); err == nil {
			h.Held = d - s.LastCall
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(line, []byte(scraper.From)) && !bytes.Contains(line, []byte("shutdown summary")) {
				h.Told = append(h.Told, string(line))
			}
		}
		res.Scrapes = append(res.Scrapes, h)
	}
}

func kindsStr(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var ks []string
	for k, v := range m {
		ks = append(ks, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func ms(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// stopMedians is a phase's median shutdown and oracle over the pods the
// scraper did not call (those it did are in the scraper table).
func stopMedians(p PhaseResult) (took, oracle time.Duration, n int) {
	var ts, os []time.Duration
	for _, s := range p.Shutdowns {
		if !s.Scraped {
			ts = append(ts, s.Took)
			os = append(os, s.Oracle)
		}
	}
	return medianDur(ts), medianDur(os), len(ts)
}

// classesMarkdown is the consumer classes run: per class failures, per pod
// shutdown against the oracle and today's rule, the scraper, and the
// start side of every new pod.
func (rep *Report) classesMarkdown() string {
	var b strings.Builder
	c := rep.Config
	fmt.Fprintf(&b, "%d pods x %d rollouts per registry and variant, %d phases at once; each caller from its own address:\n\n", c.Instances, c.Rollouts, max(1, c.Parallel))
	for _, s := range c.Consumers {
		timeout := s.Timeout
		if timeout == 0 {
			timeout = c.ReqTimeout
		}
		view := "the discovery client's own view"
		if s.TTL > 0 {
			view = s.TTL.String() + " cache"
		}
		if s.Prober {
			fmt.Fprintf(&b, "- %s (%s): GET /actuator/health every %s on every pod, left out as HOST_IP\n", s.Name, s.From, s.Period)
			continue
		}
		switch s.Kind {
		case "scraper":
			fmt.Fprintf(&b, "- %s (%s): GET every %s on the app port of the slot-%d pods, not left out\n", s.Name, s.From, s.Period, s.Slot)
		case "fanout":
			fmt.Fprintf(&b, "- %s (%s): %d requests back to back every %s, %s\n", s.Name, s.From, s.Burst, s.Period, view)
		case "multiseg":
			fmt.Fprintf(&b, "- %s (%s): a %d KiB POST with a %d KiB header every %s, %s\n", s.Name, s.From, s.Body>>10, s.Body>>14, s.Period, view)
		case "pooled":
			fmt.Fprintf(&b, "- %s (%s): every %s over %d pooled connections per pod in turn, %s\n", s.Name, s.From, s.Period, s.Conns, view)
		case "grpc":
			fmt.Fprintf(&b, "- %s (%s): a unary gRPC call every %s on port %d, grpc-go round robin, keepalive %s, resolver fed from the discovery client's view\n", s.Name, s.From, s.Period, c.GRPCPort, grpcKeepalive)
		default:
			fmt.Fprintf(&b, "- %s (%s): every %s, %s, %s timeout\n", s.Name, s.From, s.Period, view, timeout)
		}
	}
	fmt.Fprintf(&b, "\nThe app registers at once, answers 503 for %s, then its first request takes a %s lazy initialisation and each request sorts %d records (cold JIT). Eureka fetch %s. ", c.AppStart, c.LazyInit, c.Work, c.EurekaRefresh)
	b.WriteString("gracefulinit runs with default flags plus `--drain-ip` (pods share a port on one machine), `--ready-http`, `--health-addr` (its /ready is the rollout's readiness probe) and `--warmup-http` where the binary has it")
	if c.DrainCacheMax > 0 {
		fmt.Fprintf(&b, "; `--drain-cache-max %s` (scaled with the caches)", c.DrainCacheMax)
	}
	b.WriteString(".\n\n")
	for _, p := range rep.Phases {
		if p.Variant != "tini" && !p.Warmup {
			fmt.Fprintf(&b, "Note: %s/%s ran without `--warmup-http`: the binary does not have it.\n\n", p.Registry, p.Variant)
		}
		if p.Variant != "tini" && !p.Hold {
			fmt.Fprintf(&b, "Note: %s/%s has no start hold (no `--registry-hold`): the app's early registration is in rotation before it is ready.\n\n", p.Registry, p.Variant)
		}
	}

	b.WriteString("### Summary\n\n")
	b.WriteString("Failed requests over every consumer class; shutdown of the pod the scraper did not call (median) against the oracle and today's rule; the scraper's pod's drain; the worst new pod's first 10 s p99 against the warm p99.\n\n")
	b.WriteString("| registry | variant | failed at stop | failed at start (in the registration race) | shutdown | / oracle | / today's rule | scraper's pod: drain, ended by | new pods: first-10 s p99 / warm p99 |\n|---|---|---:|---:|---:|---:|---:|---|---:|\n")
	todayMed := map[string]time.Duration{}
	for _, p := range rep.Phases {
		if p.Variant == "today" {
			todayMed[p.Registry], _, _ = stopMedians(p)
		}
	}
	for _, p := range rep.Phases {
		stop, start, race := 0, 0, 0
		for _, r := range p.Consumers {
			stop, start, race = stop+r.FailedStop, start+r.FailedStart, race+r.FailedRace
		}
		t, o, _ := stopMedians(p)
		scr := "-"
		for _, h := range p.Scrapes {
			scr = cmpStr(h.Drain) + ", " + cmpStr(h.DrainEnd)
		}
		var worst time.Duration
		for _, sp := range p.StartPods {
			worst = max(worst, sp.P99)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d (%d) | %s | %s | %s | %s | %s |\n", p.Registry, variantNames[p.Variant], stop, start, race,
			ms(t), ratioStr(t, o), ratioStr(t, todayMed[p.Registry]), scr, ratioStr(worst, p.WarmP99))
	}

	b.WriteString("\n### Failed requests per consumer class\n\n")
	b.WriteString("Failed at start: sent to a pod before its SIGTERM (503 while it starts, timeouts while it is cold); of which in the registration race: sent before gracefulinit's hold could have reached that consumer (the hold, plus the consumer's cache, plus the registry's propagation).\n\n")
	b.WriteString("| registry | variant | consumer | requests | failed at stop | failed at start | of which in the registration race | failure kinds |\n|---|---|---|---:|---:|---:|---:|---|\n")
	for _, p := range rep.Phases {
		if p.Error != "" {
			fmt.Fprintf(&b, "| %s | %s | phase error: %s | | | | | |\n", p.Registry, variantNames[p.Variant], p.Error)
		}
		for _, r := range p.Consumers {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %s |\n", p.Registry, variantNames[p.Variant], r.Name, r.Requests, r.FailedStop, r.FailedStart, r.FailedRace, kindsStr(r.FailureKinds))
		}
		if p.Prober != nil {
			fmt.Fprintf(&b, "| %s | %s | kubelet prober (direct; failed while its pod served) | %d | %d | | | apart: %d before ready, %d after SIGTERM |\n",
				p.Registry, variantNames[p.Variant], p.Prober.Calls, p.Prober.FailedServing, p.Prober.FailedBeforeReady, p.Prober.FailedAfterTerm)
		}
		if p.Scraper != nil {
			fmt.Fprintf(&b, "| %s | %s | scraper (direct; failed while its pod served) | %d | %d | | | apart: %d before ready, %d after SIGTERM |\n",
				p.Registry, variantNames[p.Variant], p.Scraper.Calls, p.Scraper.FailedServing, p.Scraper.FailedBeforeReady, p.Scraper.FailedAfterTerm)
		}
	}

	b.WriteString("\n### Shutdown per pod\n\nSIGTERM to the pod's exit; the oracle is SIGTERM to the last consumer request the pod received plus the app's own stop, and the last consumer is whose request that was (a class can fail only where the drain ends before its own last request, so the class that called last decides). gRPC close: SIGTERM to the gRPC caller's connection close, and the pod's exit after it.\n\n")
	b.WriteString("| registry | variant | pod | shutdown | oracle | / oracle | last consumer | drain | ended by | scraped | gRPC close | exit after close | PINGs the app answered | gRPC caller in the summary's drain_peers |\n|---|---|---|---:|---:|---:|---|---:|---|---|---:|---:|---:|---|\n")
	for _, p := range rep.Phases {
		for _, s := range p.Shutdowns {
			gc, after := "-", "-"
			if s.GRPCCloseSeen {
				gc, after = ms(s.GRPCClose), ms(s.Took-s.GRPCClose)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %t | %s | %s | %d | %s |\n", p.Registry, variantNames[p.Variant], s.Pod,
				ms(s.Took), ms(s.Oracle), ratioStr(s.Took, s.Oracle), cmpStr(s.LastConsumer), cmpStr(s.Drain), cmpStr(s.DrainEnd), s.Scraped, gc, after, s.GRPCPings, cmpStr(s.GRPCPeer))
		}
	}

	b.WriteString("\nMedian over the pods the scraper did not call, against today's rule in the same run:\n\n")
	b.WriteString("| registry | variant | failed (all consumers) | pods | shutdown | oracle | / oracle | / today's rule |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	today := map[string]time.Duration{}
	for _, p := range rep.Phases {
		if p.Variant == "today" {
			today[p.Registry], _, _ = stopMedians(p)
		}
	}
	for _, p := range rep.Phases {
		t, o, n := stopMedians(p)
		failed := 0
		for _, r := range p.Consumers {
			failed += r.Failed
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %s |\n", p.Registry, variantNames[p.Variant], failed, n, ms(t), ms(o), ratioStr(t, o), ratioStr(t, today[p.Registry]))
	}

	b.WriteString("\n### The scraper\n\n")
	b.WriteString("| registry | variant | pod | drain | ended by | last consumer request after SIGTERM | drain held beyond it | summary's drain_peers | gracefulinit's lines naming the scraper |\n|---|---|---|---:|---|---:|---:|---|---|\n")
	for _, p := range rep.Phases {
		for _, h := range p.Scrapes {
			told := "none"
			if len(h.Told) > 0 {
				told = strings.ReplaceAll(strings.Join(h.Told, " <br> "), "|", `\|`)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p.Registry, variantNames[p.Variant], h.Pod, cmpStr(h.Drain), cmpStr(h.DrainEnd),
				ms(h.LastCall), ms(h.Held), strings.ReplaceAll(cmpStr(h.SummaryIs), "|", `\|`), told)
		}
	}

	fmt.Fprintf(&b, "\n### Start side: each new pod's first %s of traffic\n\n", startWindow)
	b.WriteString("Every consumer's requests to the pod from the first one that reached it (gRPC calls apart); warm: generation 0's requests after its own first 10 s, before the first new pod started.\n\n")
	b.WriteString("| registry | variant | pod | requests | failed or timed out | of which timed out | 1 s-timeout consumer failed | p50 | p99 | warm p50 | warm p99 | p99 / warm p99 | hold after the app registered |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range rep.Phases {
		for _, s := range p.StartPods {
			lag := "-"
			switch {
			case s.Told:
				lag = "none: registered out of rotation"
			case s.HoldLag >= 0:
				lag = ms(s.HoldLag)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", p.Registry, variantNames[p.Variant], s.Pod, s.Requests, s.Failed, s.TimedOut, s.TightFailed,
				s.P50.Round(100*time.Microsecond), s.P99.Round(100*time.Microsecond), p.WarmP50.Round(100*time.Microsecond), p.WarmP99.Round(100*time.Microsecond), ratioStr(s.P99, p.WarmP99), lag)
		}
	}
	return b.String()
}

// peerEntry is the part of a drain_peers list about one caller, or "".
func peerEntry(list, addr string) string {
	for _, e := range strings.Split(list, "; ") {
		if strings.HasPrefix(e, addr+" ") {
			return strings.TrimPrefix(e, addr+" ")
		}
	}
	return ""
}

func cmpStr(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
