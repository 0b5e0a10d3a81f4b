package shutdown

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestTerminationMessage: gracefulinit writes the summary to the
// termination-message file only when it caused the exit, and never over a
// message the app wrote; after a crash the file stays as the app left it,
// so the kubelet's FallbackToLogsOnError still shows the log's tail.
func TestTerminationMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script string // the app; {log} is the file
		term   bool   // send SIGTERM once it runs
		code   int
		want   func(msg string) bool
		what   string
	}{
		{"crash: the file left empty", `echo READY; sleep 0.3; exit 3`, false, 3,
			func(m string) bool { return m == "" }, "empty (the kubelet falls back to the log)"},
		{"crash after writing its own message", `echo READY; echo 'db: connection refused' > {log}; exit 3`, false, 3,
			func(m string) bool { return m == "db: connection refused\n" }, "the app's message"},
		{"stopped, app wrote its message", `trap 'echo "stopped by TERM" > {log}; exit 0' TERM; echo READY; while :; do sleep 0.05; done`, true, 0,
			func(m string) bool { return m == "stopped by TERM\n" }, "the app's message"},
		{"stopped, app silent: the summary", `trap 'exit 0' TERM; echo READY; while :; do sleep 0.05; done`, true, 0,
			func(m string) bool {
				return strings.HasPrefix(m, `msg="shutdown summary" exit_code=0 killed=false drain_end=`)
			}, "the summary, decisive fields first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "termination-log")
			if err := os.WriteFile(log, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			script := strings.ReplaceAll(tc.script, "{log}", log)
			a := start(t, appConfig{pid1: true, init: []string{"--grace-period", "10s", "--drain", "500ms", "--termination-log", log},
				child: []string{"sh", "-c", script}})
			a.waitReady()
			if tc.term {
				a.term()
			}
			if code, _ := a.wait(20 * time.Second); code != tc.code {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, tc.code, a.p.Stderr)
			}
			b, _ := os.ReadFile(log)
			if !tc.want(string(b)) {
				t.Errorf("termination message %q: want %s\nstderr:\n%s", b, tc.what, a.p.Stderr)
			}
		})
	}
}

// TestTerminationMessageDecisiveFieldsFirst: an offline step that fails with
// a very long answer (a long service name in a registry's error) fills the
// 4096 bytes, but exit_code, killed and drain_end come first and survive.
func TestTerminationMessageDecisiveFieldsFirst(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such service", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	long := strings.Repeat("a-very-long-service-name-", 300)
	log := filepath.Join(t.TempDir(), "termination-log")
	a := start(t, appConfig{pid1: true, init: []string{"--grace-period", "10s", "--drain", "500ms", "--drain-quiet", "0", "--registry-timeout", "1s",
		"--offline-http", "GET " + srv.URL + "/services/" + long + "/offline", "--termination-log", log},
		child: []string{"sh", "-c", `trap 'exit 0' TERM; echo READY; while :; do sleep 0.05; done`}})
	a.waitReady()
	a.term()
	if code, _ := a.wait(20 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(b)
	if len(b) > 4096 || !strings.HasPrefix(msg, `msg="shutdown summary" exit_code=0 killed=false drain_end=ceiling `) || !strings.Contains(msg, "a-very-long-service-name-") {
		t.Errorf("termination message (%d bytes) begins %q: want at most 4096 bytes, exit_code, killed and drain_end first, then the long offline error",
			len(b), msg[:min(len(msg), 200)])
	}
}

// TestTerminationLogSymlinkRefused: a symlinked --termination-log is not
// followed: one line naming it, a non-zero exit, the app never started and
// the link's target untouched.
func TestTerminationLogSymlinkRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "termination-log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "started")
	p := testbin.Start(t, testbin.Options{PID1: true, Dir: dir}, "--termination-log", link, "--", "touch", marker)
	if code := p.Wait(20 * time.Second); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	stderr := strings.TrimSpace(p.Stderr.String())
	if first, _, _ := strings.Cut(stderr, "\n"); !strings.Contains(first, "is a symbolic link") {
		t.Errorf("stderr %q: want a line naming the symbolic link", stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the app was started")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me\n" {
		t.Errorf("the link's target was written: %q", b)
	}
}

// TestDumpJustUnderTheStopTime: --dump-before 1 ns under the stop time puts
// the dump 1 ns after a fixed drain's end, which the drain's report
// usually misses: the dump still goes (right after the stop signal), and
// an app that then dies of SIGKILL is reported killed.
func TestDumpJustUnderTheStopTime(t *testing.T) {
	t.Parallel()
	script := `trap '' TERM; trap 'echo DUMP >> {dir}/signals' QUIT; echo READY; while :; do sleep 0.05; done`
	a := start(t, appConfig{pid1: true, init: []string{"--grace-period", "6s", "--kill-margin", "1s", "--stop-timeout", "3s", "--drain", "2s",
		"--dump-signal", "QUIT", "--dump-before", "2999999999ns"}, child: []string{"sh", "-c", script}})
	a.waitReady()
	a.term()
	if code, _ := a.wait(20 * time.Second); code != 137 {
		t.Errorf("exit code %d, want 137 (killed at the margin)", code)
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(a.events), "signals")); string(b) != "DUMP\n" {
		t.Errorf("the app got %q, want one dump signal", b)
	}
	s := a.summary()
	if s.Record.Str("dumped") != "true" && s.Record["dumped"] != true || !s.Killed || s.ExitCode != 137 {
		t.Errorf("summary %+v: want dumped, killed, exit 137", s.Record)
	}
}

// TestKilledBySomeoneElse: an app that dies of SIGKILL it did not get from
// gracefulinit (the OOM killer, a user) is reported killed all the same.
func TestKilledBySomeoneElse(t *testing.T) {
	t.Parallel()
	a := start(t, appConfig{pid1: true, init: []string{"--grace-period", "10s", "--drain", "500ms"},
		child: []string{"sh", "-c", `trap 'kill -KILL $$' TERM; echo READY; while :; do sleep 0.05; done`}})
	a.waitReady()
	a.p.Signal(syscall.SIGTERM)
	if code, _ := a.wait(20 * time.Second); code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
	if s := a.summary(); !s.Killed || s.ExitCode != 137 {
		t.Errorf("summary %+v: want killed (the app died of SIGKILL), exit 137", s)
	}
}
