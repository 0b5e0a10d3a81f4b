package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestQuickRun runs every section in quick mode against real binaries:
// gracefulinit built here and the Debian peers, which
// scripts/deps.sh installs if they are missing.
func TestQuickRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Quick = true
	cfg.Gracefulinit = testbin.Binary(t)
	ensurePeers(t, cfg)
	var progress bytes.Buffer
	cfg.Log = &progress

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.Errors) > 0 {
		t.Errorf("section errors:\n%s", strings.Join(rep.Errors, "\n"))
	}

	for _, i := range rep.Inits {
		if !i.Present || i.Size <= 0 {
			t.Errorf("%s: present=%v size=%d", i.Name, i.Present, i.Size)
		}
	}
	names := []string{NameGracefulinit, NameTini, NameDumbInit, NameCatatonit, NameGoFloor, NameGoFloorDeps}
	peers := []string{NameGracefulinit, NameTini, NameDumbInit, NameCatatonit, NameGoFloor}

	if rep.RSS == nil || len(rep.RSS.Modes) != 2 {
		t.Fatalf("idle RSS: %+v", rep.RSS)
	}
	for _, m := range rep.RSS.Modes {
		got := map[string]int64{}
		for _, row := range m.Rows {
			got[row.Name] = row.VmRSSKB
		}
		for _, n := range names {
			// Even a static C init maps a few pages; 100 MB would be a misread.
			if got[n] < 64 || got[n] > 100<<10 {
				t.Errorf("idle RSS %s %s: %d kB", m.Mode, n, got[n])
			}
		}
	}

	if s := rep.Startup; s == nil || s.Baseline.N != paramsFor(true).startRuns || len(s.Rows) != len(names) {
		t.Errorf("startup: %+v", s)
	} else {
		for _, row := range s.Rows {
			if !okRuns(row.Name, row.Failures, row.Raw.N, s.Runs) || row.Raw.MedianUS <= 0 {
				t.Errorf("startup %s: %+v", row.Name, row)
			}
		}
	}

	if s := rep.Signals; s == nil || len(s.Modes) != 2 {
		t.Errorf("signals: %+v", s)
	} else {
		for _, m := range s.Modes {
			if m.Direct.N != s.Signals {
				t.Errorf("signals %s direct: %+v", m.Mode, m.Direct)
			}
			for _, row := range m.Rows {
				// A latency below zero would mean the clocks disagree; one
				// above a second would have been counted as lost.
				if !okRuns(row.Name, row.Lost, row.Latency.N, s.Signals) || row.Latency.MinUS <= 0 || row.Latency.MaxUS > 2e6 {
					t.Errorf("signals %s %s: %+v", m.Mode, row.Name, row)
				}
			}
		}
	}

	if s := rep.Reap; s == nil || len(s.Storms) != 2 {
		t.Errorf("reaping: %+v", s)
	} else {
		for _, st := range s.Storms {
			got := map[string]ReapRow{}
			for _, row := range st.Rows {
				got[row.Name] = row
			}
			for _, n := range peers {
				row := got[n]
				if !okRuns(row.Name, row.FailedRuns, len(row.RunsTotalMS), st.Runs) || row.TotalMS <= 0 || row.SpawnMS <= 0 || row.TotalMS < row.SpawnMS {
					t.Errorf("reaping %s %s: %+v", st.How, n, row)
				}
			}
		}
	}

	if s := rep.Term; s == nil || len(s.Modes) != 2 {
		t.Errorf("sigterm to exit: %+v", s)
	} else {
		for _, m := range s.Modes {
			for _, row := range m.Rows {
				if !okRuns(row.Name, row.Failures, row.Exit.N, s.Runs) || row.Exit.MedianUS <= 0 {
					t.Errorf("sigterm to exit %s %s: %+v", m.Mode, row.Name, row)
				}
			}
		}
	}

	if s := rep.Drain; s == nil || len(s.Runs) != 1 || len(s.CPU) != 6 {
		t.Errorf("drain: %+v", s)
	} else {
		q := paramsFor(true)
		for _, run := range s.Runs {
			// The stop signal comes after the traffic and never after the
			// drain's maximum (plus slack for a loaded machine). Why the
			// drain ended is gracefulinit's business, only reported here.
			if run.DrainMS < ms(q.traffic) || run.DrainMS > ms(q.drainMax+2*time.Second) {
				t.Errorf("drain run: %+v", run)
			}
		}
		for _, c := range s.CPU {
			if c.WindowS <= 0 || c.SchedMSPerS < 0 || c.SchedMSPerS > 1000 {
				t.Errorf("drain cpu: %+v", c)
			}
			// No SIGTERM: the app runs on, whether the drain learns or not.
			if c.Phase == "running" && c.EndedEarly {
				t.Errorf("drain cpu while running: gracefulinit stopped: %+v", c)
			}
		}
	}

	if len(rep.Goals) < 8 {
		t.Errorf("goals: %+v", rep.Goals)
	}
	// The goals the Go floor can speak to carry its figures.
	for _, g := range rep.Goals {
		wantFloor := strings.HasPrefix(g.Goal, "idle RSS") || strings.HasPrefix(g.Goal, "start-up") || strings.HasPrefix(g.Goal, "SIGTERM-to-exit")
		if wantFloor && (!strings.Contains(g.Floor, NameGoFloor+" ") || !strings.Contains(g.Floor, NameGoFloorDeps+" ")) {
			t.Errorf("goal %q lacks the Go floors: %q", g.Goal, g.Floor)
		}
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	for _, h := range []string{"## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7.", "## Goals"} {
		if !strings.Contains(md.String(), h) {
			t.Errorf("markdown lacks %q:\n%s", h, md.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("json: %v", err)
	}

	// Nothing the benchmark started may be left behind.
	if kids := proctree.Children(os.Getpid()); len(kids) > 0 {
		t.Errorf("processes left behind: %v", kids)
	}
	if t.Failed() {
		t.Logf("report:\n%s\nprogress:\n%s", md.String(), progress.String())
	}
}

// okRuns checks an init's count of failed and measured runs: gracefulinit
// may not fail any; a peer may fail the odd run (its behaviour, noted in
// the report) but not most of them.
func okRuns(name string, failed, measured, want int) bool {
	if failed+measured != want {
		return false
	}
	if strings.HasPrefix(name, NameGracefulinit) {
		return failed == 0
	}
	return failed*2 < want
}

// TestCancelCleansUp cancels a run in the middle of a drain measurement:
// Run must return promptly and leave no process behind.
func TestCancelCleansUp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Quick = true
	cfg.Gracefulinit = testbin.Binary(t)
	ensurePeers(t, cfg)
	cfg.Sections = []string{"drain"}
	progress := &capBuffer{max: 1 << 20}
	cfg.Log = progress

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The helper build comes first; cancel once the drain is under way.
		for !strings.Contains(progress.String(), "drain delay run") {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(700 * time.Millisecond)
		cancel()
	}()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := Run(ctx, cfg)
		done <- err
	}()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled\nprogress:\n%s", err, progress.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("Run did not return %v after start", time.Since(start))
	}
	if kids := proctree.Children(os.Getpid()); len(kids) > 0 {
		t.Errorf("processes left behind: %v", kids)
	}
}

