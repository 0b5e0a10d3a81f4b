package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RSSResult is section 2: the init's resident memory while it supervises
// an idle `sleep`.
type RSSResult struct {
	Runs  int       `json:"runs"`
	Modes []RSSMode `json:"modes"`
}

// RSSMode holds the rows for one way of running the inits.
type RSSMode struct {
	Mode Mode     `json:"mode"`
	Rows []RSSRow `json:"rows"`
}

// RSSRow is one init's median over the runs.
type RSSRow struct {
	Name      string  `json:"name"`
	VmRSSKB   int64   `json:"vmrss_kb"`
	RssAnonKB int64   `json:"rssanon_kb"`
	RunsKB    []int64 `json:"runs_vmrss_kb"`
}

// measureRSS starts every init at once (memory does not interfere the way
// time does), lets them settle, and reads VmRSS from /proc.
func (r *runner) measureRSS(ctx context.Context) error {
	inits := r.present()
	res := &RSSResult{Runs: r.p.rssRuns}
	r.rep.RSS = res
	var errs []error
	for _, mode := range []Mode{ModeChild, ModePID1} {
		vm := map[string][]int64{}
		anon := map[string][]int64{}
		for run := 0; run < r.p.rssRuns; run++ {
			err := r.rssRound(ctx, mode, inits, vm, anon)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s run %d: %w", mode, run+1, err))
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		m := RSSMode{Mode: mode}
		for _, in := range inits {
			if len(vm[in.Name]) == 0 {
				continue
			}
			m.Rows = append(m.Rows, RSSRow{Name: in.Name, VmRSSKB: medianOf(vm[in.Name]), RssAnonKB: medianOf(anon[in.Name]), RunsKB: vm[in.Name]})
		}
		res.Modes = append(res.Modes, m)
	}
	return errors.Join(errs...)
}

func (r *runner) rssRound(ctx context.Context, mode Mode, inits []Init, vm, anon map[string][]int64) error {
	procs := make([]*proc, len(inits))
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.kill()
			}
		}
	}()
	for i, in := range inits {
		p, err := launch(mode, in.argv(mode == ModePID1, nil, []string{r.sleep, "600"}))
		if err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		procs[i] = p
	}
	pids := make([]int, len(inits))
	for i, p := range procs {
		pid, err := p.findInit(ctx, 10*time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", inits[i].Name, err)
		}
		pids[i] = pid
	}
	select {
	case <-time.After(r.p.rssSettle):
	case <-ctx.Done():
		return ctx.Err()
	}
	var errs []error
	for i, in := range inits {
		kb, err := statusKB(pids[i], "VmRSS")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.Name, err))
			continue
		}
		a, _ := statusKB(pids[i], "RssAnon")
		vm[in.Name] = append(vm[in.Name], kb)
		anon[in.Name] = append(anon[in.Name], a)
	}
	return errors.Join(errs...)
}
