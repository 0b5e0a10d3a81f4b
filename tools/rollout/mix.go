package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Mix mode: the callers of a real fleet in one run, each from its own
// loopback source address so that gracefulinit's drain sees distinct
// callers: consumers that discover the pods through the registry, each
// behind its own load-balancer cache, and a prober that calls every pod's
// port directly, as the kubelet does, until the pod is gone.

// ConsumerSpec is one mix-mode caller.
type ConsumerSpec struct {
	Name   string        `json:"name"`
	From   string        `json:"from"`   // source address, 127.0.100.N
	Period time.Duration `json:"period"` // between requests
	TTL    time.Duration `json:"ttl"`    // load-balancer cache; 0: the discovery client's own view (SDK push, Eureka fetch)
	Prober bool          `json:"prober"` // calls every live pod directly, not through the registry
	// Consumer classes (classes.go); the zero values are a steady caller.
	Kind    string        `json:"kind"`    // "" (steady), fanout, multiseg, pooled, grpc, scraper, start
	Burst   int           `json:"burst"`   // fanout: requests back to back each period
	Conns   int           `json:"conns"`   // pooled: connections used in turn
	Body    int           `json:"body"`    // multiseg: request body bytes (and a header of Body/16 bytes)
	Timeout time.Duration `json:"timeout"` // request timeout; 0: -timeout
	Slot    int           `json:"slot"`    // scraper: scrape the pods of this slot only; -1: every pod
}

