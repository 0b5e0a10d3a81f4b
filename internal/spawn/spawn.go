// Package spawn starts PID 1's helper processes (the Nacos SDK helper) so
// that their exit status reaches whoever started them while the
// supervisor's loop stays the only caller of wait4.
//
// Why not cmd.Wait: it would race the supervisor's wait4(-1), which reaps
// every child; whichever wins, the other gets ECHILD and the status is lost.
// Why not a double fork (the helper an orphan the reaper collects
// anonymously): then nobody learns whether the helper exited 2 after a
// panic or was SIGKILLed, and that is what the operator's log line needs.
// So the reaper hands every status it collects to Reaped, and a process
// started here gets its status on a channel keyed by its pid. Start holds
// the table's lock across the fork and the insertion, and Reaped takes it
// after wait4, so a helper that exits before Start returns is still
// delivered.
//
// A starter learns of the death itself from its pipes reaching EOF, which
// needs no reaper at all; the status only adds the reason. Without a
// reaper (a library test) the status never comes and the process stays a
// zombie until the test process exits.
package spawn

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

var (
	mu    sync.Mutex
	waits = map[int]chan syscall.WaitStatus{}
)

// Start starts a process like os.StartProcess. The caller must not Wait
// for it: its status arrives, once, on the returned channel when the
// reaper collects it. Signal it through the returned Process only (a pidfd
// on Linux, so a reaped and reused pid is never hit).
func Start(name string, argv []string, attr *os.ProcAttr) (*os.Process, <-chan syscall.WaitStatus, error) {
	mu.Lock()
	defer mu.Unlock()
	p, err := os.StartProcess(name, argv, attr)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	waits[p.Pid] = ch
	return p, ch, nil
}

// Reaped is called by the owner of wait4 for every pid it collected. It
// reports whether Start started pid; that starter then gets ws.
func Reaped(pid int, ws syscall.WaitStatus) bool {
	mu.Lock()
	ch, ok := waits[pid]
	delete(waits, pid)
	mu.Unlock()
	if ok {
		ch <- ws
	}
	return ok
}

// Describe says how a process ended, the way an operator reads it.
func Describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		s := fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		if ws.CoreDump() {
			s += ", core dumped"
		}
		return s
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}
