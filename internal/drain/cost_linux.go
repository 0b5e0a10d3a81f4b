//go:build linux

package drain

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// cpuCost runs f and returns the CPU time its thread spent, kernel time
// included (a sample's cost is mostly the kernel's), or the wall time where
// the thread's clock cannot be read. Unlike the wall time it does not grow
// when a loaded machine makes f wait for a CPU.
func cpuCost(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var a, b unix.Timespec
	t0 := time.Now()
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &a) != nil {
		f()
		return time.Since(t0)
	}
	f()
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &b) != nil {
		return time.Since(t0)
	}
	return time.Duration(b.Nano() - a.Nano())
}
