// Command gofloor is the least a Go program can do and still be an init:
// catch a handful of signals, start the child in its own process group,
// forward what it is sent, reap every zombie, exit with the child's code.
// No flags, no logging, no registry, no drain.
//
// The benchmark runs it beside gracefulinit and the C inits to show what
// the Go runtime costs by itself on the machine at hand: a goal that this
// program misses in the same run cannot be met by any init written in Go.
// Built with -tags deps it also links the registry libraries gracefulinit's
// full build links (nacos-sdk-go and fargo), unused, to show what their
// package initialisation costs on its own.
//
// Usage: gofloor -- COMMAND [ARGS...]
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// forwarded is what the benchmark sends; a real init would catch them all.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCHLD}

func main() {
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "--version" {
		fmt.Printf("gofloor (%s)\n", runtime.Version())
		return
	}
	if len(args) < 2 || args[0] != "--" {
		fmt.Fprintln(os.Stderr, "usage: gofloor -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	os.Exit(run(args[1:]))
}

func run(argv []string) int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, forwarded...)
	if os.Getpid() != 1 {
		if err := prctlSubreaper(); err != nil {
			fmt.Fprintln(os.Stderr, "gofloor: subreaper:", err)
		}
	}
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "gofloor: %s: %v\n", argv[0], err)
		return 127
	}
	for {
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || p <= 0 {
				break
			}
			if p == pid {
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
		if s := (<-sigs).(syscall.Signal); s != syscall.SIGCHLD {
			_ = syscall.Kill(pid, s)
		}
	}
}

func prctlSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
