package shutdown

import (
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

// TestHungRegistryNeverMakesTheExitLate: with a registry that accepts and
// never answers, every registry step after the app's exit (Eureka's
// deregistration on close, in register mode or with
// --eureka-deregister-on-exit) gives up by the kill point, deadline minus
// kill margin. gracefulinit used to wait until the deadline itself, racing
// the runtime's SIGKILL, which loses the summary and the app's exit code.
func TestHungRegistryNeverMakesTheExitLate(t *testing.T) {
	t.Parallel()
	const grace, margin = 6 * time.Second, 2 * time.Second
	tests := []struct {
		name string
		mode []string
	}{
		{"eureka mark, deregister on exit", []string{"--eureka-mode", "mark", "--eureka-deregister-on-exit"}},
		{"eureka register", []string{"--eureka-mode", "register"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := registrytest.Hanging(t)
			init := append([]string{
				"--grace-period", grace.String(), "--kill-margin", margin.String(), "--stop-timeout", "2s", "--drain", "1s", "--drain-quiet", "0",
				"--registry", "eureka", "--eureka-url", "http://" + addr + "/eureka", "--service", "hung",
				"--port", "8080", "--ip", "127.0.0.1", "--registry-timeout", "10s",
			}, tt.mode...)
			a := start(t, appConfig{pid1: true, init: init,
				child: []string{"sh", "-c", `trap 'exit 7' TERM; echo READY; while :; do sleep 0.05; done`}})
			a.waitStdout("READY", 10*time.Second)
			time.Sleep(300 * time.Millisecond) // the online step is under way, hanging
			sent := a.term()
			code, exited := a.wait(3 * grace)
			took := exited.Sub(sent)
			if code != 7 {
				t.Errorf("exit code %d, want the app's 7\nstderr:\n%s", code, a.p.Stderr)
			}
			// The kill point is grace - margin after SIGTERM; the margin
			// is there for the runtime, so gracefulinit's own exit must
			// come before the kill point, with slack for a loaded machine.
			if limit := grace - margin + margin/4; took > limit {
				t.Errorf("gracefulinit exited %v after SIGTERM, want by the kill point %v (+%v slack); deadline %v\nstderr:\n%s",
					took.Round(time.Millisecond), grace-margin, margin/4, grace, a.p.Stderr)
			}
			s := a.summary()
			if s.ExitCode != 7 || s.ChildCode != 7 || s.Killed || s.Record.Str("close") != "abandoned" {
				t.Errorf("summary %+v: want the app's exit 7, not killed, close abandoned", s)
			}
			t.Logf("SIGTERM to exit: %v (kill point %v, deadline %v)", took.Round(time.Millisecond), grace-margin, grace)
		})
	}
}

// TestTermDuringCloseAfterOwnExit: the app exits on its own, and the close
// (Eureka's deregistration, against a registry that never answers) may take
// up to --registry-timeout. A SIGTERM then starts the runtime's clock:
// gracefulinit must be gone by that signal's kill point with the app's code,
// not when the registry timeout runs out.
func TestTermDuringCloseAfterOwnExit(t *testing.T) {
	t.Parallel()
	const grace, margin = 6 * time.Second, 2 * time.Second
	addr := registrytest.Hanging(t)
	a := start(t, appConfig{pid1: true, init: []string{
		"--grace-period", grace.String(), "--kill-margin", margin.String(), "--stop-timeout", "2s", "--drain", "1s", "--drain-quiet", "0",
		"--registry", "eureka", "--eureka-mode", "register", "--eureka-url", "http://" + addr + "/eureka", "--service", "hung",
		"--port", "8080", "--ip", "127.0.0.1", "--registry-timeout", "30s",
	}, child: []string{"sh", "-c", `echo READY; sleep 1; exit 5`}})
	a.waitStdout("READY", 10*time.Second)
	pid := a.p.InitPID() // while the app lives: InitPID waits for a child
	time.Sleep(2 * time.Second)
	if a.p.Exited() {
		t.Fatalf("gracefulinit exited before the SIGTERM\nstderr:\n%s", a.p.Stderr)
	}
	sent := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, exited := a.wait(40 * time.Second)
	took := exited.Sub(sent)
	if code != 5 {
		t.Errorf("exit code %d, want the app's 5\nstderr:\n%s", code, a.p.Stderr)
	}
	if limit := grace - margin + margin/4; took > limit {
		t.Errorf("gracefulinit exited %v after SIGTERM, want by the kill point %v (+%v slack)\nstderr:\n%s",
			took.Round(time.Millisecond), grace-margin, margin/4, a.p.Stderr)
	}
	t.Logf("SIGTERM during the close to exit: %v (kill point %v)", took.Round(time.Millisecond), grace-margin)
}
