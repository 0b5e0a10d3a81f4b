// Package procfs reads the process tree from Linux's /proc: the supervisor
// finds what is left to kill when it is not PID 1 (Descendants). What only
// the tests and the benchmark read is in internal/testkit/proctree.
package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Descendants lists every process below pid, parents before children. It
// reads every process's parent from its stat file, which every kernel has
// (the per-task children files need CONFIG_PROC_CHILDREN).
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
