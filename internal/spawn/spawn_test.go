package spawn

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// reapOwn stands in for the supervisor's reaper: it collects only pids
// Start made, so the test process's other children are left alone.
func reapOwn(t *testing.T, pid int) {
	t.Helper()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("wait4 %d: %v", pid, err)
	}
	if !Reaped(pid, ws) {
		t.Fatalf("Reaped(%d) = false for a pid Start made", pid)
	}
}

func TestStartReportsStatus(t *testing.T) {
	tests := []struct {
		name   string
		script string
		kill   bool
		want   string
	}{
		{"exit code", "exit 3", false, "exit status 3"},
		{"exit before Start returns", "exit 0", false, "exit status 0"},
		{"SIGKILL", "sleep 30", true, "killed by signal 9 (killed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, exit, err := Start("/bin/sh", []string{"sh", "-c", tt.script}, &os.ProcAttr{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.kill {
				if err := p.Kill(); err != nil {
					t.Fatal(err)
				}
			}
			reapOwn(t, p.Pid)
			select {
			case ws := <-exit:
				if got := Describe(ws); got != tt.want {
					t.Fatalf("Describe = %q, want %q", got, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no status delivered")
			}
			// A pid reaped once is not Start's any more.
			if Reaped(p.Pid, 0) {
				t.Fatal("Reaped twice for one pid")
			}
		})
	}
}

func TestReapedUnknownPid(t *testing.T) {
	if Reaped(1<<30, 0) {
		t.Fatal("Reaped reported a pid Start never made")
	}
}
