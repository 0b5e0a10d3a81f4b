// Command pid1helper is the child (and wrapper) that test/pid1 runs under
// gracefulinit. It is built by the tests; it is not part of the product.
//
//	pid1helper record -log FILE [-exit-after N] [-code C] [-grandchild FILE2]
//	    Appends "ready <pid>" to FILE once its handlers are installed, then one
//	    line per signal received (HUP INT QUIT USR1 USR2 TERM CONT WINCH ALRM),
//	    each line written with a single write so concurrent readers never see
//	    half a line. After N signals (0: never) it exits with code C.
//	    -grandchild starts a second recorder logging to FILE2 in the same
//	    process group, killed by the kernel when this recorder dies.
//
//	pid1helper wrap [-block SIGS] [-ignore SIGS] -- CMD [ARGS...]
//	    Blocks SIGS (comma list of names or numbers), sets SIG_IGN for -ignore SIGS, then
//	    execs CMD: a parent that leaves a dirty signal state behind, as some
//	    shells, CI runners and container runtimes do.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recorded are the signals a recorder logs. SIGTERM is among them, so the
// recorder outlives a forwarded TERM and tests can keep sending.
var recorded = []syscall.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGTERM, unix.SIGCONT, unix.SIGWINCH, unix.SIGALRM,
	syscall.Signal(40), syscall.Signal(64), // real-time: recorded by number
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pid1helper record|wrap ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "record":
		err = record(os.Args[2:])
	case "wrap":
		err = wrap(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pid1helper:", err)
		os.Exit(2)
	}
}

func record(args []string) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	logPath := fs.String("log", "", "file to append records to")
	exitAfter := fs.Int("exit-after", 0, "exit after this many signals (0: never)")
	code := fs.Int("code", 0, "exit code after -exit-after signals")
	grandchild := fs.String("grandchild", "", "start a grandchild recorder logging here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logPath == "" {
		return fmt.Errorf("record: -log is required")
	}
	f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	ch := make(chan os.Signal, 64)
	list := make([]os.Signal, len(recorded))
	for i, s := range recorded {
		list[i] = s
	}
	signal.Notify(ch, list...)

	if *grandchild != "" {
		// Pdeathsig is tied to the forking thread; keep main on one thread
		// so the grandchild dies with this process and never outlives a test.
		runtime.LockOSThread()
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command(self, "record", "-log", *grandchild)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		go func() { _ = cmd.Wait() }()
	}

	if _, err := fmt.Fprintf(f, "ready %d\n", os.Getpid()); err != nil {
		return err
	}
	n := 0
	for s := range ch {
		name := strings.TrimPrefix(unix.SignalName(s.(syscall.Signal)), "SIG")
		if name == "" {
			name = strconv.Itoa(int(s.(syscall.Signal)))
		}
		if _, err := f.WriteString(name + "\n"); err != nil {
			return err
		}
		n++
		if *exitAfter > 0 && n >= *exitAfter {
			os.Exit(*code)
		}
	}
	return nil
}

func parseSigs(list string) ([]syscall.Signal, error) {
	var out []syscall.Signal
	for _, name := range strings.Split(list, ",") {
		if name == "" {
			continue
		}
		s := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(name), "SIG"))
		if n, err := strconv.Atoi(name); err == nil && n > 0 && n <= 64 {
			s = syscall.Signal(n)
		}
		if s == 0 {
			return nil, fmt.Errorf("unknown signal %q", name)
		}
		out = append(out, s)
	}
	return out, nil
}

func wrap(args []string) error {
	fs := flag.NewFlagSet("wrap", flag.ContinueOnError)
	block := fs.String("block", "", "signals to block (comma list)")
	ignore := fs.String("ignore", "", "signals to ignore (comma list)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return fmt.Errorf("wrap: no command")
	}
	blocked, err := parseSigs(*block)
	if err != nil {
		return err
	}
	ignored, err := parseSigs(*ignore)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	// The mask is per thread and execve keeps the calling thread's mask:
	// block on the thread that will exec.
	runtime.LockOSThread()
	// rt_sigaction directly: os/signal cannot touch signal 32, which a
	// careless parent can leave ignored all the same. Exec follows at once,
	// so the Go runtime never sees the change.
	for _, s := range ignored {
		act := [4]uint64{1} // SIG_IGN, no flags, no mask
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); errno != 0 {
			return fmt.Errorf("ignore signal %d: %v", s, errno)
		}
	}
	var set unix.Sigset_t
	for _, s := range blocked {
		set.Val[(s-1)/64] |= 1 << (uint(s-1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}
