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

	"github.com/gracefulinit/gracefulinit/internal/signals"
	"github.com/gracefulinit/gracefulinit/internal/supervisor"
)

// TestStopBeforeStart: a stop request that came while gracefulinit
// prepared ends it with 128+signal and nothing starts, whether it came
// during the preparation (TERM, INT, QUIT) or was a --stop-on signal only
// known once the configuration was read; other signals reach the
// supervisor in order.
func TestStopBeforeStart(t *testing.T) {
	tests := []struct {
		name     string
		queued   []os.Signal
		stopOn   []syscall.Signal
		wantStop syscall.Signal // 0: none
		left     []os.Signal
	}{
		{"nothing", nil, nil, 0, nil},
		{"TERM among others", []os.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGUSR1}, nil, syscall.SIGTERM, nil},
		{"INT", []os.Signal{syscall.SIGINT}, nil, syscall.SIGINT, nil},
		{"QUIT", []os.Signal{syscall.SIGQUIT}, nil, syscall.SIGQUIT, nil},
		{"a --stop-on signal", []os.Signal{syscall.SIGHUP, syscall.SIGUSR2}, []syscall.Signal{syscall.SIGUSR2}, syscall.SIGUSR2, nil},
		{"others stay queued in order", []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH}, nil, 0, []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan os.Signal, 8)
			for _, s := range tt.queued {
				ch <- s
			}
			var started *supervisor.Options
			var errb bytes.Buffer
			code := untilStarted(ch, &errb, func() (*supervisor.Options, int) {
				return &supervisor.Options{StopOn: tt.stopOn}, 0
			}, func(o supervisor.Options) int { started = &o; return 7 })
			if tt.wantStop != 0 {
				if code != 128+int(tt.wantStop) || started != nil {
					t.Fatalf("exit %d, started %v; want %d and no start", code, started != nil, 128+int(tt.wantStop))
				}
				if !strings.Contains(errb.String(), signals.Name(tt.wantStop)+" before the app started") {
					t.Fatalf("stderr %q: want the reason", errb.String())
				}
				return
			}
			if code != 7 || started == nil || started.Signals != ch {
				t.Fatalf("exit %d, started %v: want the start with the signal channel", code, started != nil)
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

// A stop signal while gracefulinit still prepares (a slow start phase) ends
// it at once with 128+signal, and the app is then never started.
func TestStopDuringPreparation(t *testing.T) {
	stop := make(chan os.Signal, 1)
	release := make(chan struct{})
	var errb bytes.Buffer
	go func() {
		time.Sleep(50 * time.Millisecond)
		stop <- syscall.SIGTERM
	}()
	start := time.Now()
	started := make(chan struct{}, 1)
	code := untilStarted(stop, &errb, func() (*supervisor.Options, int) {
		<-release // preparing, slowly
		return &supervisor.Options{}, 0
	}, func(supervisor.Options) int { started <- struct{}{}; return 0 })
	took := time.Since(start)
	if code != 143 || took > 2*time.Second {
		t.Fatalf("exit %d after %v: want 143 at once", code, took)
	}
	if !strings.Contains(errb.String(), "SIGTERM before the app started") {
		t.Errorf("stderr %q: want the reason", errb.String())
	}
	close(release)
	time.Sleep(50 * time.Millisecond)
	if len(started) > 0 {
		t.Error("the app started after gracefulinit chose to exit")
	}
}

// Once the app has started, a stop signal is the supervisor's: untilStarted
// returns the run's code and hands it the channel the signal arrives on.
func TestStopAfterStartIsTheSupervisors(t *testing.T) {
	stop := make(chan os.Signal, 1)
	code := untilStarted(stop, io.Discard, func() (*supervisor.Options, int) {
		return &supervisor.Options{}, 0
	}, func(o supervisor.Options) int {
		stop <- syscall.SIGTERM
		if s := <-o.Signals; s != syscall.SIGTERM {
			t.Errorf("the supervisor read %v, want SIGTERM", s)
		}
		return 7
	})
	if code != 7 {
		t.Fatalf("exit %d, want the run's 7", code)
	}
}

// The app's command line is logged at debug; a secret on it is masked.
func TestCommandLineLoggedMasked(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--log-level", "debug", "--", "true", "-Dspring.datasource.password=S3CRETPW", "http://u:S3CRETPW2@h/"}, lookupIn(), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "child started") || strings.Contains(errb.String(), "S3CRET") {
		t.Fatalf("want the command logged with its secrets masked:\n%s", errb.String())
	}
}
