package pid1_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// Drop-in means drop-in: tini's behaviours where tini has them, checked
// side by side with tini 0.19.0 where the two can be compared.

// TestWarnOnReap: -w logs a warning for each reaped zombie that is not the
// app, as many as tini -w prints; without -w nothing is logged.
func TestWarnOnReap(t *testing.T) {
	t.Parallel()
	const orphans = 3
	script := strings.Repeat("(sleep 0.2 &); ", orphans) + "sleep 1.5"
	warned := regexp.MustCompile(`level=WARN msg="reaped zombie process" logger=gracefulinit pid=\d+ status=0`)
	forModes(t, func(t *testing.T, m mode) {
		ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
		defer cancel()
		tini, err := run(ctx, m, tiniPath(t), nil, nil, "-s", "-w", "--", "sh", "-c", script)
		if err != nil || tini.code != 0 {
			t.Fatalf("tini: %v, exit %d", err, tini.code)
		}
		tiniWarned := strings.Count(tini.stderr, "Reaped zombie process")
		if tiniWarned != orphans {
			t.Fatalf("tini -w warned %d times, want %d (the test's orphans are not what it thinks)\n%s", tiniWarned, orphans, tini.stderr)
		}
		tests := []struct {
			flags []string
			want  int
		}{
			{[]string{"-w"}, orphans},
			{[]string{"--warn-on-reap"}, orphans},
			{nil, 0},
		}
		for _, tc := range tests {
			res := mustRun(t, m, nil, append(slices.Clone(tc.flags), "--", "sh", "-c", script)...)
			if res.code != 0 {
				t.Fatalf("%v: exit code %d, stderr %q", tc.flags, res.code, res.stderr)
			}
			if got := len(warned.FindAllString(res.stderr, -1)); got != tc.want || len(lines(res.stderr)) != tc.want {
				t.Errorf("%v: %d warnings in %q, want %d and nothing else", tc.flags, got, res.stderr, tc.want)
			}
		}
	})
}

// TestSigprofNotForwarded: the Go runtime consumes SIGPROF for its
// profiler, so gracefulinit cannot forward it (README says so): the app, a
// shell that would die of it, does not get it and both live on. tini
// forwards it, and the same app dies of it, as this test shows side by side.
func TestSigprofNotForwarded(t *testing.T) {
	t.Parallel()
	// sh keeps SIGPROF's default action (terminate); USR1 makes it exit 5.
	app := func(ready string) []string {
		return []string{"--", "sh", "-c", `trap 'exit 5' USR1; echo $$ > ` + ready + `.tmp; mv ` + ready + `.tmp ` + ready + `; while :; do sleep 0.05; done`}
	}
	waitReady := func(t *testing.T, path string) {
		t.Helper()
		if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { _, err := os.Stat(path); return err == nil }) {
			t.Fatal("the app never started")
		}
	}
	forModes(t, func(t *testing.T, m mode) {
		ready := filepath.Join(t.TempDir(), "ready")
		p := start(t, m, nil, app(ready)...)
		waitReady(t, ready)
		for range 5 {
			p.Signal(syscall.SIGPROF)
		}
		time.Sleep(200 * time.Millisecond)
		p.Signal(syscall.SIGUSR1)
		if code := p.Wait(exitTimeout); code != 5 {
			t.Fatalf("exit code %d, want the app's 5: SIGPROF must not have reached it", code)
		}
	})
	t.Run("tini", func(t *testing.T) {
		ready := filepath.Join(t.TempDir(), "ready")
		ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, tiniPath(t), append([]string{"-s"}, app(ready)...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, ready)
		b, _ := os.ReadFile(ready)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			killOnCleanup(t, pid) // if tini does not forward, the shell loops on
		}
		if err := cmd.Process.Signal(syscall.SIGPROF); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGPROF) {
			t.Fatalf("tini exit code %d, want %d: tini forwards SIGPROF", code, 128+int(syscall.SIGPROF))
		}
	})
}

// TestTiniModeNoKill: with no registry, no drain and no timeline flag,
// gracefulinit has no deadline of its own: an app that keeps running after
// SIGTERM is not killed at 29 s (nor later), and the stop is as quiet as
// tini's. A real 31 s wait, both modes at once.
func TestTiniModeNoKill(t *testing.T) {
	t.Parallel()
	const wait = 31 * time.Second
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			// The recorder logs TERM and keeps running.
			p, rec := startRecorder(t, m, nil, nil, 0, 0)
			app := mustAppPID(t, p)
			fd, err := unix.PidfdOpen(app, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(fd) })
			p.Signal(syscall.SIGTERM)
			if got := rec.waitCount(t, 1); !slices.Equal(got, []string{"TERM"}) {
				t.Fatalf("app recorded %v, want [TERM]", got)
			}
			select {
			case <-p.Done():
				t.Fatalf("gracefulinit exited with %d within %v of SIGTERM: it killed the app\nstderr:\n%s", p.Cmd.ProcessState.ExitCode(), wait, p.Stderr)
			case <-time.After(wait):
			}
			if !alive(app) {
				t.Fatal("the app is gone")
			}
			if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
				t.Fatal(err)
			}
			if code := p.Wait(exitTimeout); code != 137 {
				t.Fatalf("exit code %d, want 137 after the test killed the app", code)
			}
			if s := p.Stderr.String(); s != "" {
				t.Fatalf("stderr %q: tini mode is as quiet as tini on a plain stop", s)
			}
		})
	}
}

