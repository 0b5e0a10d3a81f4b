package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/drain"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// The supervisor's behaviour is tested end to end, as a real PID 1, in
// test/pid1 and test/shutdown; these are the pure pieces.

func TestExitCode(t *testing.T) {
	tests := []struct {
		ws   unix.WaitStatus
		want int
	}{
		{unix.WaitStatus(0), 0},
		{unix.WaitStatus(3 << 8), 3},
		{unix.WaitStatus(255 << 8), 255},
		{unix.WaitStatus(syscall.SIGKILL), 137},
		{unix.WaitStatus(syscall.SIGTERM), 143},
	}
	for _, tt := range tests {
		if got := exitCode(tt.ws); got != tt.want {
			t.Errorf("exitCode(%#x) = %d, want %d", uint32(tt.ws), got, tt.want)
		}
	}
}

func TestClassifyStartError(t *testing.T) {
	dir := t.TempDir()
	noExec := filepath.Join(dir, "app.sh")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	tests := []struct {
		name, cmd string
		err       error
		code      int
		says      string
	}{
		{"not in PATH", "nosuchcmd", &exec.Error{Name: "nosuchcmd", Err: exec.ErrNotFound}, ExitNotFound, "command not found"},
		{"missing path", "/no/such", &fs.PathError{Op: "fork/exec", Path: "/no/such", Err: syscall.ENOENT}, ExitNotFound, "command not found"},
		{"in PATH without exec bit", "app.sh", &exec.Error{Name: "app.sh", Err: exec.ErrNotFound}, ExitNotExecutable, "chmod +x"},
		{"permission", "/etc/passwd", &fs.PathError{Op: "fork/exec", Path: "/etc/passwd", Err: syscall.EACCES}, ExitNotExecutable, "not executable"},
		{"bad format", "/bin.dat", &fs.PathError{Op: "fork/exec", Path: "/bin.dat", Err: syscall.ENOEXEC}, ExitNotExecutable, "not executable"},
		{"other", "x", errors.New("boom"), ExitInitFailure, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := classifyStartError(tt.cmd, tt.err)
			if code != tt.code || !strings.Contains(msg, tt.says) || !strings.Contains(msg, fmt.Sprintf("%q", tt.cmd)) || strings.Contains(msg, "\n") {
				t.Fatalf("classifyStartError(%q, %v) = %d %q; want %d, one line naming the command and saying %q", tt.cmd, tt.err, code, msg, tt.code, tt.says)
			}
		})
	}
}

// panickyHooks panics in every hook.
type panickyHooks struct{ online chan struct{} }

func (h panickyHooks) Online(context.Context) {
	close(h.online)
	panic("online")
}
func (panickyHooks) Offline(context.Context) error { panic("offline") }
func (panickyHooks) Close(context.Context) error   { panic("close") }

// TestHookPanicsDoNotEndTheSupervisor: a hook that panics in the
// supervisor's goroutines costs its step; Run still returns the app's code.
func TestHookPanicsDoNotEndTheSupervisor(t *testing.T) {
	var logs testbin.SafeBuffer
	h := panickyHooks{online: make(chan struct{})}
	// The app waits until the online hook has run (and panicked).
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		<-h.online
		time.Sleep(100 * time.Millisecond)
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
	}()
	code := Run(Options{
		Signals:      make(chan os.Signal, 16),
		Command:      []string{"sh", "-c", "cat " + fifo + "; exit 3"},
		Hooks:        h,
		CloseTimeout: time.Second,
		Log:          slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if code != 3 {
		t.Fatalf("Run = %d, want the app's 3\n%s", code, logs.String())
	}
	for _, want := range []string{"panic in registry online: online", "panic in registry close: close"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestReportPeersNamesOnlyCallersStillCalling: the ceiling WARN and the
// cache-max line say "still_calling" only of callers that called within
// their gap and since the drain began; a short-history caller quiet since
// before the drain (waited for as a rare one) is no traffic arriving.
func TestReportPeersNamesOnlyCallersStillCalling(t *testing.T) {
	t.Parallel()
	end := time.Now()
	quiet := drain.PeerReport{Addr: netip.MustParseAddr("127.0.0.5"), Last: end.Add(-12 * time.Second), Rule: drain.RuleShortHistory}
	busy := drain.PeerReport{Addr: netip.MustParseAddr("127.0.0.6"), Last: end.Add(-400 * time.Millisecond), Gap: 600 * time.Millisecond}
	for _, res := range []drain.Result{
		{Reason: drain.ReasonCeiling, TrafficAtEnd: true, Elapsed: 7 * time.Second, At: end, Pending: []drain.PeerReport{quiet, busy}},
		{Reason: drain.ReasonCacheMax, Elapsed: 7 * time.Second, At: end, Pending: []drain.PeerReport{quiet, busy}},
	} {
		var logs testbin.SafeBuffer
		r := &run{log: slog.New(slog.NewTextHandler(&logs, nil))}
		r.o.Drain.Quiet = 2 * time.Second
		r.reportPeers(res)
		if !strings.Contains(logs.String(), "still_calling=\"127.0.0.6 last 400ms ago") || strings.Contains(logs.String(), "127.0.0.5") {
			t.Errorf("%s: want still_calling to name 127.0.0.6 only (127.0.0.5 was quiet for 12s of a 7s drain):\n%s", res.Reason, logs.String())
		}
	}
}