func (c ConsumerSpec) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"name":%q,"from":%q,"kind":%q,"period_ms":%d,"ttl_ms":%d,"prober":%t,"burst":%d,"conns":%d,"body":%d,"timeout_ms":%d,"slot":%d}`,
		c.Name, c.From, c.Kind, c.Period.Milliseconds(), c.TTL.Milliseconds(), c.Prober, c.Burst, c.Conns, c.Body, c.Timeout.Milliseconds(), c.Slot), nil
}

// direct: the caller calls pods' ports itself (a kubelet prober, a
// scraper), not through the registry.
func (c ConsumerSpec) direct() bool { return c.Prober || c.Kind == "scraper" }

// The mix: 200 req/s on the SDK's push cache, 20 req/s through a
// 35 s cache, a rare caller at 0.5 req/s through a 15 s cache, and a prober
// every second.
func mixConsumers(busyTTL, rareTTL time.Duration, busy time.Duration) []ConsumerSpec {
	return []ConsumerSpec{
		{Name: "push-200rps", From: "127.0.100.1", Period: busy},
		{Name: "cache-20rps", From: "127.0.100.2", Period: 50 * time.Millisecond, TTL: busyTTL},
		{Name: "rare-0.5rps", From: "127.0.100.3", Period: 2 * time.Second, TTL: rareTTL},
		{Name: "prober-1s", From: proberAddr, Period: time.Second, Prober: true},
	}
}

// proberAddr is the prober's source address; gracefulinit pods get it as
// HOST_IP, as the kubelet's node address is in examples/kubernetes.
const proberAddr = "127.0.100.9"

// rareWait is how long a per-caller drain can wait after the slowest
// consumer's last call to a pod: twice its gap to one pod, which
// round-robin over the pods stretches.
func rareWait(cs []ConsumerSpec, instances int) time.Duration {
	var m time.Duration
	for _, c := range cs {
		if !c.direct() {
			m = max(m, c.Period)
		}
	}
	return 2 * m * time.Duration(instances)
}

// slowestTTL is the longest cache among the consumers: what a fixed drain
// must cover.
func slowestTTL(cs []ConsumerSpec) time.Duration {
	var m time.Duration
	for _, c := range cs {
		if !c.direct() {
			m = max(m, c.TTL)
		}
	}
	return m
}

func sourceDialer(from string, timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
}

// caller is one consumer's load: it calls until ctx ends, then reports
// its requests.
type caller interface {
	run(ctx context.Context)
	requests() []Request
}

// startConsumers builds one caller per registry consumer over disc.
func (ph *phase) startConsumers(disc discovery) []caller {
	var out []caller
	for _, c := range ph.cfg.Consumers {
		if c.direct() {
			continue
		}
		timeout := cmp.Or(c.Timeout, ph.cfg.ReqTimeout)
		if c.Kind == "grpc" {
			g := &grpcCaller{spec: c, disc: disc, port: ph.cfg.GRPCPort, timeout: timeout, start: ph.start, closed: map[string][]time.Duration{}}
			ph.grpc = append(ph.grpc, g)
			out = append(out, g)
			continue
		}
		cache := &lbCache{d: disc, ttl: c.TTL}
		client := func() *http.Client {
			tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
				DialContext: sourceDialer(c.From, timeout).DialContext}
			return &http.Client{Transport: tr, Timeout: timeout}
		}
		ld := &load{cache: cache, rate: 1, period: c.Period, name: c.Name, timeout: timeout,
			start: ph.start, client: client(), burst: c.Burst}
		switch c.Kind {
		case "pooled":
			// Separate clients, one kept-alive connection per pod each,
			// used in turn: the calls spread over several connections.
			for range max(2, c.Conns) {
				ld.pool = append(ld.pool, client())
			}
		case "multiseg":
			ld.body = bytes.Repeat([]byte("x"), c.Body)
			ld.header = strings.Repeat("h", c.Body/16)
		}
		out = append(out, ld)
	}
	return out
}

// prober calls every live pod's port every period from its own address.
type prober struct {
	spec   ConsumerSpec
	port   int
	start  time.Time
	client *http.Client

	mu    sync.Mutex
	pods  map[string]*Pod
	calls []ProbeCall
}

// ProbeCall is one probe's record.
type ProbeCall struct {
	At        time.Duration `json:"at_ns"`
	Pod       string        `json:"pod"`
	Outcome   string        `json:"outcome"`
	AfterTerm bool          `json:"after_term"` // the pod had its SIGTERM: its app may be stopping or gone
	NotReady  bool          `json:"not_ready"`  // the pod was still starting
}

// proberPath is what a direct caller asks for: the kubelet its health
// endpoint, a scraper the app's info (a metrics endpoint on the serving
// port, as /actuator/prometheus without a management port).
func proberPath(spec ConsumerSpec) string {
	if spec.Kind == "scraper" {
		return "/actuator/info"
	}
	return "/actuator/health"
}

func newProber(spec ConsumerSpec, port int, timeout time.Duration, start time.Time) *prober {
	// Kubelet probes open a connection each and close it (no keep-alive).
	tr := &http.Transport{DisableKeepAlives: true, DialContext: sourceDialer(spec.From, timeout).DialContext}
	return &prober{spec: spec, port: port, start: start, client: &http.Client{Transport: tr, Timeout: timeout}, pods: map[string]*Pod{}}
}

func (p *prober) add(pod *Pod) {
	if p.spec.Kind == "scraper" && p.spec.Slot >= 0 && podSlot(pod.Name) != p.spec.Slot {
		return
	}
	p.mu.Lock()
	p.pods[pod.Name] = pod
	p.mu.Unlock()
}

func (p *prober) remove(pod *Pod) {
	p.mu.Lock()
	delete(p.pods, pod.Name)
	p.mu.Unlock()
}

func (p *prober) run(ctx context.Context) {
	t := time.NewTicker(p.spec.Period)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		pods := make([]*Pod, 0, len(p.pods))
		for _, pod := range p.pods {
			pods = append(pods, pod)
		}
		p.mu.Unlock()
		for _, pod := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.one(pod)
			}()
		}
	}
}

func (p *prober) one(pod *Pod) {
	at := time.Since(p.start)
	pod.mu.Lock()
	term, notReady := !pod.TermAt.IsZero(), pod.ReadyAt.IsZero()
	pod.mu.Unlock()
	out := "ok"
	resp, err := p.client.Get(fmt.Sprintf("http://%s:%d%s", pod.IP, p.port, proberPath(p.spec)))
	if err != nil {
		out = classify(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			out = "5xx"
		}
	}
	p.mu.Lock()
	p.calls = append(p.calls, ProbeCall{At: at, Pod: pod.Name, Outcome: out, AfterTerm: term, NotReady: notReady})
	p.mu.Unlock()
}

// ConsumerResult is one consumer's requests in a phase.
type ConsumerResult struct {
	Name         string         `json:"name"`
	Requests     int            `json:"requests"`
	Failed       int            `json:"failed"`
	FailureKinds map[string]int `json:"failure_kinds"`
	// Consumer classes: failures at a pod's stop (sent after its
	// SIGTERM, or answered by no pod) and at its start (before).
	FailedStop  int `json:"failed_stop"`
	FailedStart int `json:"failed_start"`
	FailedRace  int `json:"failed_race"` // of FailedStart: sent before gracefulinit's hold could reach the consumer
	// Timeouts among the stop side's failures and the start side's beyond
	// the race: a pod that answers too slowly (a cold JVM, or a loaded
	// machine), where the others are a pod gone or not ready.
	TimeoutsStop int `json:"timeouts_stop"`
	TimeoutsLate int `json:"timeouts_late"`
}

// ProberResult is the prober's calls: failures while its pod was serving
// count; those before the pod was ready, and after its SIGTERM (the app
// stopping under a prober that never stops), are reported apart.
type ProberResult struct {
	Calls             int `json:"calls"`
	FailedServing     int `json:"failed_serving"`
	FailedBeforeReady int `json:"failed_before_ready"`
	FailedAfterTerm   int `json:"failed_after_term"`
	TimeoutsServing   int `json:"timeouts_serving"` // of FailedServing: slow answers, not refusals
}

func (p *prober) result() *ProberResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &ProberResult{Calls: len(p.calls)}
	for _, c := range p.calls {
		switch {
		case c.Outcome == "ok":
		case c.AfterTerm:
			r.FailedAfterTerm++
		case c.NotReady:
			r.FailedBeforeReady++
		default:
			r.FailedServing++
			if c.Outcome == "timeout" {
				r.TimeoutsServing++
			}
		}
	}
	return r
}

func consumerResults(specs []ConsumerSpec, reqs []Request) []ConsumerResult {
	var out []ConsumerResult
	for _, c := range specs {
		if c.direct() {
			continue
		}
		r := ConsumerResult{Name: c.Name, FailureKinds: map[string]int{}}
		for _, q := range reqs {
			if q.Consumer != c.Name {
				continue
			}
			r.Requests++
			if q.Outcome != "ok" {
				r.Failed++
				r.FailureKinds[q.Outcome]++
			}
		}
		out = append(out, r)
	}
	return out
}

var (
	summaryRE  = regexp.MustCompile(`msg="shutdown summary".*`)
	stopSentRE = regexp.MustCompile(`\bstop_sent_at=(\S+)`)
	childExRE  = regexp.MustCompile(`\bchild_exit_at=(\S+)`)
	drainEndRE = regexp.MustCompile(`\bdrain_end=("[^"]*"|\S+)`)
)

