package testbin

import (
	"syscall"
	"testing"
	"time"
)

func TestStartPID1(t *testing.T) {
	p := Start(t, Options{PID1: true}, "--", "sh", "-c", "echo ppid=$PPID; exit 5")
	if code := p.Wait(30 * time.Second); code != 5 {
		t.Fatalf("exit code %d, want 5", code)
	}
	if got := p.Stdout.String(); got != "ppid=1\n" {
		t.Fatalf("child's parent should be pid 1: PID-1 gracefulinit, got %q", got)
	}
}

func TestSignalPID1(t *testing.T) {
	p := Start(t, Options{PID1: true}, "--", "sleep", "100")
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(30 * time.Second); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit code %d, want 143", code)
	}
}
