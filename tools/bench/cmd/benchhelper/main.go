// Command benchhelper is the child the benchmark runs under each init. One
// binary with several roles keeps the benchmark to a single extra build:
//
//	benchhelper recorder           prints "ready", then "sig NS" for every SIGUSR1 (NS: CLOCK_MONOTONIC ns when its handler ran); exits on SIGTERM
//	benchhelper orphans N K P HOW  creates N orphans that exit at once, through intermediates of K that exit without waiting, P at a time;
//	                               prints "start NS", then "done NS N" once every orphan was handed to the reaper; waits for SIGTERM
//	benchhelper spawn K HOW        (intermediate) creates K children and exits without waiting for them. HOW is "exec"
//	                               (each child runs true: a real program, as a shell script's) or "fork" (each child
//	                               exits right after fork: the cheapest orphan there is)
//	benchhelper httpserver PORT    serves HTTP on 127.0.0.1:PORT; prints "ready", and "term NS" when SIGTERM arrives, then exits 0
//
// Timestamps are CLOCK_MONOTONIC so the benchmark, another process on the
// same machine, can subtract its own readings from them.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lifetime bounds every role: if the benchmark dies without cleaning up,
// its helpers do not outlive it by much.
const lifetime = 10 * time.Minute

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchhelper recorder|orphans N K P HOW|spawn K HOW|httpserver PORT")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "recorder":
		err = recorder()
	case "orphans":
		err = orphans(os.Args[2:])
	case "spawn":
		err = spawn(os.Args[2:])
	case "httpserver":
		err = httpServer(os.Args[2:])
	default:
		err = fmt.Errorf("unknown role %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchhelper %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func mono() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// out is unbuffered on purpose: every line must reach the benchmark when
// it is written, not when a buffer fills.
var out = os.Stdout

func recorder() error {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	limit := time.After(lifetime)
	for {
		select {
		case s := <-sigs:
			// The timestamp is taken first: formatting and writing are not
			// part of the latency being measured.
			now := mono()
			if s != syscall.SIGUSR1 {
				return nil
			}
			if _, err := fmt.Fprintf(out, "sig %d\n", now); err != nil {
				return err
			}
		case <-limit:
			return errors.New("lifetime exceeded")
		}
	}
}

func atoi(args []string, i int, name string) (int, error) {
	if len(args) <= i {
		return 0, fmt.Errorf("missing %s", name)
	}
	n, err := strconv.Atoi(args[i])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad %s %q", name, args[i])
	}
	return n, nil
}

func orphans(args []string) error {
	n, err := atoi(args, 0, "N")
	if err != nil {
		return err
	}
	k, err := atoi(args, 1, "K")
	if err != nil {
		return err
	}
	p, err := atoi(args, 2, "P")
	if err != nil {
		return err
	}
	if len(args) < 4 || (args[3] != "exec" && args[3] != "fork") {
		return errors.New("HOW must be exec or fork")
	}
	how := args[3]
	self, err := os.Executable()
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	if _, err := fmt.Fprintf(out, "start %d\n", mono()); err != nil {
		return err
	}
	batches := make(chan int)
	go func() {
		for left := n; left > 0; left -= k {
			batches <- min(k, left)
		}
		close(batches)
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				// An intermediate's children are re-parented to the
				// reaper under test when it exits: that is what makes them
				// orphans. Waiting for the intermediate itself keeps it
				// from being one.
				cmd := exec.Command(self, "spawn", strconv.Itoa(b), how)
				cmd.Stderr = os.Stderr
				if err := cmd.Run(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("intermediate: %v", err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if _, err := fmt.Fprintf(out, "done %d %d\n", mono(), n); err != nil {
		return err
	}
	select {
	case <-sigs:
		return nil
	case <-time.After(lifetime):
		return errors.New("lifetime exceeded")
	}
}

func spawn(args []string) error {
	k, err := atoi(args, 0, "K")
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return errors.New("missing HOW")
	}
	switch args[1] {
	case "fork":
		return forkExit(k)
	case "exec":
		truePath, err := exec.LookPath("true")
		if err != nil {
			return err
		}
		// No inherited files: an orphan holding the benchmark's pipe
		// would keep it open after everything else exited.
		attr := &syscall.ProcAttr{}
		for range k {
			if _, err := syscall.ForkExec(truePath, []string{"true"}, attr); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("HOW %q: want exec or fork", args[1])
}

// forkExit forks k children that exit at once with status 0. A forked Go
// process may not run Go code, so the child does nothing but the exit
// system call; it has a single thread, nobody signals it, and it touches no
// memory, which is what makes this safe in practice. The parent only ever
// runs this on its own short-lived process.
func forkExit(k int) error {
	for range k {
		pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("fork: %v", errno)
		}
		if pid == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
	return nil
}

func httpServer(args []string) error {
	port, err := atoi(args, 0, "PORT")
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("ok\n"))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	w := bufio.NewWriter(out)
	fmt.Fprintln(w, "ready")
	if err := w.Flush(); err != nil {
		return err
	}
	select {
	case <-sigs:
		fmt.Fprintf(w, "term %d\n", mono())
		if err := w.Flush(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		return nil
	case err := <-errc:
		return err
	case <-time.After(lifetime):
		return errors.New("lifetime exceeded")
	}
}