func TestUnknownSection(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Sections = []string{"startup", "bogus"}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("Run = %v, want an error naming the section", err)
	}
}

// TestMain removes the binaries testbin built for this test process.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}

// ensurePeers installs the peer inits through the project's own script
// when one is missing.
func ensurePeers(t *testing.T, cfg Config) {
	t.Helper()
	for _, p := range []string{cfg.TiniStatic, cfg.DumbInit, cfg.Catatonit} {
		if _, err := os.Stat(p); err == nil {
			continue
		}
		root, err := repo.Root()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "deps.sh"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/deps.sh: %v\n%s", err, out)
		}
		return
	}
}

func TestSummarize(t *testing.T) {
	msList := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Stats
	}{
		{"empty", nil, Stats{}},
		{"one", msList(3), Stats{N: 1, MedianUS: 3000, P90US: 3000, P99US: 3000, MinUS: 3000, MaxUS: 3000, MeanUS: 3000}},
		{"even count takes the middle mean", msList(4, 1, 3, 2), Stats{N: 4, MedianUS: 2500, P90US: 4000, P99US: 4000, MinUS: 1000, MaxUS: 4000, MeanUS: 2500}},
		{"nearest rank", msList(10, 1, 2, 3, 4, 5, 6, 7, 8, 9), Stats{N: 10, MedianUS: 5500, P90US: 9000, P99US: 10000, MinUS: 1000, MaxUS: 10000, MeanUS: 5500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestArgv(t *testing.T) {
	child := []string{"/bin/sleep", "1"}
	tests := []struct {
		style Style
		pid1  bool
		extra []string
		want  string
	}{
		{StyleGracefulinit, true, []string{"--drain", "0"}, "/x --drain 0 -- /bin/sleep 1"},
		{StyleGracefulinit, false, nil, "/x -- /bin/sleep 1"},
		{StyleTini, true, []string{"ignored"}, "/x -- /bin/sleep 1"},
		{StyleTini, false, nil, "/x -s -- /bin/sleep 1"},
		{StyleDumbInit, false, nil, "/x /bin/sleep 1"},
		{StyleCatatonit, true, nil, "/x -- /bin/sleep 1"},
		{StyleDirect, false, nil, "/bin/sleep 1"},
	}
	for _, tt := range tests {
		t.Run(string(tt.style), func(t *testing.T) {
			got := strings.Join(Init{Path: "/x", Style: tt.style}.argv(tt.pid1, tt.extra, child), " ")
			if got != tt.want {
				t.Errorf("argv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDrainReason(t *testing.T) {
	tests := []struct{ name, logs, want string }{
		{"quiet", `time=x level=INFO msg="drain ended" logger=gracefulinit reason=all-quiet elapsed=1.5s`, "all-quiet"},
		{"quoted", `time=x level=INFO msg="drain ended" reason="second-signal" elapsed=1s`, "second-signal"},
		{"json is not parsed", `{"msg":"drain ended","reason":"ceiling"}`, "unknown"},
		{"app-exit", `msg="app exited during the drain" exit_code=0`, "app-exit"},
		{"none", "", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := drainReason(tt.logs); got != tt.want {
				t.Errorf("drainReason = %q, want %q", got, tt.want)
			}
		})
	}
}
