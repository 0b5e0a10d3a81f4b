package shutdown

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestKillBeforeDeadline: an app that ignores TERM is SIGKILLed, with all
// its descendants, kill-margin before the grace deadline; gracefulinit exits
// 137. As PID 1 the namespace dies with it; as a plain subreaper it must
// find every descendant itself, including ones that left the child's
// process group or were orphaned.
func TestKillBeforeDeadline(t *testing.T) {
	t.Parallel()
	timeline := []string{"--grace-period", "6s", "--kill-margin", "1s", "--stop-timeout", "3s"}
	// A shell child whose descendants escape the process group (setsid) and
	// the parent chain (a double fork orphans the second sleep).
	escapee := []string{"sh", "-c", `trap '' TERM
setsid sleep 1000 &
(setsid sleep 1001 &)
sleep 1002 &
echo READY
wait`}
	tests := []struct {
		name  string
		pid1  bool
		child []string
		procs int // descendants expected below gracefulinit before the stop
	}{
		{name: "PID 1, JVM with grandchildren", pid1: true, procs: 3},
		{name: "subreaper, JVM with grandchildren", pid1: false, procs: 3},
		{name: "subreaper, escaped grandchildren", pid1: false, child: escapee, procs: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := start(t, appConfig{pid1: tt.pid1, init: timeline, child: tt.child, jvm: []string{"--ignore-term", "--spawn", "2"}})
			a.waitReady()
			var tree []procID
			if !testbin.WaitFor(context.Background(), 10*time.Second, func() bool {
				tree = a.tree()
				return len(tree) >= tt.procs
			}) {
				t.Fatalf("%d processes below gracefulinit, want %d: %v", len(tree), tt.procs, tree)
			}
			sent := a.term()
			code, exited := a.wait(20 * time.Second)
			if code != 137 {
				t.Errorf("exit code %d, want 137 (SIGKILLed child)", code)
			}
			// Kill at grace-period - kill-margin = 5 s; the 6 s deadline must
			// not be reached.
			between(t, "SIGTERM to gracefulinit's exit", exited.Sub(sent), 5*time.Second-early, 5*time.Second+late)
			s := a.summary()
			if !s.Killed || s.ExitCode != 137 || s.ChildCode != 137 || s.DrainEnd != "none" {
				t.Errorf("summary %+v: want killed, exit 137, drain_end none", s)
			}
			between(t, "summary child_exit_at", s.ChildExitAt, 5*time.Second-early, 6*time.Second)
			if tt.child == nil && !a.hasEvent("term") {
				t.Errorf("the JVM never saw TERM: %v", a.evs())
			}
			// Killed orphans are reaped by the host's init, late: give them
			// a moment to turn into zombies or vanish.
			var left []string
			testbin.WaitFor(context.Background(), 3*time.Second, func() bool {
				left = left[:0]
				for _, id := range tree {
					if id.alive() {
						left = append(left, id.String())
					}
				}
				return len(left) == 0
			})
			if len(left) > 0 {
				t.Errorf("still running after gracefulinit exited: %s", strings.Join(left, ", "))
			}
		})
	}
}
