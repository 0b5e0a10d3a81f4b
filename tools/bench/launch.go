package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/testkit/pidns"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
)

// Style is how an init takes its command line.
type Style string

const (
	StyleGracefulinit Style = "gracefulinit" // gracefulinit [flags] -- CMD
	StyleTini         Style = "tini"         // tini [-s] -- CMD
	StyleDumbInit     Style = "dumb-init"    // dumb-init CMD
	StyleCatatonit    Style = "catatonit"    // catatonit -- CMD
	StyleGoFloor      Style = "gofloor"      // gofloor -- CMD
	StyleDirect       Style = "direct"       // CMD alone: the baseline without an init
)

// Init is one program under test.
type Init struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	Style Style  `json:"style"`
}

// argv is the command line that runs child under the init. extra holds
// gracefulinit flags and is ignored by the other styles. Outside PID 1,
// tini needs -s to do what the others do by default (or, for dumb-init,
// cannot do at all): adopt orphans as a subreaper.
func (in Init) argv(pid1 bool, extra []string, child []string) []string {
	switch in.Style {
	case StyleGracefulinit:
		a := append([]string{in.Path}, extra...)
		return append(append(a, "--"), child...)
	case StyleTini:
		a := []string{in.Path}
		if !pid1 {
			a = append(a, "-s")
		}
		return append(append(a, "--"), child...)
	case StyleDumbInit:
		return append([]string{in.Path}, child...)
	case StyleCatatonit, StyleGoFloor:
		return append([]string{in.Path, "--"}, child...)
	}
	return append([]string(nil), child...)
}

// Mode says where the init runs.
type Mode string

const (
	ModeChild Mode = "child" // a child of the benchmark, as on a developer's shell (the inits act as subreapers where they can)
	ModePID1  Mode = "pid1"  // PID 1 of a new PID namespace (unshare), as in a container
)

// tracked holds the pids the benchmark started and still waits for, so the
// stray sweep leaves them to their exec.Cmd.
var tracked = struct {
	sync.Mutex
	pids map[int]bool
}{pids: map[int]bool{}}

// proc is one running init (or direct child) started by launch.
type proc struct {
	cmd   *exec.Cmd
	mode  Mode
	lines chan string // the child's stdout, line by line; closed at EOF
	errb  *capBuffer
	done  chan struct{} // closed once cmd.Wait returned
}

// launch starts argv, wrapped in unshare for ModePID1. stdout is read line
// by line into p.lines; stderr is kept (bounded) for error messages.
func launch(mode Mode, argv []string) (*proc, error) {
	if mode == ModePID1 {
		argv = pidns.Argv(argv...)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p := &proc{mode: mode, lines: make(chan string, 4096), errb: &capBuffer{max: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = w
	p.cmd.Stderr = p.errb
	// Its own process group keeps a Ctrl-C on the terminal from reaching
	// the inits directly: the benchmark cleans up in order instead. If the
	// benchmark is killed outright, Pdeathsig takes the init (or unshare,
	// and with it the namespace) along. It fires when the forking thread
	// exits, and the Go runtime only retires threads that a goroutine
	// locked and never unlocked, which the benchmark does not do.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	tracked.Lock()
	err = p.cmd.Start()
	if err == nil {
		tracked.pids[p.cmd.Process.Pid] = true
	}
	tracked.Unlock()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() {
		defer r.Close()
		defer close(p.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	go func() {
		_ = p.cmd.Wait()
		tracked.Lock()
		delete(tracked.pids, p.cmd.Process.Pid)
		tracked.Unlock()
		close(p.done)
	}()
	return p, nil
}

// findInit waits until the init's pid is known and it has exec'd its
// child, so that it has set up its signal handling, and returns the pid as
// seen from here: the started process itself, or unshare's child in
// ModePID1.
func (p *proc) findInit(ctx context.Context, timeout time.Duration) (int, error) {
	var pid int
	exited := false
	poll.Within(ctx, timeout, time.Millisecond, func() bool {
		pid = pidns.ReadyInit(p.cmd.Process.Pid, p.mode == ModePID1)
		select {
		case <-p.done:
			exited = true
		default:
		}
		return pid != 0 || exited
	})
	switch {
	case pid != 0:
		return pid, nil
	case exited:
		return 0, fmt.Errorf("%s exited before its child started: %s", p.name(), p.errb.tail())
	}
	return 0, fmt.Errorf("%s: child not started after %v: %s", p.name(), timeout, p.errb.tail())
}

func (p *proc) name() string { return strings.Join(p.cmd.Args, " ") }

// line waits for the next stdout line with the given prefix, dropping
// others, for at most timeout.
func (p *proc) line(ctx context.Context, prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("%s: output ended before %q: %s", p.name(), prefix, p.errb.tail())
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-t.C:
			return "", fmt.Errorf("%s: no %q line after %v: %s", p.name(), prefix, timeout, p.errb.tail())
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// wait waits for the started process to exit, for at most timeout.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return errTimeout
	}
}

// kill ends the process and everything below it, and waits for it. The
// descendants go first: killed after their parent, they would be
// re-parented and could slip past the list.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		pid := p.cmd.Process.Pid
		for _, d := range procfs.Descendants(pid) {
			_ = unix.Kill(d, unix.SIGKILL)
		}
		_ = unix.Kill(pid, unix.SIGKILL)
		if p.wait(10*time.Second) != nil {
			fmt.Fprintf(os.Stderr, "bench: %s (pid %d) did not die after SIGKILL\n", p.name(), pid)
		}
	}
	reapStrays()
}

// reapStrays kills and reaps our children that no exec.Cmd waits for:
// orphans re-parented to the benchmark, which is a subreaper so that
// nothing it starts can escape it.
func reapStrays() {
	tracked.Lock()
	defer tracked.Unlock()
	self := os.Getpid()
	for _, c := range proctree.Children(self) {
		if tracked.pids[c] {
			continue
		}
		// A stray's own children are re-parented to us when it dies and
		// are found by the next sweep.
		_ = unix.Kill(c, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(c, &ws, 0, nil)
	}
}

// capBuffer keeps the last max bytes written to it.
type capBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b = append(c.b, p...)
	if len(c.b) > c.max {
		c.b = append(c.b[:0], c.b[len(c.b)-c.max:]...)
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.b)
}

// tail is the last few hundred bytes, for error messages.
func (c *capBuffer) tail() string {
	s := strings.TrimSpace(c.String())
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	if s == "" {
		return "(no stderr)"
	}
	return "stderr: " + s
}
