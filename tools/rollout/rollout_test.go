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

// TestQuickRollout runs the quick preset end to end, as CI does: real
// Polaris, real JVMs under tini and gracefulinit as PID 1 of their own PID
// namespaces, a real consumer under load. It asserts the product's claim:
// zero failed requests with gracefulinit's drains, and failures with tini,
// without which the harness would not be showing anything.
func TestQuickRollout(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare is needed (util-linux)")
	}
	cfg, rep := runQuick(t)
	if err := rep.Write(cfg.Out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Markdown())
	for _, p := range rep.Phases {
		if p.Error != "" {
			t.Errorf("%s/%s: phase error: %s", p.Registry, p.Variant, p.Error)
			continue
		}
		if p.Requests < cfg.Rate {
			t.Errorf("%s/%s: only %d requests sent", p.Registry, p.Variant, p.Requests)
		}
		switch p.Variant {
		case "tini":
			if p.Failed == 0 {
				t.Errorf("%s/tini: no failed requests: the harness does not reproduce the problem", p.Registry)
			}
		default:
			if p.Failed != 0 {
				t.Errorf("%s/%s: %d failed requests %v, want 0", p.Registry, p.Variant, p.Failed, p.FailureKinds)
			}
		}
		for _, s := range p.Shutdowns {
			if p.Variant != "tini" && (s.Exit != 0 || s.Took > s.Deadline) {
				t.Errorf("%s/%s: pod %s exited %d after %v (deadline %v)", p.Registry, p.Variant, s.Pod, s.Exit, s.Took, s.Deadline)
			}
		}
	}
	for _, f := range []string{"results.json", "results.md", "timeline-nacos-quiet.png", "timeline-nacos-grpc-quiet.png", "timeline-eureka-quiet.png"} {
		if st, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("output %s missing or empty: %v", f, err)
		}
	}
}

// runQuick runs the harness with the quick preset, extra flags, this
// test's gracefulinit and a temporary output directory.
func runQuick(t *testing.T, flags ...string) (Config, *Report) {
	t.Helper()
	return runPreset(t, "quick", flags...)
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

// TestFaults runs the quick preset's traffic-aware variant under each
// fault. Whatever the registry does, every shutdown must end inside its
// deadline; failed requests are reported, and the ones a fault can cause
// are explained in the README.
func TestFaults(t *testing.T) {
	for _, fault := range []string{"registry-restart", "registry-slow", "ignore-term"} {
		t.Run(fault, func(t *testing.T) {
			cfg, rep := runQuick(t, "-registry", "nacos", "-variants", "quiet", "-fault", fault)
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

// TestMixRollout runs the mix-quick preset, as CI does: a busy consumer on
// the discovery client's own view, one behind a cache, a rare caller whose
// gap between calls to a pod is far longer than --drain-quiet, and a
// prober on every pod's port that never stops (gracefulinit gets its
// address as HOST_IP). Every consumer must see zero failed requests; the
// prober's calls fail only once its pod is stopping.
func TestMixRollout(t *testing.T) {
	cfg, rep := runPreset(t, "mix-quick")
	if err := rep.Write(cfg.Out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Markdown())
	for _, p := range rep.Phases {
		if p.Error != "" {
			t.Errorf("%s/%s: phase error: %s", p.Registry, p.Variant, p.Error)
			continue
		}
		if len(p.Consumers) != 3 {
			t.Errorf("%s/%s: %d consumers reported, want 3", p.Registry, p.Variant, len(p.Consumers))
		}
		for _, c := range p.Consumers {
			if c.Requests < 5 || c.Failed != 0 {
				t.Errorf("%s/%s: consumer %s: %d requests, %d failed %v; want some and none failed", p.Registry, p.Variant, c.Name, c.Requests, c.Failed, c.FailureKinds)
			}
		}
		if p.Prober == nil || p.Prober.Calls == 0 || p.Prober.FailedServing != 0 {
			t.Errorf("%s/%s: prober %+v: want calls, none failed while its pod served", p.Registry, p.Variant, p.Prober)
		}
		for _, s := range p.Shutdowns {
			if s.Exit != 0 || s.Took > s.Deadline {
				t.Errorf("%s/%s: pod %s exited %d after %v (deadline %v)", p.Registry, p.Variant, s.Pod, s.Exit, s.Took, s.Deadline)
			}
			// The prober is left out and the rest stop: the drain ends by
			// itself, not at its ceiling.
			if s.DrainEnd != "all-quiet" {
				t.Errorf("%s/%s: pod %s drain ended by %q, want all-quiet", p.Registry, p.Variant, s.Pod, s.DrainEnd)
			}
			if s.Oracle <= 0 || s.Took < s.Oracle-time.Second {
				t.Errorf("%s/%s: pod %s took %v, oracle %v: the drain cannot end before the last request reached the pod", p.Registry, p.Variant, s.Pod, s.Took, s.Oracle)
			}
		}
	}
}
