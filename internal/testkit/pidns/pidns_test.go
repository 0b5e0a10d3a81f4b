package pidns

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
)

func TestReadyInit(t *testing.T) {
	tests := []struct {
		name     string
		unshared bool
	}{
		{"plain child", false},
		{"PID 1 of a new namespace", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// sh runs sleep as a child, like an init runs its app.
			argv := []string{"sh", "-c", "sleep 60 & wait"}
			if tt.unshared {
				argv = Argv(argv...)
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				_ = cmd.Wait()
			})
			var init int
			if !poll.Within(t.Context(), 10*time.Second, 5*time.Millisecond, func() bool {
				init = ReadyInit(cmd.Process.Pid, tt.unshared)
				return init != 0
			}) {
				t.Fatal("no ready init within 10 s")
			}
			if child := proctree.ExecedChild(init); filepath.Base(proctree.Exe(child)) != "sleep" {
				t.Fatalf("init %d's exec'd child %d runs %q, want sleep", init, child, proctree.Exe(child))
			}
			if tt.unshared == (init == cmd.Process.Pid) {
				t.Fatalf("ReadyInit = %d, launcher %d, unshared %v", init, cmd.Process.Pid, tt.unshared)
			}
			if base := filepath.Base(proctree.Exe(init)); base != "dash" && base != "sh" && base != "bash" {
				t.Fatalf("init %d runs %s, want the shell", init, proctree.Exe(init))
			}
		})
	}
}
