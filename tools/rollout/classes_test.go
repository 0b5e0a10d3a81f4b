package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPodNames(t *testing.T) {
	for _, c := range []struct {
		name      string
		gen, slot int
	}{{"g0-s0", 0, 0}, {"g3-s12", 3, 12}, {"registry", -1, -1}, {"g1-sx", -1, -1}} {
		if g, s := podGen(c.name), podSlot(c.name); g != c.gen || s != c.slot {
			t.Errorf("%s: gen %d slot %d, want %d %d", c.name, g, s, c.gen, c.slot)
		}
	}
}

// TestSide attributes failures: before a pod's SIGTERM they belong to its
// start, after it (and when no pod answered) to its stop.
func TestSide(t *testing.T) {
	pods := map[string]*podTimes{
		"g0-s0": {ip: "127.61.0.1", term: 20 * time.Second, hasTerm: true},
		"g1-s0": {ip: "127.61.1.1"},
	}
	byIP := map[string]string{"127.61.0.1": "g0-s0", "127.61.1.1": "g1-s0"}
	for _, c := range []struct {
		q    Request
		want string
	}{
		{Request{At: 5 * time.Second, Instance: "127.61.0.1:8080"}, "start"},
		{Request{At: 21 * time.Second, Instance: "127.61.0.1:8080"}, "stop"},
		{Request{At: 21 * time.Second, Instance: "127.61.0.1:9090"}, "stop"},
		{Request{At: 22 * time.Second, Instance: "127.61.1.1:8080"}, "start"},
		{Request{At: 22 * time.Second}, "stop"},
	} {
		if got := side(c.q, byIP, pods); got != c.want {
			t.Errorf("%+v: %s, want %s", c.q, got, c.want)
		}
	}
}

// TestStartSide measures a new pod's first 10 s against generation 0's
// warm requests, and leaves gRPC calls and later requests out.
func TestStartSide(t *testing.T) {
	pods := map[string]*podTimes{
		"g0-s0": {ip: "10.0.0.1", term: 35 * time.Second, hasTerm: true},
		"g1-s0": {ip: "10.0.1.1", started: 24 * time.Second},
	}
	var reqs []Request
	add := func(at, lat time.Duration, ip, consumer, outcome string) {
		reqs = append(reqs, Request{At: at, Latency: lat, Instance: ip + ":8080", Consumer: consumer, Outcome: outcome})
	}
	// Generation 0: slow in its first 10 s, 2 ms after, until the new pod
	// starts at 24 s; slow again then.
	for i := range 100 {
		at := time.Duration(i) * 300 * time.Millisecond
		lat := 2 * time.Millisecond
		if at < 10*time.Second || at >= 24*time.Second {
			lat = 50 * time.Millisecond
		}
		add(at, lat, "10.0.0.1", "push", "ok")
	}
	// The new pod: first request at 25 s; 503s, a timeout of the tight
	// consumer, then 4 ms; one more after its window.
	add(25*time.Second, time.Millisecond, "10.0.1.1", "push", "5xx")
	add(25*time.Second+100*time.Millisecond, time.Second, "10.0.1.1", "tight", "timeout")
	for i := range 98 {
		add(26*time.Second+time.Duration(i)*50*time.Millisecond, 4*time.Millisecond, "10.0.1.1", "push", "ok")
	}
	add(26*time.Second, 3*time.Second, "10.0.1.1", "grpc", "timeout")
	add(40*time.Second, time.Second, "10.0.1.1", "push", "timeout")
	got, w50, w99 := startSide(reqs, pods, "tight")
	if w50 != 2*time.Millisecond || w99 != 2*time.Millisecond {
		t.Errorf("warm p50/p99 %v/%v, want 2ms/2ms (gen 0 after its first 10 s, before the new pod started)", w50, w99)
	}
	if len(got) != 1 {
		t.Fatalf("%d new pods, want 1: %+v", len(got), got)
	}
	s := got[0]
	if s.Pod != "g1-s0" || s.Requests != 100 || s.Failed != 2 || s.TimedOut != 1 || s.TightFailed != 1 {
		t.Errorf("new pod %+v: want 100 requests, 2 failed, 1 timed out, 1 of the tight consumer", s)
	}
	if s.P50 != 4*time.Millisecond || s.P99 != time.Second {
		t.Errorf("new pod p50/p99 %v/%v, want 4ms/1s", s.P50, s.P99)
	}
}