// TestYieldingDefaults: a default (stop-timeout, kill margin, drain
// ceiling) shrinks to fit what the user set, and --check shows the
// resulting numbers; only explicit values that contradict each other are
// refused, with exit status 1.
func TestYieldingDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args   []string
		budget string // --check's arithmetic line, or the error
		kill   string // --check's kill line
		err    bool
	}{
		{nil, "tini mode", "never kills", false},
		{[]string{"--grace-period", "6s"}, "grace-period 6s - kill-margin 1s - stop-timeout 5s = 0s", "5s: SIGKILL", false},
		{[]string{"--grace-period", "10s"}, "grace-period 10s - kill-margin 1s - stop-timeout 9s = 0s", "9s: SIGKILL", false},
		{[]string{"--grace-period", "20s"}, "grace-period 20s - kill-margin 1s - stop-timeout 10s = 9s", "19s: SIGKILL", false},
		{[]string{"--grace-period", "30s"}, "grace-period 30s - kill-margin 1s - stop-timeout 10s = 19s", "29s: SIGKILL", false},
		{[]string{"--grace-period", "6s", "--drain", "1s"}, "grace-period 6s - kill-margin 1s - stop-timeout 4s = 1s", "5s: SIGKILL", false},
		{[]string{"--grace-period", "10s", "--drain", "5s"}, "grace-period 10s - kill-margin 1s - stop-timeout 4s = 5s", "9s: SIGKILL", false},
		{[]string{"--grace-period", "20s", "--drain", "12s"}, "grace-period 20s - kill-margin 1s - stop-timeout 7s = 12s", "19s: SIGKILL", false},
		{[]string{"--grace-period", "30s", "--drain", "25s"}, "grace-period 30s - kill-margin 1s - stop-timeout 4s = 25s", "29s: SIGKILL", false},
		{[]string{"--grace-period", "6s", "--stop-timeout", "3s"}, "grace-period 6s - kill-margin 1s - stop-timeout 3s = 2s", "5s: SIGKILL", false},
		{[]string{"--grace-period", "20s", "--stop-timeout", "10s", "--drain", "9s"}, "grace-period 20s - kill-margin 1s - stop-timeout 10s = 9s", "19s: SIGKILL", false},
		{[]string{"--grace-period", "30s", "--stop-timeout", "20s"}, "grace-period 30s - kill-margin 1s - stop-timeout 20s = 9s", "29s: SIGKILL", false},
		{[]string{"--grace-period", "10s", "--stop-timeout", "10s"}, "grace-period 10s - kill-margin 1s - stop-timeout 10s = -1s", "", true},
		{[]string{"--grace-period", "20s", "--stop-timeout", "10s", "--drain", "12s"}, "--drain 12s exceeds the drain budget", "", true},
		{[]string{"--grace-period", "6s", "--drain", "5s"}, "--drain leaves the app no time to stop", "", true},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := mustRun(t, modes[1], nil, append(slices.Clone(tc.args), "--check", "--", "true")...)
			if tc.err {
				if res.code != 1 || !strings.Contains(firstLine(res.stderr), tc.budget) {
					t.Fatalf("exit code %d, stderr %q; want 1 and %q", res.code, res.stderr, tc.budget)
				}
				return
			}
			if res.code != 0 || !strings.Contains(res.stdout, tc.budget) || !strings.Contains(res.stdout, tc.kill) {
				t.Fatalf("exit code %d; want 0 and --check to show %q and %q\n%s%s", res.code, tc.budget, tc.kill, res.stdout, res.stderr)
			}
		})
	}
}

// TestYieldingDefaultsRun: the yielded timeline is the one that runs. An
// app that keeps running after TERM is killed at grace-period - kill-margin,
// after the drain the user set.
func TestYieldingDefaultsRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args        []string
		drain, kill time.Duration
	}{
		{[]string{"--grace-period", "10s"}, 0, 9 * time.Second},
		{[]string{"--grace-period", "6s", "--drain", "1s"}, time.Second, 5 * time.Second},
	}
	for _, m := range modes {
		for _, tc := range tests {
			t.Run(m.name+" "+strings.Join(tc.args, " "), func(t *testing.T) {
				t.Parallel()
				p, rec := startRecorder(t, m, nil, tc.args, 0, 0)
				sent := p.Signal(syscall.SIGTERM)
				rec.waitCount(t, 1)
				termAt := time.Since(sent)
				code := p.Wait(tc.kill + exitTimeout)
				took := time.Since(sent)
				if code != 137 {
					t.Fatalf("exit code %d, want 137 (killed)\nstderr:\n%s", code, p.Stderr)
				}
				if termAt < tc.drain-50*time.Millisecond || termAt > tc.drain+time.Second {
					t.Errorf("the app got TERM %v after SIGTERM, want about %v", termAt, tc.drain)
				}
				if took < tc.kill || took > tc.kill+2*time.Second {
					t.Errorf("killed %v after SIGTERM, want about %v", took, tc.kill)
				}
			})
		}
	}
}
