package proctree

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startTree runs sh with a sleeping child and returns both pids.
func startTree(t *testing.T) (sh, sleep int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range Children(cmd.Process.Pid) {
			_ = kill(c)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if kids := Children(cmd.Process.Pid); len(kids) == 1 && filepath.Base(Exe(kids[0])) == "sleep" {
			return cmd.Process.Pid, kids[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("sh did not start sleep")
	return 0, 0
}

func kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

func TestTree(t *testing.T) {
	sh, sleep := startTree(t)
	if st := waitState(sleep, "S"); st != "S" {
		t.Errorf("State(sleep) = %q, want S", st)
	}
	if got := ExecedChild(sh); got != sleep {
		t.Errorf("ExecedChild(sh) = %d, want %d", got, sleep)
	}
	if got := ExecedChild(sleep); got != 0 {
		t.Errorf("ExecedChild(sleep) = %d, want 0 (no children)", got)
	}
}

// waitState polls pid's state until it is want (a process just started
// may still be running) and returns the last one read.
func waitState(pid int, want string) string {
	st := State(pid)
	for deadline := time.Now().Add(10 * time.Second); st != want && time.Now().Before(deadline); st = State(pid) {
		time.Sleep(5 * time.Millisecond)
	}
	return st
}

func TestZombieThenGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if st := waitState(pid, "Z"); st != "Z" {
		t.Errorf("State of an exited, unreaped child = %q, want Z", st)
	}
	_ = cmd.Wait()
	if st, exe, kids := State(pid), Exe(pid), Children(pid); st != "" || exe != "" || kids != nil {
		t.Fatalf("a reaped process: State %q Exe %q Children %v, want all empty", st, exe, kids)
	}
}
