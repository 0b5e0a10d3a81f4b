package pid1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// orphanLoop is sh that double-forks $1 short-lived orphans: each subshell
// starts a background child and exits at once, so the child is re-parented
// to gracefulinit (exited or not). Only builtins run, so no exec slows it.
const orphanLoop = `i=0; while [ $i -lt %d ]; do (true &); i=$((i+1)); done`

// zombiesBelow lists the processes in state Z below pid.
func zombiesBelow(pid int) []int {
	var out []int
	for _, d := range procfs.Descendants(pid) {
		if proctree.State(d) == "Z" {
			out = append(out, d)
		}
	}
	return out
}

// TestReapThousandsOfOrphans: the app double-forks 5000 orphans and stays
// up. gracefulinit must reap every one (its debug log names each) and,
// once the storm is over, nothing below it may be a zombie.
func TestReapThousandsOfOrphans(t *testing.T) {
	t.Parallel()
	const orphans = 5000
	forModes(t, func(t *testing.T, m mode) {
		marker := filepath.Join(t.TempDir(), "spawned")
		script := fmt.Sprintf(orphanLoop, orphans) + fmt.Sprintf("; echo done > %s; exec sleep 300", marker)
		begin := time.Now()
		p := start(t, m, nil, "-v", "--", "sh", "-c", script)
		init := p.InitPID()

		reaped := func() int { return strings.Count(p.Stderr.String(), `msg="reaped orphan"`) }
		maxZombies := 0
		ok := testbin.WaitFor(context.Background(), 90*time.Second, func() bool {
			if n := len(zombiesBelow(init)); n > maxZombies {
				maxZombies = n
			}
			_, err := os.Stat(marker)
			return err == nil && reaped() >= orphans
		})
		if _, err := os.Stat(marker); err != nil {
			t.Fatalf("the app never finished spawning (%v); gracefulinit reaped %d orphans", err, reaped())
		}
		if !ok {
			t.Fatalf("gracefulinit reaped %d orphans, want %d", reaped(), orphans)
		}
		took := time.Since(begin)
		// A few more ms for anything in flight, then the tree must be clean.
		time.Sleep(200 * time.Millisecond)
		if z := zombiesBelow(init); len(z) > 0 {
			t.Fatalf("zombies left below gracefulinit: %v", z)
		}
		if n := reaped(); n != orphans {
			t.Fatalf("gracefulinit reaped %d orphans, want exactly %d", n, orphans)
		}
		app := mustAppPID(t, p)
		if d := procfs.Descendants(init); len(d) != 1 || d[0] != app {
			t.Fatalf("processes below gracefulinit: %v, want only the app %d", d, app)
		}
		t.Logf("%d orphans spawned and reaped in %v; at most %d zombies seen at once while polling",
			orphans, took.Round(time.Millisecond), maxZombies)

		p.Signal(syscall.SIGTERM)
		if code := p.Wait(exitTimeout); code != 143 {
			t.Fatalf("exit code %d, want 143", code)
		}
	})
}

// TestExitStatusDuringReapingStorm: the app exits (or is killed) while its
// orphans are still being born and dying around it. Whatever wait4 returns
// first, gracefulinit must exit with the app's status, every time.
func TestExitStatusDuringReapingStorm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{
			// A background generator keeps orphaning while the app exits.
			name:   "exit during storm",
			script: "(" + fmt.Sprintf(orphanLoop, 3000) + ") & sleep 0.1; exit 77",
			want:   77,
		},
		{
			name:   "exit 1 during storm",
			script: "(" + fmt.Sprintf(orphanLoop, 3000) + ") & sleep 0.1; exit 1",
			want:   1,
		},
		{
			name:   "killed during storm",
			script: "(" + fmt.Sprintf(orphanLoop, 3000) + ") & sleep 0.1; kill -USR1 $$",
			want:   128 + int(syscall.SIGUSR1),
		},
		{
			// Orphans timed to die together with the app.
			name:   "exit with the orphans",
			script: "i=0; while [ $i -lt 150 ]; do (sleep 0.3 &); i=$((i+1)); done; sleep 0.3; exit 201",
			want:   201,
		},
		{
			name:   "exit right after a storm",
			script: fmt.Sprintf(orphanLoop, 1000) + "; exit 254",
			want:   254,
		},
	}
	const rounds = 3
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				for i := range rounds {
					// Orphans still running after gracefulinit exits (plain
					// child mode) must not hold its output pipes open.
					p := start(t, m, nil, "--", "sh", "-c", "exec >/dev/null 2>&1; "+tc.script)
					if code := p.Wait(exitTimeout); code != tc.want {
						t.Fatalf("round %d: exit code %d, want the app's %d\nstderr:\n%s", i, code, tc.want, p.Stderr)
					}
					if s := p.Stderr.String(); s != "" {
						t.Fatalf("round %d: unexpected stderr:\n%s", i, s)
					}
				}
			})
		}
	})
}

// TestSubreaper: an orphaned grandchild is re-parented to gracefulinit
// (PID 1, or the subreaper when it is a plain child) and reaped when it dies.
func TestSubreaper(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   []string
		flags []string
	}{
		{"default", nil, nil},
		{"-s", nil, []string{"-s"}},
		{"TINI_SUBREAPER", []string{"TINI_SUBREAPER="}, nil},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				args := append(append([]string{}, tc.flags...), "--", "sh", "-c", "(sleep 300 &); exec sleep 301")
				p := start(t, m, tc.env, args...)
				init := p.InitPID()
				app := mustAppPID(t, p)
				var orphan int
				found := testbin.WaitFor(context.Background(), eventTimeout, func() bool {
					for _, c := range proctree.Children(init) {
						if c != app && cmdline(c) == "sleep 300" {
							orphan = c
							return true
						}
					}
					return false
				})
				if !found {
					t.Fatalf("no orphan re-parented to gracefulinit %d; its children: %v", init, proctree.Children(init))
				}
				if ppid := statusField(t, orphan, "PPid"); ppid != strconv.Itoa(init) {
					t.Fatalf("orphan %d has PPid %s, want gracefulinit's %d", orphan, ppid, init)
				}
				if err := syscall.Kill(orphan, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { return proctree.State(orphan) == "" }) {
					t.Fatalf("orphan %d not reaped: state %q", orphan, proctree.State(orphan))
				}
				p.Signal(syscall.SIGTERM)
				if code := p.Wait(exitTimeout); code != 143 {
					t.Fatalf("exit code %d, want 143", code)
				}
			})
		}
	})
}

// cmdline is /proc/PID/cmdline with spaces between arguments.
func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// statusField is one field of /proc/PID/status.
func statusField(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return ""
}
