package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat. Linux
// has reported 100 on every architecture Go supports for decades.
const clkTck = 100

// mono reads CLOCK_MONOTONIC, the clock the helpers stamp their lines with.
func mono() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// countChildren counts pid's direct children without building a list: the
// reaping benchmark calls it every couple of milliseconds while thousands
// of orphans exist.
func countChildren(pid int) int {
	n := 0
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// The file is "pid pid pid " with a trailing space.
		n += bytes.Count(b, []byte{' '})
	}
	return n
}

// procStat is the part of /proc/PID/stat the benchmark reads.
type procStat struct {
	State        string
	PPID         int
	UTime, STime uint64 // clock ticks
}

func readStat(pid int) (procStat, error) {
	f, err := procfs.Stat(pid)
	if err != nil {
		return procStat{}, err
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var st procStat
	st.State = f[0]
	st.PPID, _ = strconv.Atoi(f[1])
	st.UTime, _ = strconv.ParseUint(f[11], 10, 64)
	st.STime, _ = strconv.ParseUint(f[12], 10, 64)
	return st, nil
}

// cpuNanos sums the run time of pid's live threads from schedstat, which
// counts nanoseconds where utime and stime count 10 ms ticks.
func cpuNanos(pid int) (int64, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d", pid)
	}
	var sum int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		sum += n
	}
	return sum, nil
}

// statusKB reads a "Key:  N kB" line of /proc/PID/status.
func statusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// errTimeout is returned by the waits below when their time runs out.
var errTimeout = errors.New("timed out")

// waitExit blocks until pid has exited (it is a zombie or gone) or
// timeout passes. A pidfd works for processes that are not our children,
// such as an init inside unshare.
func waitExit(pidfd int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errTimeout
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// describeTree says what pid and its children are doing, for an error
// message about a process that did not do what was expected.
func describeTree(pid int) string {
	var parts []string
	for _, p := range append([]int{pid}, proctree.Children(pid)...) {
		st, err := readStat(p)
		if err != nil {
			parts = append(parts, fmt.Sprintf("pid %d gone", p))
			continue
		}
		exe := proctree.Exe(p)
		var sig []string
		for _, k := range []string{"SigPnd", "ShdPnd", "SigBlk"} {
			if v, err := statusField(p, k); err == nil {
				sig = append(sig, k+"="+v)
			}
		}
		parts = append(parts, fmt.Sprintf("pid %d %s state %s %s", p, exe, st.State, strings.Join(sig, " ")))
	}
	return strings.Join(parts, "; ")
}

func statusField(pid int, key string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("no %s", key)
}
