// Package proctree reads what the tests and the benchmark watch of a
// process tree in /proc (children, state, program), beside the product's
// own internal/procfs.
package proctree

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
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

// State is pid's one-letter state ("Z" for a zombie), or "" if it is gone.
func State(pid int) string {
	f, err := procfs.Stat(pid)
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
