package pid1_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// workers bounds concurrent gracefulinit runs in the exhaustive tables: enough
// to hide process start-up latency on 2 cores, few enough not to starve
// the other packages' tests.
const workers = 8

// job is one run in an exhaustive table.
type job struct {
	name string
	m    mode
	env  []string
	args []string
	want int
}

// runJobs runs every job with bounded concurrency, reports each mismatch
// and logs the run times.
func runJobs(t *testing.T, jobs []job) {
	t.Helper()
	bin := testbin.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var took []time.Duration
	begin := time.Now()
	for range workers {
		wg.Go(func() {
			for j := range ch {
				t0 := time.Now()
				res, err := run(ctx, j.m, bin, j.env, nil, j.args...)
				mu.Lock()
				took = append(took, time.Since(t0))
				mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("%s/%s: %v", j.m.name, j.name, err)
				case res.code != j.want:
					t.Errorf("%s/%s: exit code %d, want %d (stderr %q)", j.m.name, j.name, res.code, j.want, res.stderr)
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	slices.Sort(took)
	if n := len(took); n > 0 {
		t.Logf("%d runs in %v, %d at a time; per run: median %v, max %v", n, time.Since(begin).Round(time.Millisecond),
			workers, took[n/2].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
	}
}

// TestExitCodes: every exit code from 0 to 255 passes through unchanged.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	var jobs []job
	for _, m := range modes {
		for code := range 256 {
			jobs = append(jobs, job{
				name: fmt.Sprintf("exit %d", code),
				m:    m,
				args: []string{"--", "sh", "-c", "exit " + strconv.Itoa(code)},
				want: code,
			})
		}
	}
	runJobs(t, jobs)
}

// TestKilledBySignal: a child killed by signal N makes gracefulinit exit
// 128+N, for every signal whose default action terminates the process.
func TestKilledBySignal(t *testing.T) {
	t.Parallel()
	var sigs []int
	for s := 1; s <= 64; s++ {
		switch syscall.Signal(s) {
		case syscall.SIGCHLD, syscall.SIGCONT, syscall.SIGURG, syscall.SIGWINCH, // ignored by default
			syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU: // stop, not terminate
			continue
		}
		if s == 32 || s == 33 { // reserved by the C library, unknown to kill(1)
			continue
		}
		sigs = append(sigs, s)
	}
	var jobs []job
	for _, m := range modes {
		for _, s := range sigs {
			jobs = append(jobs, job{
				name: fmt.Sprintf("signal %d", s),
				m:    m,
				// ulimit -c 0: core-dumping signals must not litter the cwd.
				args: []string{"--", "sh", "-c", fmt.Sprintf("ulimit -c 0; kill -%d $$; sleep 10", s)},
				want: 128 + s,
			})
		}
	}
	runJobs(t, jobs)
}

// TestRemapExit: -e/--remap-exit turns the listed codes into 0 and leaves
// every other code alone.
func TestRemapExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"listed code", nil, []string{"-e", "3", "--", "sh", "-c", "exit 3"}, 0},
		{"other code kept", nil, []string{"-e", "3", "--", "sh", "-c", "exit 4"}, 4},
		{"repeatable first", nil, []string{"-e", "3", "--remap-exit", "143", "--", "sh", "-c", "exit 3"}, 0},
		{"repeatable second", nil, []string{"-e", "3", "--remap-exit", "143", "--", "sh", "-c", "exit 143"}, 0},
		{"comma list", nil, []string{"--remap-exit=5,6", "--", "sh", "-c", "exit 6"}, 0},
		{"killed by TERM", nil, []string{"-e", "143", "--", "sh", "-c", "kill -TERM $$; sleep 10"}, 0},
		{"killed by TERM not listed", nil, []string{"-e", "137", "--", "sh", "-c", "kill -TERM $$; sleep 10"}, 143},
		{"zero stays zero", nil, []string{"-e", "1", "--", "true"}, 0},
		{"255", nil, []string{"-e", "255", "--", "sh", "-c", "exit 255"}, 0},
		{"env", []string{"GRACEFULINIT_REMAP_EXIT=3"}, []string{"--", "sh", "-c", "exit 3"}, 0},
		{"env list", []string{"GRACEFULINIT_REMAP_EXIT=3,4"}, []string{"--", "sh", "-c", "exit 4"}, 0},
		{"flag wins over env", []string{"GRACEFULINIT_REMAP_EXIT=3"}, []string{"-e", "4", "--", "sh", "-c", "exit 3"}, 3},
	}
	var jobs []job
	for _, m := range modes {
		for _, tc := range tests {
			jobs = append(jobs, job{name: tc.name, m: m, env: tc.env, args: tc.args, want: tc.want})
		}
	}
	runJobs(t, jobs)
}
