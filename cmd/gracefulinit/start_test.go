package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestStopBeforeStart(t *testing.T) {
	tests := []struct {
		name     string
		queued   []os.Signal
		wantStop syscall.Signal // 0: none
		left     []os.Signal
	}{
		{"nothing", nil, 0, nil},
		{"TERM among others", []os.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGUSR1}, syscall.SIGTERM, nil},
		{"INT", []os.Signal{syscall.SIGINT}, syscall.SIGINT, nil},
		{"QUIT", []os.Signal{syscall.SIGQUIT}, syscall.SIGQUIT, nil},
		{"others stay queued in order", []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH}, 0, []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan os.Signal, 8)
			for _, s := range tt.queued {
				ch <- s
			}
			sig, ok := stopBeforeStart(ch)
			if ok != (tt.wantStop != 0) || sig != tt.wantStop {
				t.Fatalf("stopBeforeStart = %v, %v; want %v", sig, ok, tt.wantStop)
			}
			if tt.wantStop != 0 {
				return
			}
			var left []os.Signal
			for len(ch) > 0 {
				left = append(left, <-ch)
			}
			if !slices.Equal(left, tt.left) {
				t.Fatalf("left in the queue %v, want %v", left, tt.left)
			}
		})
	}
}

// A SIGTERM that arrives while gracefulinit prepares (it is caught from the
// first instant) ends it with 143 and the app never starts; it used to
// start the app only to stop it.
func TestTermBeforeStartDoesNotStartTheApp(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "started")
	caught <- syscall.SIGTERM
	t.Cleanup(func() {
		for len(caught) > 0 {
			<-caught
		}
	})
	var out, errb bytes.Buffer
	code := run([]string{"--log-level", "debug", "--", "touch", marker}, lookupIn(), &out, &errb)
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want 143\nstderr:\n%s", code, errb.String())
	}
	// The app, stopped at once, may not get to leave a mark: the
	// supervisor's debug line says whether it was started.
	if _, err := os.Stat(marker); err == nil || strings.Contains(errb.String(), "child started") {
		t.Errorf("the app was started\nstderr:\n%s", errb.String())
	}
}
