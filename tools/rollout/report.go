package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// Report is a whole harness run.
type Report struct {
	Config   Config        `json:"config"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Phases   []PhaseResult `json:"phases"`
}

// PodEvent marks a pod's lifecycle on the phase's clock.
type PodEvent struct {
	At    time.Duration `json:"at_ms"`
	Pod   string        `json:"pod"`
	Event string        `json:"event"` // started, ready, sigterm, exited; registry down/up
}

// Shutdown is one old pod's SIGTERM-to-exit.
type Shutdown struct {
	Pod      string        `json:"pod"`
	Took     time.Duration `json:"took_ms"`
	Exit     int           `json:"exit_code"`
	Deadline time.Duration `json:"deadline_ms"`
	// Mix mode: the oracle (SIGTERM to the last consumer request that
	// reached the pod, plus the app's own stop), the app's stop, and why
	// gracefulinit's drain ended.
	Oracle   time.Duration `json:"oracle_ms,omitempty"`
	AppStop  time.Duration `json:"app_stop_ms,omitempty"`
	DrainEnd string        `json:"drain_end,omitempty"`
	// Consumer classes: SIGTERM to the last consumer request the pod
	// received; the summary's drain and drain_peers; whether the scraper
	// called this pod; SIGTERM to the gRPC caller's connection close.
	LastCall      time.Duration `json:"last_call_ms,omitempty"`
	LastConsumer  string        `json:"last_consumer,omitempty"` // whose request that was
	Drain         string        `json:"drain,omitempty"`
	DrainPeers    string        `json:"drain_peers,omitempty"`
	Scraped       bool          `json:"scraped,omitempty"`
	GRPCClose     time.Duration `json:"grpc_close_ms,omitempty"`
	GRPCCloseSeen bool          `json:"grpc_close_seen,omitempty"`
	GRPCPings     int           `json:"grpc_pings,omitempty"` // PING frames (keepalive, BDP) the app answered on its gRPC connections
	GRPCPeer      string        `json:"grpc_peer,omitempty"`  // the gRPC caller's entry in drain_peers ("" if not among the slowest)
}

// PhaseResult is one registry x variant.
type PhaseResult struct {
	Registry     string           `json:"registry"`
	Variant      string           `json:"variant"`
	Error        string           `json:"error,omitempty"`
	Requests     int              `json:"requests"`
	Failed       int              `json:"failed"`
	FailureKinds map[string]int   `json:"failure_kinds"`
	P50          time.Duration    `json:"p50_ns"`
	P99          time.Duration    `json:"p99_ns"`
	Shutdowns    []Shutdown       `json:"shutdowns"`
	RolloutTime  time.Duration    `json:"rollout_ns"`
	Events       []PodEvent       `json:"events"`
	Consumers    []ConsumerResult `json:"consumers,omitempty"` // mix mode
	Prober       *ProberResult    `json:"prober,omitempty"`    // mix mode
	Scraper      *ProberResult    `json:"scraper,omitempty"`   // consumer classes
	Scrapes      []ScrapeHold     `json:"scrapes,omitempty"`   // consumer classes: what the scraper did to each drain
	Warmup       bool             `json:"warmup"`              // gracefulinit ran with --warmup-http
	Hold         bool             `json:"hold"`                // gracefulinit has the start hold (--registry-hold, on by default)
	StartPods    []StartPod       `json:"start_pods,omitempty"`
	WarmP50      time.Duration    `json:"warm_p50_ns,omitempty"`
	WarmP99      time.Duration    `json:"warm_p99_ns,omitempty"`
	requestLog   []Request
}

// MarshalJSON writes durations as milliseconds (microseconds for latencies).
func (d PodEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"at_ms": d.At.Milliseconds(), "pod": d.Pod, "event": d.Event})
}

func (s Shutdown) MarshalJSON() ([]byte, error) {
	m := map[string]any{"pod": s.Pod, "took_ms": s.Took.Milliseconds(), "exit_code": s.Exit, "deadline_ms": s.Deadline.Milliseconds(),
		"oracle_ms": s.Oracle.Milliseconds(), "app_stop_ms": s.AppStop.Milliseconds(), "drain_end": s.DrainEnd,
		"last_call_ms": s.LastCall.Milliseconds(), "drain": s.Drain, "drain_peers": s.DrainPeers, "scraped": s.Scraped, "grpc_pings": s.GRPCPings, "grpc_peer": s.GRPCPeer, "last_consumer": s.LastConsumer}
	if s.GRPCCloseSeen {
		m["grpc_close_ms"] = s.GRPCClose.Milliseconds()
	}
	return json.Marshal(m)
}

func (r *PhaseResult) fill(reqs []Request, events []PodEvent) {
	r.Requests = len(reqs)
	r.Events = events
	r.requestLog = reqs
	r.FailureKinds = map[string]int{}
	var lats []time.Duration
	for _, q := range reqs {
		if q.Outcome != "ok" {
			r.Failed++
			r.FailureKinds[q.Outcome]++
			continue
		}
		lats = append(lats, q.Latency)
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if n := len(lats); n > 0 {
		r.P50 = lats[n/2]
		r.P99 = lats[min(n-1, n*99/100)]
	}
}

func (r PhaseResult) shutdownStats() (median, max time.Duration, late int) {
	var ds []time.Duration
	for _, s := range r.Shutdowns {
		ds = append(ds, s.Took)
		if s.Took > s.Deadline {
			late++
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[len(ds)-1], late
}

var variantNames = map[string]string{
	"tini":    "(a) tini, app deregisters itself",
	"fixed":   "(b) gracefulinit, fixed drain",
	"quiet":   "(c) gracefulinit, traffic-aware drain",
	"global":  "(d) gracefulinit, one quiet window for all callers (before per-caller drains)",
	"gi":      "gracefulinit, default flags",
	"gi-look": "gracefulinit, app not told (--registry-hold-env=false): the hold's look alone",
	"today":   "today's rule (gracefulinit at " + todayCommit + ", same flags)",
}

// Markdown is the results table.
func (rep *Report) Markdown() string {
	if rep.Config.Classes {
		return rep.classesMarkdown()
	}
	if rep.Config.Mix {
		return rep.mixMarkdown()
	}
	var b strings.Builder
	c := rep.Config
	fmt.Fprintf(&b, "%d pods x %d rollouts at %d req/s; consumer cache TTL %s, Eureka fetch %s; app start %s, latency %s; fault: %s\n\n",
		c.Instances, c.Rollouts, c.Rate, c.CacheTTL, c.EurekaRefresh, c.AppStart, c.Latency, c.Fault)
	b.WriteString("| registry | variant | requests | failed | failure kinds | p50 | p99 | shutdown median / max | rollout time |\n")
	b.WriteString("|---|---|---:|---:|---|---:|---:|---:|---:|\n")
	for _, p := range rep.Phases {
		med, max, late := p.shutdownStats()
		kinds := "-"
		if len(p.FailureKinds) > 0 {
			var ks []string
			for k, v := range p.FailureKinds {
				ks = append(ks, fmt.Sprintf("%s %d", k, v))
			}
			sort.Strings(ks)
			kinds = strings.Join(ks, ", ")
		}
		if p.Error != "" {
			kinds += " (phase error: " + p.Error + ")"
		}
		if late > 0 {
			kinds += fmt.Sprintf(" (%d shutdowns past the deadline)", late)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %s / %s | %s |\n", p.Registry, variantNames[p.Variant], p.Requests, p.Failed, kinds,
			p.P50.Round(100*time.Microsecond), p.P99.Round(100*time.Microsecond), med.Round(10*time.Millisecond), max.Round(10*time.Millisecond), p.RolloutTime.Round(100*time.Millisecond))
	}
	return b.String()
}

// Write stores results.json, results.md and one timeline chart per phase.
func (rep *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(rep.Markdown()), 0o644); err != nil {
		return err
	}
	for _, p := range rep.Phases {
		// Every request, one JSON object a line, with the pods' events
		// in results.json: what the tables are computed from.
		var reqs bytes.Buffer
		enc := json.NewEncoder(&reqs)
		for _, q := range p.requestLog {
			if err := enc.Encode(q); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("requests-%s-%s.jsonl", p.Registry, p.Variant)), reqs.Bytes(), 0o644); err != nil {
			return err
		}
		png, err := p.chart()
		if err != nil {
			return fmt.Errorf("chart %s/%s: %w", p.Registry, p.Variant, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("timeline-%s-%s.png", p.Registry, p.Variant)), png, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// chart draws requests/s and failures/s per second, with the number of
// pods up and draining on the second axis.
func (p PhaseResult) chart() ([]byte, error) {
	var end time.Duration
	for _, q := range p.requestLog {
		end = max(end, q.At)
	}
	for _, e := range p.Events {
		end = max(end, e.At)
	}
	secs := int(end/time.Second) + 2
	ok, failed := make([]float64, secs), make([]float64, secs)
	for _, q := range p.requestLog {
		i := int(q.At / time.Second)
		if q.Outcome == "ok" {
			ok[i]++
		} else {
			failed[i]++
		}
	}
	up, draining := make([]float64, secs), make([]float64, secs)
	state := map[string]string{}
	ev := append([]PodEvent(nil), p.Events...)
	sort.Slice(ev, func(i, j int) bool { return ev[i].At < ev[j].At })
	k := 0
	for s := 0; s < secs; s++ {
		for k < len(ev) && ev[k].At < time.Duration(s+1)*time.Second {
			switch ev[k].Event {
			case "ready":
				state[ev[k].Pod] = "up"
			case "sigterm":
				state[ev[k].Pod] = "draining"
			case "exited":
				delete(state, ev[k].Pod)
			}
			k++
		}
		for _, st := range state {
			if st == "up" {
				up[s]++
			} else {
				draining[s]++
			}
		}
	}
	xs := make([]float64, secs)
	for i := range xs {
		xs[i] = float64(i)
	}
	g := chart.Chart{
		Title:      fmt.Sprintf("%s: %s (%d failed of %d)", p.Registry, variantNames[p.Variant], p.Failed, p.Requests),
		Width:      1200,
		Height:     500,
		Background: chart.Style{Padding: chart.Box{Top: 115, Left: 20, Right: 20, Bottom: 60}}, // room for the title above the legend
		XAxis:      chart.XAxis{Name: "seconds"},
		YAxis:      chart.YAxis{Name: "requests/s"},
		YAxisSecondary: chart.YAxis{Name: "pods",
			Range: &chart.ContinuousRange{Min: 0, Max: float64(max(4, int(maxOf(up)+maxOf(draining))+1))}},
		Series: []chart.Series{
			chart.ContinuousSeries{Name: "ok/s", XValues: xs, YValues: ok, Style: chart.Style{StrokeColor: drawing.ColorFromHex("2e7d32"), StrokeWidth: 2}},
			chart.ContinuousSeries{Name: "failed/s", XValues: xs, YValues: failed, Style: chart.Style{StrokeColor: drawing.ColorRed, StrokeWidth: 2}},
			chart.ContinuousSeries{Name: "pods up", YAxis: chart.YAxisSecondary, XValues: xs, YValues: up,
				Style: chart.Style{StrokeColor: drawing.ColorFromHex("1565c0"), FillColor: drawing.ColorFromHex("1565c0").WithAlpha(40)}},
			chart.ContinuousSeries{Name: "pods draining", YAxis: chart.YAxisSecondary, XValues: xs, YValues: draining,
				Style: chart.Style{StrokeColor: drawing.ColorFromHex("ef6c00"), FillColor: drawing.ColorFromHex("ef6c00").WithAlpha(60)}},
		},
	}
	g.Elements = []chart.Renderable{chart.LegendThin(&g)}
	var buf bytes.Buffer
	if err := g.Render(chart.PNG, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
