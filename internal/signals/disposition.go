package signals

import (
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

// DefaultIgnored sets every signal that gracefulinit ignores right now to
// SIG_DFL, for the moment the child is forked, so the app starts with
// default dispositions everywhere (exec resets caught signals, not ignored
// ones), and returns the function that puts SIG_IGN back. A safety net:
// after Capture the runtime or Capture handles every signal, 32 and 34
// included, so normally there is nothing to flip, and no moment in which
// gracefulinit would die of a signal it meant to ignore.
func DefaultIgnored() (restore func()) {
	var dfl kernelSigaction
	var reset []syscall.Signal
	var saved []kernelSigaction
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			continue
		}
		var old kernelSigaction
		if sigaction(sig, nil, &old) != nil || old[0] != sigIgn {
			continue
		}
		if sigaction(sig, &dfl, nil) == nil {
			reset = append(reset, sig)
			saved = append(saved, old)
		}
	}
	return func() {
		for i, sig := range reset {
			_ = sigaction(sig, &saved[i], nil)
		}
	}
}
