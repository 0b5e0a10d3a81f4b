// Package signals owns gracefulinit's signal dispositions: it names and
// parses signals, decides which ones the supervisor forwards, catches them
// through os/signal (Capture, CaptureRest), installs raw do-nothing handlers
// with rt_sigaction for the two os/signal cannot catch (32, 34), and reads
// and restores the dispositions gracefulinit started with so the app
// inherits them (StartIgnored, ForFork).
package signals

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Parse accepts a signal as "TERM", "SIGTERM" or "15", case-insensitively.
// The error names the input and how to fix it.
func Parse(s string) (syscall.Signal, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty signal name: use a name like TERM or a number like 15")
	}
	if n, err := strconv.Atoi(t); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("unknown signal %q: numbers run from 1 to 64", s)
		}
		return syscall.Signal(n), nil
	}
	if !strings.HasPrefix(t, "SIG") {
		t = "SIG" + t
	}
	if sig := unix.SignalNum(t); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: use a name like TERM, SIGQUIT or a number like 15", s)
}

// Name returns "SIGTERM" style names, or "signal N" for unnamed ones.
func Name(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}

// Catchable lists every signal the supervisor installs a handler for.
// Catching (rather than ignoring) them matters twice: the child then starts
// with default dispositions, because exec resets caught signals but keeps
// ignored ones ignored; and a signal caught by PID 1 is not dropped by the
// kernel the way an unhandled one is.
func Catchable() []syscall.Signal {
	var out []syscall.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case unix.SIGKILL, unix.SIGSTOP:
			continue
		}
		// Go's runtime preempts goroutines with SIGURG and uses 33 for its
		// own per-thread system calls: catching them forwards noise. It
		// consumes SIGPROF for its profiler, whoever sent it, so asking for
		// it delivers nothing. 32 and 34 cannot be caught through os/signal
		// at all (see Uncatchable).
		if s == 32 || s == 33 || s == 34 || s == unix.SIGURG || s == unix.SIGPROF {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Forwarded reports whether the supervisor passes sig on to the child.
// Synchronous faults belong to the supervisor itself; SIGCHLD drives reaping;
// the terminal job-control signals are meant for the foreground group, which
// the child already is when there is a terminal. SIGPIPE is the kernel's
// answer to one of gracefulinit's own writes (to a helper that died, to a
// closed log pipe); os/signal cannot tell it from a kill -PIPE, and no
// runtime or operator sends that to PID 1, so it is never the app's
// business: forwarded, it killed the app (exit 141). It stays caught, so
// the write fails with EPIPE instead of ending gracefulinit, and the app
// still starts with the SIGPIPE disposition gracefulinit inherited.
func Forwarded(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGCHLD, unix.SIGFPE, unix.SIGILL, unix.SIGSEGV, unix.SIGBUS,
		unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS, unix.SIGTTIN, unix.SIGTTOU,
		unix.SIGURG, unix.SIGPIPE:
		return false
	}
	return true
}

// Early lists the signals Capture catches at once: those that would kill,
// crash or stop a Go program that has not asked for them (HUP, INT, TERM
// kill; QUIT and ABRT dump goroutines and exit 2; TSTP, TTIN and TTOU stop
// it), SIGCHLD, which drives reaping, the ones apps and operators
// commonly send (USR1, USR2, WINCH, CONT, ALRM), so that these are
// forwarded from the moment the app exists, and PIPE: caught, a write of
// gracefulinit's own to a closed pipe fails with EPIPE; uncaught, one to
// fd 1 or 2 would end gracefulinit (Go's rule). It is never forwarded.
func Early() []syscall.Signal {
	return []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGABRT,
		unix.SIGCHLD, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT, unix.SIGPIPE, unix.SIGALRM}
}

// Capture starts catching the Early signals and returns the channel they
// arrive on; CaptureRest adds the other catchable ones to it. Call Capture
// as early as possible: until a process has asked for a signal, the Go
// runtime treats SIGTERM as fatal, and as PID 1 that means exit status 2
// with the app killed along with the namespace. Signals that arrive before
// the supervisor reads the channel wait in its buffer.
//
// The split exists because the runtime enables each signal with a
// round trip to a dedicated thread, about 50 µs apiece: all 59 before the
// app starts would add 2 to 4 ms to gracefulinit's start-up.
func Capture() chan os.Signal {
	ch := make(chan os.Signal, 256)
	notify(ch, Early())
	// Sent with kill, these make the runtime dump goroutines and exit 2
	// until someone asks for them; ignoring costs no round trip, and it
	// leaves faults the kernel raises fatal, as they must be.
	signal.Ignore(unix.SIGILL, unix.SIGTRAP, unix.SIGSTKFLT, unix.SIGSYS)
	catchUncatchable()
	return ch
}

// Uncatchable are the signals os/signal cannot catch: the runtime reserves
// them for C libraries (32 for glibc's thread cancellation, 34 for musl's
// synchronous calls) and leaves them at SIG_DFL, which for both means
// death: gracefulinit, when not PID 1, would die of a stray kill -34.
var Uncatchable = []syscall.Signal{32, 34}

// catchUncatchable installs a handler that does nothing for the
// Uncatchable signals. A handler rather than SIG_IGN, because exec resets
// handled signals to SIG_DFL and keeps ignored ones ignored: the app gets
// its defaults without gracefulinit having to flip its own disposition
// around the fork, which would leave it killable in between. The flags and
// the sa_restorer (which x86-64 requires) are copied from the Go runtime's
// own handler for SIGUSR1.
func catchUncatchable() {
	addr := noopHandlerAddr()
	if addr == 0 {
		return
	}
	var act kernelSigaction
	if err := sigaction(unix.SIGUSR1, nil, &act); err != nil || act[0] <= sigIgn {
		return // no Go handler to copy from: leave them alone
	}
	act[0] = uint64(addr)
	for _, sig := range Uncatchable {
		if !StartIgnored(sig) {
			_ = sigaction(sig, &act, nil)
		}
	}
}

// CaptureRest catches every Catchable signal that Capture did not (the
// real-time signals and the rarely sent XCPU, XFSZ, VTALRM, IO, PWR),
// on ch. Until it returns, those signals reach gracefulinit with the Go
// runtime's default treatment: dropped, not fatal (its handler is
// installed, nobody has asked for them yet). The supervisor calls it once
// the child has been started, off its own path.
func CaptureRest(ch chan os.Signal) {
	early := map[syscall.Signal]bool{}
	for _, s := range Early() {
		early[s] = true
	}
	// One call per signal: os/signal holds the lock its dispatcher needs
	// for the whole of a call, and a SIGCHLD or SIGTERM must not wait
	// behind fifty round trips.
	for _, s := range Catchable() {
		if !early[s] {
			signal.Notify(ch, s)
		}
	}
}

func notify(ch chan os.Signal, sigs []syscall.Signal) {
	list := make([]os.Signal, len(sigs))
	for i, s := range sigs {
		list[i] = s
	}
	signal.Notify(ch, list...)
}
