package signals

import (
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		err  string
	}{
		{"TERM", syscall.SIGTERM, ""},
		{"sigterm", syscall.SIGTERM, ""},
		{"SIGQUIT", syscall.SIGQUIT, ""},
		{"15", syscall.SIGTERM, ""},
		{" usr1 ", syscall.SIGUSR1, ""},
		{"FOO", 0, "unknown signal \"FOO\""},
		{"0", 0, "numbers run from 1 to 64"},
		{"65", 0, "numbers run from 1 to 64"},
		{"", 0, "empty signal name"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestForwardedAndCatchable(t *testing.T) {
	caught := map[syscall.Signal]bool{}
	for _, s := range Catchable() {
		caught[s] = true
	}
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH, syscall.SIGCHLD, syscall.SIGTTOU} {
		if !caught[s] {
			t.Errorf("%v is not caught", s)
		}
	}
	if caught[syscall.SIGKILL] || caught[syscall.SIGSTOP] {
		t.Error("SIGKILL and SIGSTOP cannot be caught")
	}
	for s, want := range map[syscall.Signal]bool{syscall.SIGTERM: true, syscall.SIGWINCH: true, syscall.SIGCHLD: false, syscall.SIGSEGV: false, syscall.SIGTTOU: false, syscall.Signal(40): true} {
		if Forwarded(s) != want {
			t.Errorf("Forwarded(%v) = %v, want %v", s, !want, want)
		}
	}
	if Name(syscall.SIGTERM) != "SIGTERM" {
		t.Errorf("Name(SIGTERM) = %q", Name(syscall.SIGTERM))
	}
}
