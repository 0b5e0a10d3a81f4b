package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// TermResult is section 6: SIGTERM to the init until the init has exited,
// with no drain, for a child (sleep) that dies on SIGTERM at once.
type TermResult struct {
	Runs  int        `json:"runs"`
	Flags []string   `json:"gracefulinit_flags"`
	Modes []TermMode `json:"modes"`
}

// TermMode holds one way of running the inits.
type TermMode struct {
	Mode Mode      `json:"mode"`
	Rows []TermRow `json:"rows"`
}

// TermRow is one init's distribution.
type TermRow struct {
	Name     string `json:"name"`
	Exit     Stats  `json:"exit"`
	Failures int    `json:"failures"`
}

var termFlags = []string{"--drain", "0"}

func (r *runner) measureTerm(ctx context.Context) error {
	inits := r.present()
	res := &TermResult{Runs: r.p.termRuns, Flags: termFlags}
	r.rep.Term = res
	var errs []error
	// PID 1 first: it is the case that matters in a container.
	for _, mode := range []Mode{ModePID1, ModeChild} {
		got, err := interleave(ctx, len(inits), r.p.termRuns, -1, func(i int) (time.Duration, error) {
			return r.termOnce(ctx, mode, inits[i])
		})
		if err != nil {
			return err
		}
		samples, fails, lastErr := got.samples, got.fails, got.lastErr
		m := TermMode{Mode: mode}
		for i, in := range inits {
			m.Rows = append(m.Rows, TermRow{Name: in.Name, Exit: summarize(samples[i]), Failures: fails[i]})
			if err := r.judge("sigterm_to_exit "+string(mode), in.Name, fails[i], r.p.termRuns, lastErr[i]); err != nil {
				errs = append(errs, err)
			}
		}
		res.Modes = append(res.Modes, m)
	}
	return errors.Join(errs...)
}

// termOnce starts INIT -- sleep, waits until sleep runs, then times
// SIGTERM to the init's exit. The exit is seen through a pidfd, which
// works for an init inside unshare that is not our child, and stops the
// clock before anyone reaps it.
func (r *runner) termOnce(ctx context.Context, mode Mode, in Init) (time.Duration, error) {
	p, err := launch(mode, in.argv(mode == ModePID1, termFlags, []string{r.sleep, "600"}))
	if err != nil {
		return 0, err
	}
	defer p.kill()
	pid, err := p.findInit(ctx, 10*time.Second)
	if err != nil {
		return 0, err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(fd)
	start := time.Now()
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return 0, err
	}
	if err := waitExit(fd, 10*time.Second); err != nil {
		return 0, fmt.Errorf("init did not exit within 10 s of SIGTERM (%s): %s", describeTree(pid), p.errb.tail())
	}
	return time.Since(start), nil
}
