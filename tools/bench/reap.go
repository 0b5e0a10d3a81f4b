package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// ReapResult is section 5: each init as PID 1 adopts N orphans that exit
// at once; the clock runs from the first spawn until none is left unreaped.
type ReapResult struct {
	Mode   Mode        `json:"mode"`
	Storms []ReapStorm `json:"storms"`
}

// ReapStorm is one way of making orphans: "fork" children exit right
// after fork, the cheapest orphan there is, so the reaper's share of the
// time is largest; "exec" children run true, real programs like a shell
// script's, so spawning dominates.
type ReapStorm struct {
	How     string    `json:"how"`
	Orphans int       `json:"orphans"`
	Runs    int       `json:"runs"`
	Rows    []ReapRow `json:"rows"`
}

// ReapRow is one init's medians over the runs. Spawn is how long creating
// the orphans took (the same work for every init, but slowed by a reaper
// competing for the CPU); Tail is from the last orphan handed over to the
// last one reaped; Peak is the most children seen waiting at once.
type ReapRow struct {
	Name          string    `json:"name"`
	TotalMS       float64   `json:"total_ms"`
	SpawnMS       float64   `json:"spawn_ms"`
	TailMS        float64   `json:"tail_ms"`
	PeakUnreaped  int       `json:"peak_unreaped"`
	RunsTotalMS   []float64 `json:"runs_total_ms"`
	FailedRuns    int       `json:"failed_runs"`
	OrphansPerSec float64   `json:"orphans_per_s"`
}

// reapBatch and reapParallel shape the storm: intermediates of 100 orphans,
// two at a time, one per core of the machines this runs on.
const (
	reapBatch    = 100
	reapParallel = 2
)

func (r *runner) measureReap(ctx context.Context) error {
	res := &ReapResult{Mode: ModePID1}
	r.rep.Reap = res
	var errs []error
	for _, how := range []struct {
		how  string
		runs int
	}{{"fork", r.p.reapRuns}, {"exec", r.p.reapExecRuns}} {
		st, err := r.reapStorm(ctx, how.how, how.runs)
		res.Storms = append(res.Storms, st)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s storm: %w", how.how, err))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

func (r *runner) reapStorm(ctx context.Context, how string, runs int) (ReapStorm, error) {
	// The floor with deps reaps with the very same code as the bare one:
	// its row would only lengthen the longest section.
	inits := r.present(NameGoFloorDeps)
	res := ReapStorm{How: how, Orphans: r.p.orphans, Runs: runs}
	type acc struct {
		total, spawn, tail []float64
		peak, failed       int
	}
	accs := make([]acc, len(inits))
	lastErr := make([]error, len(inits))
	order := make([]int, len(inits))
	for i := range order {
		order[i] = i
	}
	for run := 0; run < runs; run++ {
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		for _, i := range order {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			fmt.Fprintf(r.log, "bench:   %s storm: %d orphans under %s (run %d/%d)\n", how, r.p.orphans, inits[i].Name, run+1, runs)
			o, err := r.reapOnce(ctx, inits[i], how)
			if err != nil {
				accs[i].failed++
				lastErr[i] = err
				continue
			}
			a := &accs[i]
			a.total = append(a.total, ms(o.total))
			a.spawn = append(a.spawn, ms(o.spawn))
			a.tail = append(a.tail, ms(o.tail))
			a.peak = max(a.peak, o.peak)
		}
	}
	var errs []error
	for i, in := range inits {
		a := accs[i]
		if err := r.judge("reaping "+how, in.Name, a.failed, runs, lastErr[i]); err != nil {
			errs = append(errs, err)
		}
		row := ReapRow{Name: in.Name, FailedRuns: a.failed, PeakUnreaped: a.peak, RunsTotalMS: a.total}
		if len(a.total) > 0 {
			row.TotalMS, row.SpawnMS, row.TailMS = medianOf(a.total), medianOf(a.spawn), medianOf(a.tail)
			row.OrphansPerSec = float64(r.p.orphans) / (row.TotalMS / 1000)
		}
		res.Rows = append(res.Rows, row)
	}
	return res, errors.Join(errs...)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type reapOutcome struct {
	total, spawn, tail time.Duration
	peak               int
}

func (r *runner) reapOnce(ctx context.Context, in Init, how string) (reapOutcome, error) {
	var o reapOutcome
	child := []string{r.helper, "orphans", strconv.Itoa(r.p.orphans), strconv.Itoa(reapBatch), strconv.Itoa(reapParallel), how}
	p, err := launch(ModePID1, in.argv(true, nil, child))
	if err != nil {
		return o, err
	}
	defer p.kill()
	ctx, cancel := context.WithTimeout(ctx, r.p.reapTimeout)
	defer cancel()
	l, err := p.line(ctx, "start ", 10*time.Second)
	if err != nil {
		return o, err
	}
	start, err := strconv.ParseInt(strings.TrimPrefix(l, "start "), 10, 64)
	if err != nil {
		return o, fmt.Errorf("bad line %q", l)
	}
	init, err := p.findInit(ctx, 10*time.Second)
	if err != nil {
		return o, err
	}
	var done int64
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return o, fmt.Errorf("helper output ended: %s", p.errb.tail())
			}
			if rest, found := strings.CutPrefix(l, "done "); found {
				f := strings.Fields(rest)
				if done, err = strconv.ParseInt(f[0], 10, 64); err != nil {
					return o, fmt.Errorf("bad line %q", l)
				}
			}
		case <-ctx.Done():
			return o, fmt.Errorf("%d orphans not all reaped within %v", r.p.orphans, r.p.reapTimeout)
		case <-p.done:
			return o, fmt.Errorf("init exited during the storm: %s", p.errb.tail())
		case <-time.After(2 * time.Millisecond):
		}
		// Every child of the init but the helper is an orphan, alive or a
		// zombie. Once the helper said done, all orphans have been handed
		// over, so the count only falls.
		waiting := countChildren(init) - 1
		now := mono()
		o.peak = max(o.peak, waiting)
		if done != 0 && waiting <= 0 {
			// The children file is not read atomically: confirm.
			if countChildren(init)-1 > 0 {
				continue
			}
			o.total = time.Duration(now - start)
			o.spawn = time.Duration(done - start)
			o.tail = time.Duration(max(0, now-done))
			return o, nil
		}
	}
}
