package shutdown

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStopSignalQuit: --stop-signal QUIT replaces TERM after the drain. A
// shell records which signals it got; the JVM shows why QUIT rarely suits
// one: it prints a thread dump, keeps running and is killed at the margin.
func TestStopSignalQuit(t *testing.T) {
	t.Parallel()
	t.Run("recorder", func(t *testing.T) {
		t.Parallel()
		// sleep in short steps: a shell runs traps between commands.
		script := `trap 'echo QUIT >> {dir}/signals; exit 0' QUIT
trap 'echo TERM >> {dir}/signals' TERM
echo READY
while :; do sleep 0.05; done`
		a := start(t, appConfig{pid1: true, init: []string{"--drain", "1s", "--stop-signal", "QUIT"}, child: []string{"sh", "-c", script}})
		a.waitReady()
		sent := a.term()
		code, exited := a.wait(20 * time.Second)
		if code != 0 {
			t.Errorf("exit code %d, want 0 (the recorder's exit on QUIT)", code)
		}
		between(t, "SIGTERM to exit", exited.Sub(sent), time.Second-early, time.Second+late)
		b, err := os.ReadFile(filepath.Join(filepath.Dir(a.events), "signals"))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "QUIT\n" {
			t.Errorf("the child got %q, want only QUIT", b)
		}
		s := a.summary()
		if s.StopSignal != "SIGQUIT" || s.Signal != "SIGTERM" || s.DrainEnd != "ceiling" || s.Killed || s.ExitCode != 0 {
			t.Errorf("summary %+v: want stop_signal SIGQUIT after a SIGTERM, drain_end max, not killed, exit 0", s)
		}
	})
	t.Run("jvm", func(t *testing.T) {
		t.Parallel()
		a := start(t, appConfig{pid1: true, init: []string{"--grace-period", "4s", "--kill-margin", "1s", "--stop-timeout", "2s", "--stop-signal", "QUIT"}})
		a.waitReady()
		sent := a.term()
		code, exited := a.wait(20 * time.Second)
		if code != 137 {
			t.Errorf("exit code %d, want 137 (killed at the margin)", code)
		}
		between(t, "SIGTERM to exit", exited.Sub(sent), 3*time.Second-early, 3*time.Second+late)
		if !strings.Contains(a.p.Stdout.String(), "Full thread dump") {
			t.Errorf("no thread dump on stdout: the JVM did not get QUIT")
		}
		if a.hasEvent("term") || a.hasEvent("hook-start") {
			t.Errorf("the JVM got TERM: %v", a.evs())
		}
		if s := a.summary(); s.StopSignal != "SIGQUIT" || !s.Killed || s.ExitCode != 137 {
			t.Errorf("summary %+v: want stop_signal SIGQUIT, killed, exit 137", s)
		}
	})
}