// TestPresets: every preset parses and validates; the consumer-class
// presets have every class; explicit flags win.
func TestPresets(t *testing.T) {
	for name := range presets {
		cfg, err := parseFlags([]string{"-preset", name})
		if err != nil {
			t.Errorf("-preset %s: %v", name, err)
			continue
		}
		if !cfg.Classes {
			continue
		}
		kinds := map[string]bool{}
		for _, c := range cfg.Consumers {
			kinds[c.Kind] = true
		}
		for _, k := range []string{"", "fanout", "multiseg", "pooled", "grpc", "scraper", "start"} {
			if !kinds[k] {
				t.Errorf("-preset %s: no %q consumer", name, k)
			}
		}
		if cfg.CacheTTL != slowestTTL(cfg.Consumers) {
			t.Errorf("-preset %s: cache TTL %v, want the slowest consumer's %v", name, cfg.CacheTTL, slowestTTL(cfg.Consumers))
		}
	}
	cfg, err := parseFlags([]string{"-preset", "test", "-parallel", "1", "-drain-cache-max", "0s", "-variants", "today"})
	if err != nil || cfg.Parallel != 1 || cfg.DrainCacheMax != 0 || cfg.Variants[0] != "today" {
		t.Errorf("flags over the preset: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{
		{"-preset", "nope"},
		{"-variants", "sleep"},
		{"-parallel", "17"},
		{"-preset", "basic", "-parallel", "2", "-fault", "registry-restart"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q: no error", strings.Join(bad, " "))
		}
	}
}

func TestPeerEntry(t *testing.T) {
	list := "127.0.100.10 last 1.2s ago gap 3s; 127.0.100.7 last 8s ago gap 5s (let go); 127.0.100.70 last 1s ago gap 1s"
	if got := peerEntry(list, "127.0.100.7"); got != "last 8s ago gap 5s (let go)" {
		t.Errorf("got %q", got)
	}
	if got := peerEntry(list, "127.0.100.1"); got != "" {
		t.Errorf("a caller not listed: got %q", got)
	}
}

// TestHoldTimes reads the app's registration and gracefulinit's hold from
// a pod's log, on the phase clock, and the race window from them.
func TestHoldTimes(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 12, 7, 3, 5, 0, 0, time.UTC)
	log := `# ["gracefulinit"]
2026-12-07T03:05:15.590594383Z javaapp nacos registered DEFAULT_GROUP@@svc 127.61.129.1:8080 namespace=public
time=2026-12-07T03:05:16.106Z level=INFO msg="registry hold: the app registered itself before it was ready; kept out of rotation until it is ready" logger=gracefulinit registry=nacos
`
	if err := os.WriteFile(filepath.Join(dir, "g1-s0.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "g0-s0.log"), []byte("2026-12-07T03:05:01Z javaapp started in 3 ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ph := &phase{cfg: Config{Propagation: 2 * time.Second, EurekaRefresh: time.Second}, registry: "eureka", logDir: dir, start: start,
		podIPs: map[string]string{"g0-s0": "10.0.0.1", "g1-s0": "10.0.1.1"}}
	hs := ph.holdTimes()
	if len(hs) != 1 {
		t.Fatalf("holds %v, want g1-s0 only", hs)
	}
	h := hs["g1-s0"]
	if h.registered != 15590594383*time.Nanosecond || h.hold != 16106*time.Millisecond {
		t.Errorf("registered %v hold %v, want 15.590594383s and 16.106s", h.registered, h.hold)
	}
	if got := ph.raceEnd(h, ConsumerSpec{TTL: 4 * time.Second}); got != 23106*time.Millisecond {
		t.Errorf("race end %v, want hold + 4s cache + 2s propagation + 1s Eureka fetch", got)
	}
	if h.told {
		t.Errorf("a pod whose registration the hold took out is read as told")
	}

	// A told app: the start's line saying so is not the hold; the hold's
	// line says the app registered out of rotation, so there was no race.
	told := `time=2026-12-07T03:05:15.100Z level=INFO msg="registry hold: the app is told through its environment to register itself out of rotation; gracefulinit puts it in once it is ready" logger=gracefulinit set="SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0"
2026-12-07T03:05:15.590594383Z javaapp nacos registered DEFAULT_GROUP@@svc 127.61.129.1:8080 namespace=public weight=0.0 enabled=true
time=2026-12-07T03:05:16.2Z level=INFO msg="registry hold: the app registered itself out of rotation, as its environment told it; kept so until it is ready" logger=gracefulinit registry=nacos
`
	if err := os.WriteFile(filepath.Join(dir, "g1-s0.log"), []byte(told), 0o644); err != nil {
		t.Fatal(err)
	}
	h = ph.holdTimes()["g1-s0"]
	if !h.told || h.hold != 16200*time.Millisecond {
		t.Errorf("told app: %+v, want told and the hold at 16.2s (not the start's line)", h)
	}

	// Eureka on Polaris: the app registered OUT_OF_SERVICE as told, and
	// the hold wrote its override before the server's reads showed it
	// (its line says it took the registration out): still told.
	for _, line := range []string{
		"2026-12-07T03:05:15.5Z javaapp eureka registered SVC/127.61.129.1:svc:8080 status=OUT_OF_SERVICE",
		"2026-12-07T03:05:15.5Z javaapp nacos registered DEFAULT_GROUP@@svc 127.61.129.1:8080 namespace=public weight=0.0 enabled=true",
		"2026-12-07T03:05:15.5Z javaapp nacos registered DEFAULT_GROUP@@svc 127.61.129.1:8080 namespace=public weight=1.0 enabled=false",
	} {
		log := line + "\ntime=2026-12-07T03:05:15.7Z level=INFO msg=\"registry hold: the app registered itself before it was ready; kept out of rotation until it is ready\" logger=gracefulinit registry=eureka\n"
		if err := os.WriteFile(filepath.Join(dir, "g1-s0.log"), []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
		if h := ph.holdTimes()["g1-s0"]; !h.told || h.hold != 15700*time.Millisecond {
			t.Errorf("%s: %+v, want told (the app's own line), held at 15.7s", line, h)
		}
	}
	for _, line := range []string{
		"2026-12-07T03:05:15.5Z javaapp eureka registered SVC/127.61.129.1:svc:8080 status=UP",
		"2026-12-07T03:05:15.5Z javaapp nacos registered DEFAULT_GROUP@@svc 127.61.129.1:8080 namespace=public weight=0.5 enabled=true",
		"2026-12-07T03:05:15.5Z javaapp nacos registered DEFAULT_GROUP@@svc 127.61.129.1:8080 namespace=public weight=10.0 enabled=true",
	} {
		log := line + "\ntime=2026-12-07T03:05:15.7Z level=INFO msg=\"registry hold: the app registered itself before it was ready; kept out of rotation until it is ready\" logger=gracefulinit registry=eureka\n"
		if err := os.WriteFile(filepath.Join(dir, "g1-s0.log"), []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
		if h := ph.holdTimes()["g1-s0"]; h.told {
			t.Errorf("%s: %+v, want not told: in rotation until the hold", line, h)
		}
	}

	// nacos-grpc: the harness registered the app (an event; the JVM's log
	// has no registration line), the hold took it out.
	grpcLog := `time=2026-12-07T03:05:15.100Z level=INFO msg="registry hold: the app is told through its environment to register itself out of rotation; gracefulinit puts it in once it is ready" logger=gracefulinit set="SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0"
time=2026-12-07T03:05:16.5Z level=INFO msg="registry hold: the app registered itself before it was ready; kept out of rotation until it is ready" logger=gracefulinit registry=nacos
`
	if err := os.WriteFile(filepath.Join(dir, "g1-s0.log"), []byte(grpcLog), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, ok := ph.holdTimes()["g1-s0"]; ok {
		t.Errorf("no registration line nor event: %+v, want no hold time", h)
	}
	ph.events = []PodEvent{{At: 15 * time.Second, Pod: "g1-s0", Event: "started"}, {At: 15200 * time.Millisecond, Pod: "g1-s0", Event: registeredEvent}}
	h = ph.holdTimes()["g1-s0"]
	if h.told || h.registered != 15200*time.Millisecond || h.hold != 16500*time.Millisecond {
		t.Errorf("registered by the harness: %+v, want registered at 15.2s, held at 16.5s, not told", h)
	}
	// Registered by the harness at weight 0, as the app's environment said.
	ph.events = append(ph.events, PodEvent{At: 15200 * time.Millisecond, Pod: "g1-s0", Event: registeredOutEvent})
	if h = ph.holdTimes()["g1-s0"]; !h.told {
		t.Errorf("registered out of rotation by the harness: %+v, want told", h)
	}
}

func TestMedianDur(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{{nil, 0}, {[]time.Duration{3}, 3}, {[]time.Duration{4, 2}, 3}, {[]time.Duration{5, 1, 3}, 3}} {
		if got := medianDur(c.in); got != c.want {
			t.Errorf("medianDur(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestAttribute splits failures into stop and start, the registration
// race, and the timeouts of each.
func TestAttribute(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	log := "2026-12-07T03:00:04Z javaapp nacos registered DEFAULT_GROUP@@s 10.0.1.1:8080 namespace=public\n" +
		`time=2026-12-07T03:00:05Z level=INFO msg="registry hold: kept out" logger=gracefulinit` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "g1-s0.log"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	ph := &phase{cfg: Config{Propagation: time.Second, Consumers: []ConsumerSpec{{Name: "c", TTL: time.Second}}}, registry: "nacos", logDir: dir, start: start,
		podIPs: map[string]string{"g0-s0": "10.0.0.1", "g1-s0": "10.0.1.1"},
		events: []PodEvent{{At: 20 * time.Second, Pod: "g0-s0", Event: "sigterm"}}}
	reqs := []Request{
		{Consumer: "c", At: 21 * time.Second, Instance: "10.0.0.1:8080", Outcome: "timeout"},
		{Consumer: "c", At: 22 * time.Second, Instance: "10.0.0.1:8080", Outcome: "refused"},
		{Consumer: "c", At: 6 * time.Second, Instance: "10.0.1.1:8080", Outcome: "5xx"},     // race: before 5 + 1 + 1 s
		{Consumer: "c", At: 8 * time.Second, Instance: "10.0.1.1:8080", Outcome: "timeout"}, // after the race
		{Consumer: "c", At: 9 * time.Second, Instance: "10.0.1.1:8080", Outcome: "ok"},
	}
	rs := []ConsumerResult{{Name: "c"}}
	ph.attribute(rs, reqs)
	want := ConsumerResult{Name: "c", FailedStop: 2, TimeoutsStop: 1, FailedStart: 2, FailedRace: 1, TimeoutsLate: 1}
	if rs[0].FailedStop != want.FailedStop || rs[0].TimeoutsStop != want.TimeoutsStop || rs[0].FailedStart != want.FailedStart ||
		rs[0].FailedRace != want.FailedRace || rs[0].TimeoutsLate != want.TimeoutsLate {
		t.Errorf("got %+v, want %+v", rs[0], want)
	}
}
