// Package procfs reads the process tree from Linux's /proc: the supervisor
// finds what is left to kill when it is not PID 1 (Descendants), and the
// tests and the benchmark watch what an init does with its children.
package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Children lists pid's direct children. A multi-threaded parent keeps
// them per thread, so every task is read.
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

// Descendants lists every process below pid, parents before children. It
// reads every process's parent from its stat file, which every kernel has
// (the children files Children reads need CONFIG_PROC_CHILDREN).
func Descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := Parent(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Parent is pid's parent, false if pid is gone.
func Parent(pid int) (int, bool) {
	f, err := Stat(pid)
	if err != nil || len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// Stat returns the fields of /proc/PID/stat that follow the command name:
// [0] is field 3 of proc(5) (the state), [1] the parent pid, and so on.
func Stat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// State is pid's one-letter state ("Z" for a zombie), or "" if it is gone.
func State(pid int) string {
	f, err := Stat(pid)
	if err != nil || len(f) == 0 {
		return ""
	}
	return f[0]
}

// Exe is the program pid runs, or "" if it is gone (or not ours to read).
func Exe(pid int) string {
	s, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return s
}

// ExecedChild returns a child of pid that runs another program than pid
// itself, i.e. one past its exec, or 0. Before that, a signal the parent
// forwards may hit the parent's own copy between fork and exec.
//
// pid's own program is read again after its children's: inside unshare,
// pid may exec the init and fork between the reads, and its not yet
// exec'd child would then differ from a stale "unshare". That race, once
// in a few hundred starts, sent signals before dumb-init's child had even
// called setsid, and the forwarded signal went nowhere.
func ExecedChild(pid int) int {
	self := Exe(pid)
	if self == "" {
		return 0
	}
	found := 0
	for _, c := range Children(pid) {
		if e := Exe(c); e != "" && e != self {
			found = c
			break
		}
	}
	if found == 0 || Exe(pid) != self {
		return 0
	}
	return found
}
