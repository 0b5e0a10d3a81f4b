package signals

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is struct kernel_sigaction as the architectures
// gracefulinit ships for (amd64, arm64) lay it out: handler, flags,
// restorer, mask. All zero is SIG_DFL; a handler of 1 is SIG_IGN.
type kernelSigaction [4]uint64

const sigIgn = 1

// sigaction is rt_sigaction(2) without the C library: act, when not nil,
// becomes sig's disposition; old, when not nil, receives the previous one.
// Raw, because os/signal offers no way to read or set a disposition
// outside the runtime's own bookkeeping.
func sigaction(sig syscall.Signal, act, old *kernelSigaction) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// started is the signal state gracefulinit was started with, read before
// Capture changes anything.
var started = readStarted()

type startState struct {
	mask    unix.Sigset_t
	ignored [65]bool
	exact   bool // recorded by the entry stub, before the Go runtime ran
}

// readStarted returns the mask and the ignored signals gracefulinit was
// exec'd with, as the entry stub recorded them (see entry.go). Without the
// stub it reads them as the Go runtime has left them by the time package
// variables are initialised: the runtime has by then installed its own
// handler over an inherited SIG_IGN for every signal but HUP, INT, CONT,
// TSTP, TTIN, TTOU, 32 and 34, and unblocked those it cannot run without
// (HUP, INT, QUIT, ILL, TRAP, ABRT, BUS, FPE, SEGV, TERM, STKFLT, CHLD,
// URG, PROF, SYS, 32 to 34): for those the inherited state is lost.
func readStarted() startState {
	var st startState
	if entryValid == 1 {
		st.exact = true
		st.mask.Val[0] = entryMask
		for sig := 1; sig <= 64; sig++ {
			st.ignored[sig] = entryIgnored&(1<<(sig-1)) != 0
		}
		return st
	}
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, nil, &st.mask)
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		var old kernelSigaction
		if sig != unix.SIGKILL && sig != unix.SIGSTOP && sigaction(sig, nil, &old) == nil && old[0] == sigIgn {
			st.ignored[sig] = true
		}
	}
	return st
}

// StartExact reports whether the signal state gracefulinit hands the app
// was recorded by the entry stub before the Go runtime ran (a build linked
// with -ldflags '-E '+EntrySymbol), or only read afterwards, where the
// runtime has already changed part of it (see readStarted).
func StartExact() bool { return started.exact }

// StartIgnored reports whether sig was ignored when gracefulinit started
// (as far as the Go runtime lets it know, see readStarted). The app starts
// with such a signal ignored, as nohup and a shell's trap "" HUP mean it
// to; gracefulinit still forwards it, as tini does.
func StartIgnored(sig syscall.Signal) bool {
	return sig > 0 && int(sig) < len(started.ignored) && started.ignored[sig]
}

// ForFork prepares the calling thread, which must be locked to its
// goroutine, to fork the app with the signal state gracefulinit was
// started with, as tini does, and returns the function that undoes it
// once the child exists:
//   - the thread's mask becomes the inherited one (the child takes the
//     forking thread's mask). Signals arriving meanwhile wait, pending,
//     until restore unblocks them again: none is lost;
//   - every Catchable signal ignored at start is ignored again, so the
//     fork keeps SIG_IGN (the Go runtime resets every signal it handles to
//     SIG_DFL in the child), and caught on ch by restore (CaptureRest
//     would catch it there anyway). One sent to gracefulinit in between is
//     dropped, as the app, which does not exist yet, would have ignored it.
//     The runtime keeps its handler on the faults (ILL, TRAP, BUS, FPE,
//     SEGV, STKFLT, SYS), URG, PROF and 33 (preemption, profiler, thread
//     calls) whatever os/signal is asked: those cannot be handed over
//     ignored, and the app starts with them at SIG_DFL. So do TERM and
//     CHLD, unlike under tini: ignored for the fork, a TERM sent meanwhile
//     would be lost to the stop sequence, and the kernel would reap an app
//     that exits meanwhile, its exit status with it.
//
// Every other signal reaches exec caught (by the runtime's handler, the
// no-op one of catchUncatchable, or left at SIG_DFL), and exec resets a
// caught signal to SIG_DFL: the app gets its default. Nothing else is at
// SIG_IGN here: Capture's signal.Ignore of ILL, TRAP, STKFLT and SYS only
// makes the runtime's handler drop them (they are not os/signal-notifiable,
// so the runtime never sets SIG_IGN for them); TestNothingIgnoredButAtStart
// checks that.
func ForFork(ch chan<- os.Signal) (restore func()) {
	var cur unix.Sigset_t
	maskErr := unix.PthreadSigmask(unix.SIG_SETMASK, &started.mask, &cur)
	recatch := handedIgnored(&started)
	if len(recatch) > 0 {
		signal.Ignore(recatch...)
	}
	return func() {
		if len(recatch) > 0 {
			signal.Notify(ch, recatch...)
		}
		if maskErr == nil {
			_ = unix.PthreadSigmask(unix.SIG_SETMASK, &cur, nil)
		}
	}
}

// handedIgnored lists the signals ForFork ignores for the fork so the app
// starts with them ignored: the Catchable ones ignored at start, but for
// those it cannot or must not (see ForFork).
func handedIgnored(st *startState) []os.Signal {
	var out []os.Signal
	for _, sig := range Catchable() {
		switch sig {
		case unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE, unix.SIGSEGV,
			unix.SIGSTKFLT, unix.SIGSYS:
			continue // the runtime keeps its handler: os/signal cannot ignore them
		case unix.SIGTERM, unix.SIGCHLD:
			continue // gracefulinit's own stop sequence and reaping
		}
		if st.ignored[sig] {
			out = append(out, sig)
		}
	}
	return out
}