// oracles fills each shutdown's oracle: SIGTERM to the last consumer
// request the pod received (requests are stamped when sent; on loopback
// they arrive within a millisecond), plus the app's own stop, read from
// gracefulinit's summary (stop signal to the app's exit). For tini the
// app's stop is SIGTERM to exit.
func (ph *phase) oracles(res *PhaseResult, reqs []Request) {
	term := map[string]time.Duration{}
	ph.mu.Lock()
	events := append([]PodEvent(nil), ph.events...)
	ph.mu.Unlock()
	for _, e := range events {
		if e.Event == "sigterm" {
			term[e.Pod] = e.At
		}
	}
	for i := range res.Shutdowns {
		s := &res.Shutdowns[i]
		ph.mu.Lock()
		ip := ph.podIPs[s.Pod]
		ph.mu.Unlock()
		t, ok := term[s.Pod]
		if !ok {
			continue
		}
		// Any consumer's request to the pod, on any of its ports (HTTP,
		// gRPC); direct callers (prober, scraper) are not consumers.
		last := t
		for _, q := range reqs {
			if q.Instance != "" && hostOf(q.Instance) == ip && q.Outcome == "ok" && q.At > last {
				last, s.LastConsumer = q.At, q.Consumer
			}
		}
		s.LastCall = last - t
		s.AppStop = s.Took
		if b, err := os.ReadFile(filepath.Join(ph.logDir, s.Pod+".log")); err == nil {
			if line := summaryRE.Find(b); line != nil {
				sent, e1 := durAt(stopSentRE, line)
				exit, e2 := durAt(childExRE, line)
				if e1 == nil && e2 == nil {
					s.AppStop = exit - sent
				}
				if m := drainEndRE.FindSubmatch(line); m != nil {
					s.DrainEnd = strings.Trim(string(m[1]), `"`)
				}
			}
		}
		s.Oracle = last - t + s.AppStop
	}
}

