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

// children lists pid's direct children. A multi-threaded parent keeps
// them per thread, so every task is read.
func children(pid int) []int {
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

// descendants lists every process below pid, parents before children.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children(p) {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat is the part of /proc/PID/stat the benchmark reads.
type procStat struct {
	State        string
	PPID         int
	UTime, STime uint64 // clock ticks
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
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

// execedChild returns a child of pid that runs another program than pid
// itself, i.e. one past its exec. Before that, a signal the init forwards
// may hit the init's own copy between fork and exec.
//
// pid's own program is read again after its children's: inside unshare,
// pid may exec the init and fork between the reads, and its not yet
// exec'd child would then differ from a stale "unshare". That race, once
// in a few hundred starts, sent signals before dumb-init's child had even
// called setsid, and the forwarded signal went nowhere.
func execedChild(pid int) int {
	exe := func(p int) string {
		s, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		if err != nil {
			return ""
		}
		return s
	}
	self := exe(pid)
	if self == "" {
		return 0
	}
	found := 0
	for _, c := range children(pid) {
		if e := exe(c); e != "" && e != self {
			found = c
			break
		}
	}
	if found == 0 || exe(pid) != self {
		return 0
	}
	return found
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
	for _, p := range append([]int{pid}, children(pid)...) {
		st, err := readStat(p)
		if err != nil {
			parts = append(parts, fmt.Sprintf("pid %d gone", p))
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
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
