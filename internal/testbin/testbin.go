// Package testbin builds the gracefulinit binary once per test process and
// runs it the way production does: as PID 1 of a fresh PID namespace
// (unshare --pid --fork --mount-proc), or as a plain subreaper child.
package testbin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// RepoRoot is the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds bin/gracefulinit for this test process (static, like the
// release) and returns its path. Extra build tags may be given.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gracefulinit-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "gracefulinit")
		cmd := exec.Command("go", "build", "-trimpath", "-o", buildPath, "./cmd/gracefulinit")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Proc is a running gracefulinit.
type Proc struct {
	t      testing.TB
	Cmd    *exec.Cmd
	PID1   bool
	Stdout *SafeBuffer
	Stderr *SafeBuffer
	done   chan struct{}
	err    error
}

// SafeBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SafeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Options for Start.
type Options struct {
	PID1 bool     // run as PID 1 of a new PID namespace
	Env  []string // added to os.Environ()
	Dir  string
	// Wrapper, if set, is an argv prefix run in gracefulinit's place; the
	// binary's path and args are appended. It must exec gracefulinit (so
	// the pid stays the same), e.g. to start it with a dirty signal state.
	Wrapper []string
}

// Start runs gracefulinit with args. It is killed (with its whole
// namespace) in t.Cleanup if still running.
func Start(t testing.TB, o Options, args ...string) *Proc {
	t.Helper()
	bin := Binary(t)
	argv := append(append(append([]string{}, o.Wrapper...), bin), args...)
	if o.PID1 {
		// --kill-child: if the test dies, the namespace dies with unshare.
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child=KILL"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Dir = o.Dir
	p := &Proc{t: t, Cmd: cmd, PID1: o.PID1, Stdout: &SafeBuffer{}, Stderr: &SafeBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gracefulinit: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("gracefulinit stdout:\n%s\ngracefulinit stderr:\n%s", p.Stdout, p.Stderr)
		}
	})
	return p
}

// InitPID is gracefulinit's pid as seen from the test (host namespace).
// As PID 1 that is unshare's only child. It waits until gracefulinit has
// started its child: by then it catches every signal, and a signal sent
// earlier could hit the Go runtime's default handling instead.
func (p *Proc) InitPID() int {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pid := p.Cmd.Process.Pid
		if p.PID1 {
			pid = 0
			if kids := Children(p.Cmd.Process.Pid); len(kids) > 0 {
				pid = kids[0]
			}
		}
		if pid != 0 && p.hasExecedChild(pid) {
			return pid
		}
		select {
		case <-p.done:
			p.t.Fatalf("gracefulinit exited before its child started\nstderr:\n%s", p.Stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
	p.t.Fatalf("gracefulinit did not start its child within 10s\nstderr:\n%s", p.Stderr)
	return 0
}

func (p *Proc) hasExecedChild(pid int) bool {
	self, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	for _, c := range Children(pid) {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c)); err == nil && exe != self {
			return true
		}
	}
	return false
}

// Signal sends sig to gracefulinit itself.
func (p *Proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.InitPID(), sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Wait waits up to timeout for gracefulinit to exit and returns its exit code.
func (p *Proc) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("gracefulinit still running after %v\nstderr:\n%s", timeout, p.Stderr)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Done is closed when gracefulinit has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// WaitFor polls cond every 10ms until it holds or timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Children lists the direct children of pid, read from /proc.
func Children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Descendants lists every process below pid.
func Descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range Children(p) {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// State is the one-letter state of pid from /proc/PID/stat ("Z" for a zombie), or "" if gone.
func State(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}
