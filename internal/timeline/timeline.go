// Package timeline is the shutdown timeline as one value: computed once from
// the configured durations, it validates them, describes itself for --check
// and the debug log, and gives the supervisor its deadlines for a given
// stop-signal time.
//
// Defaults yield to what the user set: a default stop timeout, kill margin
// or drain ceiling shrinks to fit the values given explicitly, and only
// explicit values that contradict each other are an error. With no
// registry, no drain and no explicit timeline flag the timeline is off
// (tini mode): gracefulinit has no deadline and never kills on its own.
//
// With a registry (or an offline hook) the drain is traffic-aware: --drain
// is its ceiling, never a switch to a fixed drain; a fixed drain is asked
// for by name, --drain-quiet 0.
package timeline

import (
	"fmt"
	"time"
)

// Defaults, used where the user set nothing.
const (
	DefaultGracePeriod = 30 * time.Second
	DefaultKillMargin  = time.Second
	DefaultStopTimeout = 10 * time.Second
	// DefaultRegistryQuiet is the quiet window of the drain a registry
	// turns on unless --drain-quiet says otherwise.
	DefaultRegistryQuiet = 2 * time.Second
)

// Setting is one configured duration and whether the user set it (flag or
// environment); an unset Setting holds the default and may yield.
type Setting struct {
	Value time.Duration
	Set   bool
}

// Input is the configuration a Timeline is made from.
type Input struct {
	GracePeriod Setting // the runtime's deadline after the stop request
	KillMargin  Setting // gracefulinit's SIGKILL comes this long before it
	StopTimeout Setting // reserved for the app between the stop signal and the kill
	Drain       Setting // the drain's ceiling
	DrainQuiet  Setting // the drain ends after this much quiet; 0: fixed drain
	DrainMin    Setting // with DrainQuiet: the shortest drain
	// Registry: a registry or offline step runs, so the drain is
	// traffic-aware (quiet DefaultRegistryQuiet) unless DrainQuiet is set;
	// Drain stays its ceiling.
	Registry bool
	// Name says where a setting came from in errors, e.g. "--drain" or
	// "GRACEFULINIT_DRAIN"; nil means the flag.
	Name func(flag string) string
}

// Timeline is the resolved stop sequence. The zero value is tini mode.
type Timeline struct {
	Grace       time.Duration // 0: no deadline of gracefulinit's own (tini mode)
	KillMargin  time.Duration
	StopTimeout time.Duration
	Drain       time.Duration // the drain's ceiling; 0: no drain
	DrainQuiet  time.Duration
	DrainMin    time.Duration

	yielded []string // defaults that shrank, for Describe
}

// Deadlines are the absolute times of one stop sequence.
type Deadlines struct {
	Term     time.Time // the stop request
	DrainMax time.Time // the drain ends by then; equal to Term without a drain
	Kill     time.Time // gracefulinit SIGKILLs the tree; zero in tini mode
	Runtime  time.Time // the runtime's own SIGKILL; zero in tini mode
}

