// Package container_test runs gracefulinit as PID 1 of real containers
// (rootful podman with runc) around a real JVM, in the image a user builds
// with examples/spring-boot/Dockerfile, and checks what a container runtime
// sees: the drain before the JVM's SIGTERM, the shutdown hook, exit codes,
// SIGKILL before the runtime's own, zombie reaping, and nothing left behind.
// Next to it runs the shell-form entrypoint users start from, where SIGTERM
// never reaches the JVM.
package container_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/parallel"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// jvm is the command line of the test app: a small, quick-starting JVM.
func jvm(appArgs ...string) []string {
	argv := []string{"java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-Xss256k", "-Xms16m", "-Xmx64m", "-XX:-UsePerfData", "-jar", "/app/app.jar"}
	return append(argv, appArgs...)
}

const (
	hookLine    = "app: shutdown hook ran"
	readyLine   = "app: ready"
	ignoredLine = "app: ignoring SIGTERM"
	summaryLine = `msg="shutdown summary"`
	// podman stop prints this when it had to SIGKILL at its -t deadline.
	podmanKilled = "resorting to SIGKILL"
)

// startSlack bounds how long a JVM may take to start in a container on a
// loaded 2-core machine.
const startSlack = 60 * time.Second

func TestContainer(t *testing.T) {
	p := setupPodman(t)
	img := buildImages(t, p)

	// Every case runs its own containers (names from randomSuffix) and
	// mostly waits for them: the groups overlap, with their cases.
	t.Run("dist image", func(t *testing.T) { t.Parallel(); testDistImage(t, p, img) })
	t.Run("stop", func(t *testing.T) { t.Parallel(); testStop(t, p, img) })
	t.Run("reaping", func(t *testing.T) { t.Parallel(); testReaping(t, p, img) })
	t.Run("lifecycle", func(t *testing.T) { t.Parallel(); testLifecycle(t, p, img) })
}

// TestMain runs four cases at a time: each starts a JVM in a container
// and then waits on it (drains, podman stop's deadline).
func TestMain(m *testing.M) {
	parallel.WaitBound(4)
	os.Exit(m.Run())
}

