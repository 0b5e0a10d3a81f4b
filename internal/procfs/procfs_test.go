package procfs

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
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
		for _, c := range Descendants(cmd.Process.Pid) {
			if p, err := os.FindProcess(c); err == nil {
				_ = p.Kill()
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if kids := Descendants(cmd.Process.Pid); len(kids) == 1 && comm(kids[0]) == "sleep" {
			return cmd.Process.Pid, kids[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("sh did not start sleep")
	return 0, 0
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

func TestTree(t *testing.T) {
	sh, sleep := startTree(t)
	self := os.Getpid()
	if d := Descendants(self); !slices.Contains(d, sh) || !slices.Contains(d, sleep) ||
		slices.Index(d, sh) > slices.Index(d, sleep) {
		t.Errorf("Descendants(self) = %v, want sh %d before sleep %d", d, sh, sleep)
	}
	f, err := Stat(sleep)
	if err != nil || len(f) < 2 || f[1] != strconv.Itoa(sh) {
		t.Errorf("Stat(sleep) = %v, %v; want the parent %d in [1]", f, err, sh)
	}
	if p, ok := Parent(sleep); !ok || p != sh {
		t.Errorf("Parent(sleep) = %d, %v; want %d", p, ok, sh)
	}
}

func TestGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if _, err := Stat(pid); err == nil {
		t.Fatal("Stat of a reaped process succeeded")
	}
	if _, ok := Parent(pid); ok {
		t.Fatal("Parent of a reaped process found")
	}
	if d := Descendants(pid); len(d) != 0 {
		t.Fatalf("Descendants of a reaped process = %v", d)
	}
}
