package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SignalResult is section 4: from kill(init, SIGUSR1) to the child's
// handler running.
type SignalResult struct {
	Signals int          `json:"signals_per_init"`
	Modes   []SignalMode `json:"modes"`
}

// SignalMode holds one way of running the inits; Direct is the recorder
// signalled without an init, the floor every init adds to.
type SignalMode struct {
	Mode   Mode        `json:"mode"`
	Direct Stats       `json:"direct"`
	Rows   []SignalRow `json:"rows"`
}

// SignalRow is one init's latency distribution.
type SignalRow struct {
	Name    string `json:"name"`
	Latency Stats  `json:"latency"`
	Lost    int    `json:"lost"`
}

func (r *runner) measureSignals(ctx context.Context) error {
	res := &SignalResult{Signals: r.p.signals}
	r.rep.Signals = res
	var errs []error
	for _, mode := range []Mode{ModeChild, ModePID1} {
		m, err := r.signalMode(ctx, mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", mode, err))
		}
		if m != nil {
			res.Modes = append(res.Modes, *m)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// signalMode runs one recorder per init at once and signals them in a
// shuffled round-robin, one signal in flight at a time: a second pending
// signal would merge with the first.
func (r *runner) signalMode(ctx context.Context, mode Mode) (*SignalMode, error) {
	inits := append([]Init{{Name: "direct", Style: StyleDirect}}, r.present()...)
	procs := make([]*proc, len(inits))
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.kill()
			}
		}
	}()
	pids := make([]int, len(inits))
	for i, in := range inits {
		m := mode
		if in.Style == StyleDirect {
			// The floor is the recorder's own signal handling, not
			// unshare's; as a bare PID 1 it would be the init under test.
			m = ModeChild
		}
		p, err := launch(m, in.argv(m == ModePID1, nil, []string{r.helper, "recorder"}))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		procs[i] = p
		if _, err := p.line(ctx, "ready", 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		if in.Style == StyleDirect {
			pids[i] = p.cmd.Process.Pid
			continue
		}
		if pids[i], err = p.findInit(ctx, 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
	}
	// An init that lost more than 10 signals no longer forwards: do not
	// wait on it 500 times.
	got, err := interleave(ctx, len(inits), r.p.signals, 10, func(i int) (time.Duration, error) {
		return signalOnce(procs[i], pids[i])
	})
	if err != nil {
		return nil, err
	}
	samples, lost, lastErr := got.samples, got.fails, got.lastErr
	m := &SignalMode{Mode: mode, Direct: summarize(samples[0])}
	var errs []error
	for i, in := range inits {
		if i > 0 {
			m.Rows = append(m.Rows, SignalRow{Name: in.Name, Latency: summarize(samples[i]), Lost: lost[i]})
		}
		// More than 10 lost signals stopped the signalling: that init does
		// not forward, which judge must see as a total failure.
		total := lost[i] + len(samples[i])
		if lost[i] > 10 {
			total = lost[i]
		}
		if err := r.judge("signals "+string(mode), in.Name, lost[i], total, lastErr[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}

// signalOnce sends SIGUSR1 to pid and returns how long until the recorder
// below it stamped it.
func signalOnce(p *proc, pid int) (time.Duration, error) {
	// A late answer to an earlier signal must not be taken for this one.
	for drained := false; !drained; {
		select {
		case <-p.lines:
		default:
			drained = true
		}
	}
	sent := mono()
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		return 0, err
	}
	// Generous: other work on a shared 2-core machine can stall any of
	// the three processes involved; a real loss never arrives at all.
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return 0, errors.New("recorder output ended")
			}
			ns, found := strings.CutPrefix(l, "sig ")
			if !found {
				continue
			}
			at, err := strconv.ParseInt(ns, 10, 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(at - sent), nil
		case <-t.C:
			return 0, errTimeout
		}
	}
}
