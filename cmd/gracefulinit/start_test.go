package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
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

func resetGate(t *testing.T) {
	reset := func() {
		gate.Lock()
		gate.started, gate.stopped = false, false
		gate.Unlock()
	}
	reset()
	t.Cleanup(reset)
}

// A stop signal while gracefulinit still prepares (a slow start phase) ends
// it at once with 128+signal, and the app is then never started.
func TestStopDuringPreparation(t *testing.T) {
	resetGate(t)
	stop := make(chan os.Signal, 1)
	release := make(chan struct{})
	claimed := make(chan bool, 1)
	var errb bytes.Buffer
	go func() {
		time.Sleep(50 * time.Millisecond)
		stop <- syscall.SIGTERM
	}()
	start := time.Now()
	code := untilStarted(stop, &errb, func() int {
		<-release // preparing, slowly
		ok := claimStart()
		claimed <- ok
		return 0
	})
	took := time.Since(start)
	if code != 143 || took > 2*time.Second {
		t.Fatalf("exit %d after %v: want 143 at once", code, took)
	}
	if !strings.Contains(errb.String(), "SIGTERM before the app started") {
		t.Errorf("stderr %q: want the reason", errb.String())
	}
	close(release)
	if <-claimed {
		t.Error("the app may still start after gracefulinit chose to exit")
	}
}

// Once the app has started, a stop signal is the supervisor's: untilStarted
// waits for the run and returns its code.
func TestStopAfterStartIsTheSupervisors(t *testing.T) {
	resetGate(t)
	stop := make(chan os.Signal, 1)
	started := make(chan struct{})
	release := make(chan struct{})
	go func() {
		<-started
		stop <- syscall.SIGTERM
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	code := untilStarted(stop, io.Discard, func() int {
		if !claimStart() {
			t.Error("claimStart refused with no stop signal")
		}
		close(started)
		<-release
		return 7
	})
	if code != 7 {
		t.Fatalf("exit %d, want the run's 7", code)
	}
}

// The app's command line is logged at debug; a secret on it is masked.
func TestCommandLineLoggedMasked(t *testing.T) {
	resetGate(t)
	var out, errb bytes.Buffer
	code := run([]string{"--log-level", "debug", "--", "true", "-Dspring.datasource.password=S3CRETPW", "http://u:S3CRETPW2@h/"}, lookupIn(), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "child started") || strings.Contains(errb.String(), "S3CRET") {
		t.Fatalf("want the command logged with its secrets masked:\n%s", errb.String())
	}
}
