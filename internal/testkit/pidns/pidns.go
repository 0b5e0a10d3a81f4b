// Package pidns runs a program as PID 1 of a fresh PID namespace, the way
// a container runtime starts a pod's init, and finds that init from the
// host: for the tests, the benchmark and the rollout harness.
package pidns

import "github.com/gracefulinit/gracefulinit/internal/testkit/proctree"

// Argv returns argv run as PID 1 of a new PID namespace with its own
// /proc. unshare forks it and waits; --kill-child: when unshare dies (the
// caller kills it, or the caller dies), the kernel kills the init and with
// it the whole namespace, so nothing leaks.
func Argv(argv ...string) []string {
	return append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child=KILL"}, argv...)
}

// ReadyInit returns the host pid of the init that launcher runs, once the
// init has exec'd its child, or 0 before. launcher is unshare started
// through Argv when unshared (the init is its only child), else the init
// itself. By the time its child runs an init has set up its signal
// handling: a signal sent earlier could meet the Go runtime's defaults.
func ReadyInit(launcher int, unshared bool) int {
	init := launcher
	if unshared {
		kids := proctree.Children(launcher)
		if len(kids) == 0 {
			return 0
		}
		init = kids[0]
	}
	if proctree.ExecedChild(init) == 0 {
		return 0
	}
	return init
}
