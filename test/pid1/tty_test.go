package pid1_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/pidns"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// openPTY returns a new pseudo-terminal's master and slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// tpgid is the foreground process group of pid's terminal, from /proc.
func tpgid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 6 {
		return 0
	}
	n, _ := strconv.Atoi(f[5])
	return n
}

// TestCtrlC: gracefulinit started on a terminal (as `docker run -it` does)
// hands the foreground to the app, so Ctrl-C reaches the app straight from
// the kernel, not through gracefulinit, and gracefulinit exits with the
// app's code.
func TestCtrlC(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "testdata", "pid1", "trap-int.sh")
	bin := testbin.Binary(t)
	forModes(t, func(t *testing.T, m mode) {
		master, slave := openPTY(t)
		rec := newRecorder(t, "app")
		argv := []string{bin, "-v", "--", "sh", script, rec.path, "42"}
		if m.pid1 {
			argv = pidns.Argv(argv...)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		// A new session whose controlling terminal is the pty (fd 0).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		out := &testbin.SafeBuffer{}
		copied := make(chan struct{})
		go func() { _, _ = io.Copy(out, master); close(copied) }()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			select {
			case <-done: // reaped: the group id may be someone else's now
			default:
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				select {
				case <-done:
				case <-time.After(exitTimeout):
				}
			}
			if t.Failed() {
				t.Logf("terminal output:\n%s", out)
			}
		})

		if !testbin.WaitFor(context.Background(), eventTimeout, rec.ready) {
			t.Fatalf("app never became ready; terminal:\n%s", out)
		}
		init := cmd.Process.Pid
		if m.pid1 {
			init = proctree.Children(cmd.Process.Pid)[0]
		}
		var app int
		for _, c := range proctree.Children(init) {
			if pg, err := syscall.Getpgid(c); err == nil && pg == c {
				app = c
			}
		}
		if app == 0 {
			t.Fatalf("no app below gracefulinit %d", init)
		}
		if fg := tpgid(app); fg != app {
			t.Fatalf("terminal's foreground group is %d, want the app's %d", fg, app)
		}

		if _, err := master.Write([]byte{0x03}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(exitTimeout):
			t.Fatalf("gracefulinit still running %v after Ctrl-C", exitTimeout)
		}
		if code := cmd.ProcessState.ExitCode(); code != 42 {
			t.Fatalf("exit code %d, want the app's 42", code)
		}
		if got := rec.signals(); !slices.Equal(got, []string{"INT"}) {
			t.Fatalf("app recorded %v, want [INT]", got)
		}
		select {
		case <-copied:
		case <-time.After(eventTimeout):
		}
		// Had gracefulinit been in the foreground it would have caught the
		// INT and forwarded it: the app would record it all the same.
		if strings.Contains(out.String(), "signal=SIGINT") {
			t.Fatalf("gracefulinit handled the SIGINT itself:\n%s", out)
		}
		if !strings.Contains(out.String(), `msg="child started"`) {
			t.Fatalf("no debug log on the terminal:\n%s", out)
		}
	})
}
