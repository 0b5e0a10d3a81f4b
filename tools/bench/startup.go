package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// StartupResult is section 3: the wall time of `INIT -- true`, and that
// minus the wall time of `true` alone.
type StartupResult struct {
	Runs     int          `json:"runs"`
	Mode     Mode         `json:"mode"`
	Baseline Stats        `json:"true_alone"`
	Rows     []StartupRow `json:"rows"`
}

// StartupRow is one init's raw time and its overhead over `true` alone.
type StartupRow struct {
	Name             string  `json:"name"`
	Raw              Stats   `json:"raw"`
	OverheadMedianUS float64 `json:"overhead_median_us"`
	OverheadP90US    float64 `json:"overhead_p90_us"`
	Failures         int     `json:"failures"`
}

// measureStartup runs every init and the bare command in a shuffled order
// each round, so that drift in the machine's load spreads over all of them.
func (r *runner) measureStartup(ctx context.Context) error {
	inits := append([]Init{{Name: "true alone", Style: StyleDirect}}, r.present()...)
	got, err := interleave(ctx, len(inits), r.p.startRuns, -1, func(i int) (time.Duration, error) {
		return runOnce(inits[i].argv(false, nil, []string{r.true_}), 10*time.Second)
	})
	if err != nil {
		return err
	}
	samples, fails, lastErr := got.samples, got.fails, got.lastErr
	res := &StartupResult{Runs: r.p.startRuns, Mode: ModeChild, Baseline: summarize(samples[0])}
	for i, in := range inits[1:] {
		raw := summarize(samples[i+1])
		res.Rows = append(res.Rows, StartupRow{
			Name: in.Name, Raw: raw, Failures: fails[i+1],
			OverheadMedianUS: raw.MedianUS - res.Baseline.MedianUS,
			OverheadP90US:    raw.P90US - res.Baseline.P90US,
		})
	}
	r.rep.Startup = res
	var errs []error
	for i, in := range inits {
		if err := r.judge("startup", in.Name, fails[i], r.p.startRuns, lastErr[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runOnce times argv from fork to reaped exit; a non-zero exit is an error.
func runOnce(argv []string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	p, err := launch(ModeChild, argv)
	if err != nil {
		return 0, err
	}
	if err := p.wait(timeout); err != nil {
		p.kill()
		return 0, err
	}
	d := time.Since(start)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return 0, fmt.Errorf("exit code %d: %s", code, p.errb.tail())
	}
	return d, nil
}