// New resolves in. The error is one line naming the flags that contradict
// each other and what to change.
func New(in Input) (Timeline, error) {
	name := in.Name
	if name == nil {
		name = func(flag string) string { return "--" + flag }
	}
	drainFlags := in.Drain.Set || in.DrainQuiet.Set || in.DrainMin.Set
	if !in.Registry && !drainFlags && !in.GracePeriod.Set && !in.KillMargin.Set && !in.StopTimeout.Set {
		return Timeline{}, nil
	}
	var t Timeline
	grace := in.GracePeriod.Value
	if grace <= 0 {
		return t, fmt.Errorf("%s must be positive: set it to the pod's terminationGracePeriodSeconds", name("grace-period"))
	}
	margin := in.KillMargin.Value
	if !in.KillMargin.Set && margin > grace/2 {
		t.yield("kill-margin", margin, grace/2)
		margin = grace / 2
	}
	if margin >= grace {
		return t, fmt.Errorf("%s %s must be shorter than %s %s", name("kill-margin"), margin, name("grace-period"), grace)
	}
	avail := grace - margin // from the stop request to the kill

	quiet := in.DrainQuiet.Value
	if in.Registry && !in.DrainQuiet.Set {
		quiet = DefaultRegistryQuiet
	}
	// A traffic-aware drain without --drain runs up to whatever the
	// timeline leaves it: its ceiling is a default too.
	ceilingDefault := !in.Drain.Set && quiet > 0
	need, needFlag := time.Duration(0), "" // the drain the user asked for at least
	switch {
	case in.Drain.Set:
		need, needFlag = in.Drain.Value, name("drain")
	case ceilingDefault:
		need, needFlag = in.DrainMin.Value, name("drain-min")
	}

	stop := in.StopTimeout.Value
	if !in.StopTimeout.Set {
		fit := avail - need
		if ceilingDefault {
			// Both are defaults: share what there is.
			fit = min(fit, avail/2)
		}
		if fit <= 0 {
			if needFlag == "" {
				needFlag = name("kill-margin")
			}
			return t, fmt.Errorf("%s leaves the app no time to stop: the kill comes at grace-period %s - kill-margin %s = %s and the drain takes %s; lower %s or raise %s",
				needFlag, grace, margin, avail, need, needFlag, name("grace-period"))
		}
		if fit < stop {
			t.yield("stop-timeout", stop, fit)
			stop = fit
		}
	}
	budget := avail - stop
	if budget < 0 {
		return t, fmt.Errorf("timeline does not fit: grace-period %s - kill-margin %s - stop-timeout %s = %s; raise %s or lower %s",
			grace, margin, stop, budget, name("grace-period"), name("stop-timeout"))
	}
	drain := in.Drain.Value
	if in.Drain.Set && drain > budget {
		return t, fmt.Errorf("%s %s exceeds the drain budget: grace-period %s - kill-margin %s - stop-timeout %s = %s; lower %s or raise %s",
			name("drain"), drain, grace, margin, stop, budget, name("drain"), name("grace-period"))
	}
	if ceilingDefault {
		drain = budget
	}
	if in.DrainMin.Value > drain {
		return t, fmt.Errorf("%s %s exceeds the drain's ceiling %s", name("drain-min"), in.DrainMin.Value, drain)
	}
	t.Grace, t.KillMargin, t.StopTimeout = grace, margin, stop
	t.Drain, t.DrainQuiet, t.DrainMin = drain, quiet, in.DrainMin.Value
	if drain == 0 {
		t.DrainQuiet, t.DrainMin = 0, 0
	}
	return t, nil
}

func (t *Timeline) yield(name string, from, to time.Duration) {
	t.yielded = append(t.yielded, fmt.Sprintf("%s %s (default %s, shrunk to fit)", name, to, from))
}

// Kills reports whether gracefulinit kills the tree before a deadline of
// its own; false in tini mode.
func (t Timeline) Kills() bool { return t.Grace > 0 }

// Budget is the longest the drain may last: what the grace period leaves
// after the kill margin and the time reserved for the app to stop.
func (t Timeline) Budget() time.Duration {
	if !t.Kills() {
		return 0
	}
	return t.Grace - t.KillMargin - t.StopTimeout
}

// At gives the deadlines of a stop sequence requested at term.
func (t Timeline) At(term time.Time) Deadlines {
	d := Deadlines{Term: term, DrainMax: term.Add(t.Drain)}
	if t.Kills() {
		d.Runtime = term.Add(t.Grace)
		d.Kill = d.Runtime.Add(-t.KillMargin)
	}
	return d
}

// Describe is the timeline in words, one line each, for --check and the
// debug log; stopSignal names the signal the app gets.
func (t Timeline) Describe(stopSignal string) []string {
	if !t.Kills() {
		return []string{
			"tini mode (no registry, no drain, no timeline flag): no deadline of gracefulinit's own",
			fmt.Sprintf("0s: %s sent to the app; gracefulinit waits for it as long as it takes and never kills it", stopSignal),
		}
	}
	var out []string
	out = append(out, fmt.Sprintf("drain budget = grace-period %s - kill-margin %s - stop-timeout %s = %s",
		t.Grace, t.KillMargin, t.StopTimeout, t.Budget()))
	for _, y := range t.yielded {
		out = append(out, "  "+y)
	}
	switch {
	case t.Drain == 0:
		out = append(out, "0s: no drain")
	case t.DrainQuiet > 0:
		out = append(out, fmt.Sprintf("0s: drain until every caller of the app's ports is done (quiet %s, at least %s, at most %s: the --drain ceiling; --drain-quiet 0 for a fixed drain)", t.DrainQuiet, t.DrainMin, t.Drain))
	default:
		out = append(out, fmt.Sprintf("0s: fixed drain of %s (--drain-quiet 0)", t.Drain))
	}
	out = append(out,
		fmt.Sprintf("<=%s: %s sent to the app", t.Drain, stopSignal),
		fmt.Sprintf("%s: SIGKILL to the process tree; runtime deadline at %s", t.Grace-t.KillMargin, t.Grace))
	return out
}
