package shutdown

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestRejectedTimeline: configurations whose stop sequence cannot work are
// refused before the app starts, with exit status 1 and one line that says
// what to change. Defaults yield (TestYieldingDefaults in test/pid1): only
// values the user set that contradict each other are refused.
func TestRejectedTimeline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{
			name: "budget below zero",
			args: []string{"--grace-period", "5s", "--kill-margin", "1s", "--stop-timeout", "10s"},
			want: "grace-period 5s - kill-margin 1s - stop-timeout 10s = -6s",
		},
		{
			name: "drain over budget",
			args: []string{"--grace-period", "30s", "--stop-timeout", "10s", "--drain", "25s"},
			want: "--drain 25s exceeds the drain budget: grace-period 30s - kill-margin 1s - stop-timeout 10s = 19s",
		},
		{
			name: "kill margin over grace period",
			args: []string{"--grace-period", "2s", "--kill-margin", "2s", "--stop-timeout", "0s"},
			want: "--kill-margin 2s must be shorter than --grace-period 2s",
		},
		{name: "drain-quiet without port", args: []string{"--drain-quiet", "1s"}, want: "--drain-quiet needs the app's ports"},
		{name: "bad duration", args: []string{"--drain", "10x"}, want: `invalid duration "10x"`},
		{name: "negative duration", args: []string{"--stop-timeout=-1s"}, want: `negative duration "-1s"`},
		{name: "bad duration from env", env: []string{"GRACEFULINIT_GRACE_PERIOD=soon"}, want: `GRACEFULINIT_GRACE_PERIOD="soon"`},
		{name: "bad stop signal", args: []string{"--stop-signal", "NOPE"}, want: `unknown signal "NOPE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			marker := filepath.Join(dir, "started")
			args := append(append([]string{}, tt.args...), "--", "sh", "-c", "touch "+marker)
			p := testbin.Start(t, testbin.Options{PID1: true, Env: tt.env, Dir: dir}, args...)
			code := p.Wait(30 * time.Second)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the child was started despite the bad configuration")
			}
			lines := strings.Split(strings.TrimRight(p.Stderr.String(), "\n"), "\n")
			if !strings.HasPrefix(lines[0], "gracefulinit: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("error line %q, want one line containing %q", lines[0], tt.want)
			}
			// One error line, optionally followed by the pointer to --help.
			if len(lines) > 2 || (len(lines) == 2 && !strings.Contains(lines[1], "--help")) {
				t.Errorf("stderr has %d lines, want the error on one line:\n%s", len(lines), p.Stderr)
			}
			if p.Stdout.String() != "" {
				t.Errorf("stdout %q, want nothing", p.Stdout)
			}
		})
	}
}