func durAt(re *regexp.Regexp, line []byte) (time.Duration, error) {
	m := re.FindSubmatch(line)
	if m == nil {
		return 0, fmt.Errorf("not found")
	}
	return time.ParseDuration(string(m[1]))
}

func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func ratioStr(a, b time.Duration) string {
	if b <= 0 || a <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// mixMarkdown is the mix run's tables: per consumer, and per variant the
// shutdown times beside the oracle and the fixed drain of the same run.
func (rep *Report) mixMarkdown() string {
	var b strings.Builder
	c := rep.Config
	fmt.Fprintf(&b, "%d pods x %d rollouts; callers, each from its own address:", c.Instances, c.Rollouts)
	for _, s := range c.Consumers {
		switch {
		case s.Prober:
			fmt.Fprintf(&b, " %s (%s, every %s to each pod directly; HOST_IP for gracefulinit)", s.Name, s.From, s.Period)
		case s.TTL == 0:
			fmt.Fprintf(&b, " %s (%s, every %s, discovery client's own view);", s.Name, s.From, s.Period)
		default:
			fmt.Fprintf(&b, " %s (%s, every %s, %s cache);", s.Name, s.From, s.Period, s.TTL)
		}
	}
	fmt.Fprintf(&b, " Eureka fetch %s; --drain-quiet %s; app start %s\n\n", c.EurekaRefresh, c.Quiet, c.AppStart)

	b.WriteString("| registry | variant | consumer | requests | failed | failure kinds |\n|---|---|---|---:|---:|---|\n")
	for _, p := range rep.Phases {
		for _, r := range p.Consumers {
			kinds := "-"
			if len(r.FailureKinds) > 0 {
				var ks []string
				for k, v := range r.FailureKinds {
					ks = append(ks, fmt.Sprintf("%s %d", k, v))
				}
				sort.Strings(ks)
				kinds = strings.Join(ks, ", ")
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s |\n", p.Registry, variantNames[p.Variant], r.Name, r.Requests, r.Failed, kinds)
		}
		if p.Prober != nil {
			fmt.Fprintf(&b, "| %s | %s | prober (failed while its pod served) | %d | %d | apart: %d before ready, %d after SIGTERM |\n",
				p.Registry, variantNames[p.Variant], p.Prober.Calls, p.Prober.FailedServing, p.Prober.FailedBeforeReady, p.Prober.FailedAfterTerm)
		}
		if p.Error != "" {
			fmt.Fprintf(&b, "| %s | %s | phase error: %s | | | |\n", p.Registry, variantNames[p.Variant], p.Error)
		}
	}

	b.WriteString("\nPer-pod shutdown (SIGTERM to exit), median over the pods; the oracle is SIGTERM to the last consumer request the pod received plus the app's own stop:\n\n")
	b.WriteString("| registry | variant | shutdown | oracle | / oracle | / fixed drain | / one quiet window | drain ended by |\n|---|---|---:|---:|---:|---:|---:|---|\n")
	byKey := map[string]time.Duration{}
	for _, p := range rep.Phases {
		var took []time.Duration
		for _, s := range p.Shutdowns {
			took = append(took, s.Took)
		}
		byKey[p.Registry+"/"+p.Variant] = medianDur(took)
	}
	for _, p := range rep.Phases {
		var took, or []time.Duration
		ends := map[string]int{}
		for _, s := range p.Shutdowns {
			took = append(took, s.Took)
			or = append(or, s.Oracle)
			if s.DrainEnd != "" {
				ends[s.DrainEnd]++
			}
		}
		var es []string
		for k, v := range ends {
			es = append(es, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(es)
		mt, mo := medianDur(took), medianDur(or)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", p.Registry, variantNames[p.Variant],
			mt.Round(10*time.Millisecond), mo.Round(10*time.Millisecond), ratioStr(mt, mo),
			ratioStr(mt, byKey[p.Registry+"/fixed"]), ratioStr(mt, byKey[p.Registry+"/global"]), strings.Join(es, ", "))
	}
	return b.String()
}
