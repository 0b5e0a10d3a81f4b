// Package pid1_test runs the gracefulinit binary the way production does and
// checks its PID-1 duties from the outside: exit codes, signal forwarding,
// reaping, the terminal, start-up failures and configuration. Every test
// that can runs twice: as PID 1 of a fresh PID namespace and as a plain
// child of the test (where gracefulinit is a child subreaper).
package pid1_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/parallel"
	"github.com/gracefulinit/gracefulinit/internal/testkit/pidns"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// mode is how gracefulinit is started.
type mode struct {
	name string
	pid1 bool
}

var modes = []mode{{"pid1", true}, {"subreaper", false}}

// forModes runs f once per mode, as subtests.
func forModes(t *testing.T, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// Generous bounds: the machine is a shared 2-core box, and a test that
// hangs should fail with output rather than hit the go test timeout.
const (
	exitTimeout  = 30 * time.Second
	eventTimeout = 15 * time.Second
)

// TestMain runs the tests, which mostly wait (grace periods, tini mode's
// 31 s without a kill), eight at a time, and removes the binaries testbin
// built for this test process.
func TestMain(m *testing.M) {
	parallel.WaitBound(8)
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}

// helper builds testdata/pid1/pid1helper once per test process.
func helper(t testing.TB) string {
	t.Helper()
	return testbin.Build(t, "./testdata/pid1/pid1helper")
}

// start runs gracefulinit in mode m and, when the test ends, kills whatever
// is left of the app's process group: as a plain child, orphans that outlive
// gracefulinit go to the host's init and would leak into later tests.
func start(t *testing.T, m mode, env []string, args ...string) *testbin.Proc {
	t.Helper()
	return startWith(t, testbin.Options{PID1: m.pid1, Env: env}, args...)
}

// startWith is start with every testbin option.
func startWith(t *testing.T, o testbin.Options, args ...string) *testbin.Proc {
	t.Helper()
	p := testbin.Start(t, o, args...)
	trackChildGroup(t, p)
	return p
}

// trackChildGroup records the app's pid (it leads its own process group)
// once it runs, and SIGKILLs that group at cleanup if its leader still
// lives. A pidfd tells: once the leader is gone the group id may belong to
// another test's processes (pids wrap quickly under the reaping storms).
func trackChildGroup(t *testing.T, p *testbin.Proc) {
	t.Helper()
	var mu sync.Mutex
	pgid, pidfd := 0, -1
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if pid := appPID(p); pid > 0 {
				fd, err := unix.PidfdOpen(pid, 0)
				if err != nil {
					return // already gone
				}
				mu.Lock()
				pgid, pidfd = pid, fd
				mu.Unlock()
				return
			}
			select {
			case <-stop:
				return
			case <-p.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	// Registered after testbin's own cleanup, so it runs first.
	t.Cleanup(func() {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		if pgid == 0 {
			return
		}
		defer unix.Close(pidfd)
		// The leader may have exited without being reaped yet (its group
		// id is still taken then); pidfd_send_signal fails once it has
		// been reaped, and then the id may be anyone's.
		if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err == nil {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
}

// initPID is gracefulinit's host pid, or 0 while it has not started (no
// test failure: used from background goroutines).
func initPID(p *testbin.Proc) int {
	if !p.PID1 {
		return p.Cmd.Process.Pid
	}
	if kids := proctree.Children(p.Cmd.Process.Pid); len(kids) > 0 {
		return kids[0]
	}
	return 0
}

// appPID is the host pid of gracefulinit's main child: the child that leads
// its own process group (orphans re-parented to gracefulinit keep the app's
// group), or 0 if there is none yet.
func appPID(p *testbin.Proc) int {
	ip := initPID(p)
	if ip == 0 {
		return 0
	}
	self := proctree.Exe(ip)
	for _, c := range proctree.Children(ip) {
		pgid, err := syscall.Getpgid(c)
		if err != nil || pgid != c {
			continue
		}
		// Before exec the child is still a copy of gracefulinit.
		if exe := proctree.Exe(c); exe != "" && exe != self {
			return c
		}
	}
	return 0
}

// mustAppPID waits for the app to run and returns its host pid.
func mustAppPID(t *testing.T, p *testbin.Proc) int {
	t.Helper()
	p.InitPID()
	var pid int
	if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { pid = appPID(p); return pid > 0 }) {
		t.Fatalf("gracefulinit's child never appeared\nstderr:\n%s", p.Stderr)
	}
	return pid
}

// result of a short gracefulinit run.
type result struct {
	code           int
	stdout, stderr string
}

// run executes gracefulinit to completion in mode m, without a testing.T so
// many runs can share workers. Env entries are added to os.Environ(); wrap,
// if set, is an argv prefix that must exec gracefulinit (appended to it).
func run(ctx context.Context, m mode, bin string, env, wrap []string, args ...string) (result, error) {
	argv := append(append([]string{}, wrap...), bin)
	argv = append(argv, args...)
	if m.pid1 {
		argv = pidns.Argv(argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A timed-out run takes its whole group (and namespace) with it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// The app leads a group of its own; if it outlives a cancelled run it
	// must not hold the output pipes open forever.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		err = nil
	}
	if err != nil {
		return res, fmt.Errorf("%v: %w (stderr %q)", argv, err, res.stderr)
	}
	return res, nil
}

// mustRun is run for a test goroutine.
func mustRun(t *testing.T, m mode, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	res, err := run(ctx, m, testbin.Binary(t), env, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// recorder reads a pid1helper record log.
type recorder struct {
	path string
}

func newRecorder(t *testing.T, name string) recorder {
	return recorder{path: filepath.Join(t.TempDir(), name+".log")}
}

// signals lists the signal names logged so far, without the "ready" line.
func (r recorder) signals() []string {
	b, _ := os.ReadFile(r.path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "ready ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

func (r recorder) ready() bool {
	b, _ := os.ReadFile(r.path)
	return strings.HasPrefix(string(b), "ready ")
}

func (r recorder) waitReady(t *testing.T, p *testbin.Proc) {
	t.Helper()
	if !testbin.WaitFor(context.Background(), eventTimeout, r.ready) {
		t.Fatalf("recorder %s never became ready\nstderr:\n%s", r.path, p.Stderr)
	}
}

// waitCount waits until the recorder logged n signals and returns them.
func (r recorder) waitCount(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { got = r.signals(); return len(got) >= n }) {
		t.Fatalf("recorder %s logged %v, want %d signals", r.path, got, n)
	}
	return got
}

// markerAlone sends SIGWINCH, a marker, to pid, whose signals r records,
// and returns what r recorded once the marker is in. Pending signals are
// handed out lowest number first, so the higher-numbered marker comes after
// any signal already pending at pid: the marker alone means there was none.
func (r recorder) markerAlone(t *testing.T, pid int) []string {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	r.waitCount(t, 1)
	// A second signal would be recorded right behind the first.
	time.Sleep(100 * time.Millisecond)
	return r.signals()
}

// sigName is "TERM" for SIGTERM, as the recorder writes it.
func sigName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(s)) // real-time: by number
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
