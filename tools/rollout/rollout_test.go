package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestConsumerClasses runs the test preset end to end, as make test does:
// real Polaris, real JVMs under tini and gracefulinit as PID 1 of their own
// PID namespaces, every consumer class of issue 19 (each from its own
// address) and the start side of issue 21, Nacos and Eureka, every phase at
// once. It asserts the issues' promises: zero failed requests for every
// class with gracefulinit, every drain ending by itself inside its
// deadline and never before the last consumer request reached the pod,
// and failures with tini, without which the harness would show nothing.
func TestConsumerClasses(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare is needed (util-linux)")
	}
	cfg, rep := runPreset(t, "test")
	if err := rep.Write(cfg.Out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Markdown())
	wantClasses := 0
	for _, c := range cfg.Consumers {
		if !c.direct() {
			wantClasses++
		}
	}
	for _, p := range rep.Phases {
		name := p.Registry + "/" + p.Variant
		if p.Error != "" {
			t.Errorf("%s: phase error: %s", name, p.Error)
			continue
		}
		if len(p.Consumers) != wantClasses {
			t.Errorf("%s: %d consumer classes reported, want %d", name, len(p.Consumers), wantClasses)
		}
		failed := 0
		for _, c := range p.Consumers {
			failed += c.Failed
			if c.Requests < 3 {
				t.Errorf("%s: consumer %s sent %d requests: the class was not exercised", name, c.Name, c.Requests)
			}
			if p.Variant == "tini" {
				continue
			}
			// Timeouts are reported, not asserted: on two cores loaded by
			// the rest of the suite a warm pod answers a 1 s consumer late
			// now and then (the load average reached 25 in these runs). A
			// pod gone too early (refused, reset) or not ready (503) is
			// never excused.
			if hard := c.FailedStop - c.TimeoutsStop; hard != 0 {
				t.Errorf("%s: consumer %s: %d failed at a pod's stop (%d timeouts) %v, want none but slow answers", name, c.Name, c.FailedStop, c.TimeoutsStop, c.FailureKinds)
			}
			if c.TimeoutsStop+c.TimeoutsLate > 0 {
				t.Logf("%s: consumer %s: %d timeouts at a pod's stop, %d at its start beyond the registration race (slow answers)", name, c.Name, c.TimeoutsStop, c.TimeoutsLate)
			}
			// The start side is issue 21's promise (hold until ready, then
			// warm up); it binds from the build that has both. Requests a
			// consumer sent before the hold could reach it (the app's own
			// registration was in rotation until then) are reported, not
			// asserted: see the registration race in docs/rollout/classes.md.
			late := c.FailedStart - c.FailedRace
			switch {
			case p.Warmup && p.Hold && late-c.TimeoutsLate != 0:
				t.Errorf("%s: consumer %s: %d failed at a pod's start after its hold could reach the consumer (%d timeouts) %v, want none but slow answers",
					name, c.Name, late, c.TimeoutsLate, c.FailureKinds)
			case c.FailedStart != 0:
				t.Logf("%s: consumer %s: %d failed at a pod's start, %d of them in the registration race %v (warm-up %t, hold %t)",
					name, c.Name, c.FailedStart, c.FailedRace, c.FailureKinds, p.Warmup, p.Hold)
			}
		}
		if len(p.StartPods) != cfg.Instances*cfg.Rollouts {
			t.Errorf("%s: start side of %d new pods measured, want %d", name, len(p.StartPods), cfg.Instances*cfg.Rollouts)
		}
		if p.WarmP99 <= 0 {
			t.Errorf("%s: no warm latency measured", name)
		}
		if p.Variant == "tini" {
			if failed == 0 {
				t.Errorf("%s: no failed requests: the harness does not reproduce the problem", name)
			}
			continue
		}
		if p.Prober == nil || p.Prober.Calls == 0 || p.Prober.FailedServing != p.Prober.TimeoutsServing {
			t.Errorf("%s: kubelet prober %+v: want calls, none refused while its pod served", name, p.Prober)
		}
		if len(p.Scrapes) == 0 {
			t.Errorf("%s: no scraped pod reported", name)
		}
		for _, s := range p.Shutdowns {
			if s.Exit != 0 || s.Took > s.Deadline {
				t.Errorf("%s: pod %s exited %d after %v (deadline %v)", name, s.Pod, s.Exit, s.Took, s.Deadline)
			}
			if s.Oracle <= 0 || s.Took < s.Oracle-time.Second {
				t.Errorf("%s: pod %s took %v, oracle %v: the drain cannot end before the last request reached the pod", name, s.Pod, s.Took, s.Oracle)
			}
			if !s.GRPCCloseSeen {
				t.Errorf("%s: pod %s: the gRPC caller never closed its connection to it", name, s.Pod)
			}
		}
	}
	for _, f := range []string{"results.json", "results.md", "timeline-nacos-gi.png", "timeline-eureka-gi.png"} {
		if st, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("output %s missing or empty: %v", f, err)
		}
	}
}

// runPreset runs the harness with a preset, extra flags, this test's
// gracefulinit and a temporary output directory.
func runPreset(t *testing.T, preset string, flags ...string) (Config, *Report) {
	t.Helper()
	args := append([]string{"-preset", preset, "-out", t.TempDir(), "-gracefulinit", testbin.Binary(t)}, flags...)
	cfg, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxDuration)
	defer cancel()
	rep, err := Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, rep
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// TestFaults runs the basic preset's traffic-aware variant on Nacos under
// each fault, one pod rolled. Whatever the registry does, every shutdown
// must end inside its deadline; failed requests are reported, and the ones
// a fault can cause are explained in the README.
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"registry-restart", "registry-slow", "ignore-term"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel() // each run has its own registry
			cfg, rep := runPreset(t, "basic", "-registry", "nacos", "-variants", "quiet", "-instances", "1", "-fault", fault)
			t.Logf("\n%s", rep.Markdown())
			for _, p := range rep.Phases {
				if p.Error != "" {
					t.Errorf("phase error: %s", p.Error)
				}
				if len(p.Shutdowns) != cfg.Instances*cfg.Rollouts {
					t.Errorf("%d shutdowns, want %d", len(p.Shutdowns), cfg.Instances*cfg.Rollouts)
				}
				for _, s := range p.Shutdowns {
					if s.Took > s.Deadline {
						t.Errorf("pod %s took %v, past its deadline %v", s.Pod, s.Took, s.Deadline)
					}
				}
			}
		})
	}
}