// testDistImage checks the image the repository's Dockerfile produced:
// both binaries run from it (static, FROM scratch) and report the version
// it was built with, which its OCI labels carry too.
func testDistImage(t *testing.T, p *podman, img images) {
	if img.version == "" {
		t.Log("GI_TEST_BINARY is set: the Dockerfile was not built")
		return
	}
	for _, bin := range []string{"/gracefulinit", "/gracefulinit-nacos"} {
		out := p.must(t, time.Minute, "run", "--rm", "--network", "none", "--entrypoint", bin, img.dist, "--version")
		if !strings.Contains(out, bin[1:]+" "+img.version+" ") {
			t.Errorf("%s --version printed %q, want version %s", bin, out, img.version)
		}
	}
	// The image's default command is --version too.
	if out := p.must(t, time.Minute, "run", "--rm", "--network", "none", img.dist); !strings.Contains(out, img.version) {
		t.Errorf("the image's default command printed %q", out)
	}
	labels := map[string]string{
		"org.opencontainers.image.version":  img.version,
		"org.opencontainers.image.revision": "container-test",
		"org.opencontainers.image.title":    "gracefulinit",
		"org.opencontainers.image.source":   "https://github.com/gracefulinit/gracefulinit",
	}
	for k, want := range labels {
		got := strings.TrimSpace(p.must(t, time.Minute, "image", "inspect", "--format", `{{index .Labels "`+k+`"}}`, img.dist))
		if got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	ep := strings.TrimSpace(p.must(t, time.Minute, "image", "inspect", "--format", "{{json .Config.Entrypoint}}", img.dist))
	if ep != `["/gracefulinit"]` {
		t.Errorf("entrypoint %s, want [\"/gracefulinit\"]", ep)
	}
	testDistLicenses(t, p, img)
}

// testDistLicenses: the image ships the repository's LICENSE and the
// license files of the modules its binaries link, the helper's SDK among
// them.
func testDistLicenses(t *testing.T, p *podman, img images) {
	ctr := "gracefulinit-licenses-" + randomSuffix(t)
	p.must(t, time.Minute, "create", "--name", ctr, img.dist)
	t.Cleanup(func() { _, _, _ = p.run(time.Minute, "rm", "-f", ctr) })
	dir := t.TempDir()
	read := func(name string) string {
		p.must(t, time.Minute, "cp", ctr+":/"+name, filepath.Join(dir, name))
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if read("LICENSE") != string(want) {
		t.Error("/LICENSE in the image differs from the repository's LICENSE")
	}
	third := read("THIRD_PARTY_LICENSES")
	for _, s := range []string{"\ngithub.com/nacos-group/nacos-sdk-go/v2 v", "\ngithub.com/spf13/pflag v", "Linked into: gracefulinit, gracefulinit-nacos"} {
		if !strings.Contains(third, s) {
			t.Errorf("/THIRD_PARTY_LICENSES has no %q", s)
		}
	}
}

func testStop(t *testing.T, p *podman, img images) {
	// Timeline of the gracefulinit rows: podman stop -t 10 and
	// --grace-period 10s; the kill point is 10 - 2 (kill margin) = 8 s,
	// leaving podman's own SIGKILL at 10 s two seconds of slack.
	timeline := []string{"--grace-period=10s", "--kill-margin=2s", "--stop-timeout=5s"}
	timelineEnv := []string{"GRACEFULINIT_GRACE_PERIOD=10s", "GRACEFULINIT_KILL_MARGIN=2s", "GRACEFULINIT_STOP_TIMEOUT=5s"}
	userScript := strings.Join(jvm(), " ") + "; /sbin/tini -s"

	tests := []struct {
		name string
		run  runOpts
		secs int // podman stop -t

		wantExit  int
		wantHook  bool          // the JVM's shutdown hook ran, i.e. SIGTERM reached it
		wantDrain time.Duration // with wantHook: SIGTERM reached the JVM this long after podman stop
		// Who ended it: gracefulinit's SIGKILL before the deadline, or
		// podman's at -t (then the stop took at least -t seconds).
		wantGIKill, wantPodmanKill bool
		wantIgnored                bool // the app logged that it ignored SIGTERM
	}{
		{
			name: "flags: drain then SIGTERM, JVM's 143 passed through",
			run: runOpts{
				// Clear the image's GRACEFULINIT_REMAP_EXIT=143 default.
				env:        []string{"GRACEFULINIT_REMAP_EXIT="},
				entrypoint: slices.Concat([]string{"/gracefulinit"}, timeline, []string{"--drain=2s", "--"}),
				cmd:        jvm(),
			},
			secs: 10, wantExit: 143, wantHook: true, wantDrain: 2 * time.Second,
		},
		{
			name: "image entrypoint and env: drain then SIGTERM, 143 remapped to 0",
			run: runOpts{
				env: slices.Concat(timelineEnv, []string{"GRACEFULINIT_DRAIN=2s"}),
				cmd: jvm(),
			},
			secs: 10, wantExit: 0, wantHook: true, wantDrain: 2 * time.Second,
		},
		{
			name: "app ignores SIGTERM: gracefulinit kills it before podman would",
			run: runOpts{
				env: slices.Concat(timelineEnv, []string{"GRACEFULINIT_DRAIN=1s"}),
				cmd: jvm("--ignore-term"),
			},
			secs: 10, wantExit: 137, wantGIKill: true, wantIgnored: true,
		},
		{
			name: "user's shell-form entrypoint: SIGTERM never reaches java",
			run: runOpts{
				entrypoint: []string{"/bin/sh", "-c", userScript},
			},
			secs: 4, wantExit: 137, wantPodmanKill: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := p.start(t, img.app, tc.run)
			c.waitLog(t, readyLine, startSlack)
			before := c.top(t)

			stopAt, took, stopErr := c.stop(t, tc.secs)
			t.Logf("podman stop -t %d took %s", tc.secs, took.Round(time.Millisecond))
			logs := c.logs(t)
			deadline := time.Duration(tc.secs) * time.Second

			if got, _ := strconv.Atoi(c.inspect(t, "{{.State.ExitCode}}")); got != tc.wantExit {
				t.Errorf("exit code %d, want %d", got, tc.wantExit)
			}
			hook := findLine(logs, hookLine)
			switch {
			case tc.wantHook && hook == "":
				t.Error("the JVM's shutdown hook did not run")
			case !tc.wantHook && hook != "":
				t.Errorf("the shutdown hook ran: %s", hook)
			}
			if tc.wantDrain > 0 && hook != "" {
				hookAt := lineTime(t, hook)
				drained := hookAt.Sub(stopAt)
				t.Logf("SIGTERM reached the JVM %s after podman stop", drained.Round(time.Millisecond))
				// Early is a bug (no drain); late only means a slow machine.
				if drained < tc.wantDrain-200*time.Millisecond || drained > tc.wantDrain+3*time.Second {
					t.Errorf("SIGTERM reached the JVM %s after podman stop, want about %s (the drain)", drained, tc.wantDrain)
				}
			}
			if ign := findLine(logs, ignoredLine) != ""; ign != tc.wantIgnored {
				t.Errorf("app logged %q: %v, want %v", ignoredLine, ign, tc.wantIgnored)
			}
			if pk := strings.Contains(stopErr, podmanKilled); pk != tc.wantPodmanKill {
				t.Errorf("podman resorted to SIGKILL: %v, want %v (podman stop said %q)", pk, tc.wantPodmanKill, stopErr)
			}
			if tc.wantPodmanKill && took < deadline {
				t.Errorf("stop took %s, less than podman's -t %s", took, deadline)
			}
			if tc.run.entrypoint == nil || tc.run.entrypoint[0] == "/gracefulinit" {
				line := findLine(logs, summaryLine)
				if line == "" {
					t.Fatalf("no shutdown summary from gracefulinit")
				}
				t.Logf("gracefulinit: %s", line)
				sum := logFields(line)
				if got, want := sum["killed"], strconv.FormatBool(tc.wantGIKill); got != want {
					t.Errorf("summary says killed=%s, want %s", got, want)
				}
				if got, want := sum["exit_code"], strconv.Itoa(tc.wantExit); got != want {
					t.Errorf("summary says exit_code=%s, want %s", got, want)
				}
				if tc.wantGIKill {
					// The kill point is grace - margin = 8 s after gracefulinit
					// got SIGTERM; podman's own SIGKILL would come at 10 s
					// (and it did not: see podmanKilled above).
					total, err := time.ParseDuration(sum["total"])
					if err != nil {
						t.Fatalf("summary total=%q: %v", sum["total"], err)
					}
					if total < 7*time.Second || total > deadline-time.Second {
						t.Errorf("gracefulinit ended the app %s after SIGTERM, want at the kill point, about 8 s", total)
					}
				}
			}
			c.assertGone(t, before)
		})
	}
}

func testReaping(t *testing.T, p *podman, img images) {
	const orphans = 3
	tests := []struct {
		name        string
		run         runOpts
		wantZombies bool
	}{
		{
			name: "gracefulinit as PID 1 reaps the app's orphans",
			run:  runOpts{cmd: jvm("--orphans=" + strconv.Itoa(orphans))},
		},
		{
			// The control: proves the orphans do turn into zombies, so
			// seeing none above means they were reaped.
			name:        "java as PID 1 leaves them as zombies",
			run:         runOpts{entrypoint: jvm("--orphans=" + strconv.Itoa(orphans))},
			wantZombies: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := p.start(t, img.app, tc.run)
			c.waitLog(t, "app: spawned", startSlack)

			// The orphans sleep 1 s. Wait until each is gone or a zombie.
			var procs []proc
			settled := poll.Within(context.Background(), 20*time.Second, 200*time.Millisecond, func() bool {
				procs = c.top(t)
				live, zombies := 0, 0
				for _, pr := range procs {
					switch {
					case pr.state == "Z":
						zombies++
					case pr.pid != 1 && !strings.Contains(pr.comm, "java"):
						live++
					}
				}
				return live == 0 && (zombies >= orphans || !tc.wantZombies)
			})
			if !settled {
				t.Fatalf("orphans still running or not yet zombies after 20 s: %+v", procs)
			}
			// Reaping may lag the exit by a moment; give it one.
			time.Sleep(500 * time.Millisecond)
			procs = c.top(t)
			var zombies []proc
			for _, pr := range procs {
				if pr.state == "Z" {
					zombies = append(zombies, pr)
				}
			}
			t.Logf("processes: %+v", procs)
			switch {
			case tc.wantZombies && len(zombies) < orphans:
				t.Errorf("want %d zombies, found %d: %+v", orphans, len(zombies), procs)
			case !tc.wantZombies && len(zombies) > 0:
				t.Errorf("zombies left: %+v", zombies)
			}
			if !tc.wantZombies && len(procs) != 2 {
				t.Errorf("want exactly gracefulinit and java, found %+v", procs)
			}

			_, took, _ := c.stop(t, 10)
			t.Logf("podman stop took %s", took.Round(time.Millisecond))
			// Both JVMs handle SIGTERM; with the image's defaults (no drain,
			// 143 remapped) gracefulinit exits 0, a bare JVM 143.
			want := 0
			if tc.wantZombies {
				want = 143
			}
			if got, _ := strconv.Atoi(c.inspect(t, "{{.State.ExitCode}}")); got != want {
				t.Errorf("exit code %d, want %d", got, want)
			}
			c.assertGone(t, procs)
		})
	}
}

func findLine(logs, substr string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

var logField = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// logFields splits a log/slog text line into its key=value pairs.
func logFields(line string) map[string]string {
	out := map[string]string{}
	for _, m := range logField.FindAllStringSubmatch(line, -1) {
		v := m[2]
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		out[m[1]] = v
	}
	return out
}

var appTime = regexp.MustCompile(`\bt=(\d+)\b`)

// lineTime is the wall-clock time the test app stamped on its line.
func lineTime(t *testing.T, line string) time.Time {
	t.Helper()
	m := appTime.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no t=<millis> in %q", line)
	}
	ms, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.UnixMilli(ms)
}
