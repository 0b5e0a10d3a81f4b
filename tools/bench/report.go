package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Goal targets from the issues.
const (
	goalStartupDeltaUS = 1000 // start-up overhead within 1 ms of tini-static
	goalSignalDeltaUS  = 1000 // signal latency within 1 ms of tini-static
	goalReapRatio      = 2.0  // reaping no slower than 2x tini-static
	goalRSSKB          = 6 * 1024
	goalTermRatio      = 1.05
	goalDrainDelayMS   = 200
	goalLearnMSPerS    = 1.0 // 0.1% of a core
	goalDrainMSPerS    = 20  // 2% of a core, draining with the most connections
)

// goals checks this run's figures against the targets. A goal whose
// figures are missing is reported as not met, with the reason.
func (r *runner) goals() []Goal {
	var out []Goal
	rep := r.rep
	builds := []string{NameGracefulinit}
	missing := func(goal, target string) Goal {
		return Goal{Goal: goal, Target: target, Measured: "not measured (see errors)"}
	}

	for _, b := range builds {
		g := "idle RSS of " + b
		t := fmt.Sprintf("< %d MB", goalRSSKB/1024)
		if rep.RSS == nil {
			out = append(out, missing(g, t))
			continue
		}
		rss := func(name string) (string, bool, bool) { return rssFigures(rep.RSS, name) }
		fig, met, found := rss(b)
		if !found {
			out = append(out, missing(g, t))
			continue
		}
		out = append(out, Goal{Goal: g, Target: t, Measured: fig, Met: met, Floor: r.floors(rss)})
	}

	if s := rep.Startup; s != nil {
		g, t := "start-up overhead (median) vs tini-static", "within 1 ms"
		tini := startupRow(s, NameTini)
		// overhead is one init's median overhead and its distance to tini's.
		overhead := func(name string) (v, d float64, ok bool) {
			f := startupRow(s, name)
			if f == nil || tini == nil || f.Raw.N == 0 || tini.Raw.N == 0 {
				return 0, 0, false
			}
			return f.OverheadMedianUS, f.OverheadMedianUS - tini.OverheadMedianUS, true
		}
		if v, d, ok := overhead(NameGracefulinit); !ok {
			out = append(out, missing(g, t))
		} else {
			out = append(out, Goal{Goal: g, Target: t, Measured: fmt.Sprintf("%s vs %s (%s)", msUS(v), msUS(tini.OverheadMedianUS), signedMS(d)), Met: d <= goalStartupDeltaUS,
				Floor: r.floors(func(name string) (string, bool, bool) {
					v, d, ok := overhead(name)
					return fmt.Sprintf("%s (%s)", msUS(v), signedMS(d)), d <= goalStartupDeltaUS, ok
				})})
		}
	} else {
		out = append(out, missing("start-up overhead (median) vs tini-static", "within 1 ms"))
	}

	if s := rep.Signals; s != nil && len(s.Modes) > 0 {
		for _, m := range s.Modes {
			gi, tini := signalRow(&m, NameGracefulinit), signalRow(&m, NameTini)
			for _, q := range []struct {
				name string
				get  func(Stats) float64
			}{{"median", func(s Stats) float64 { return s.MedianUS }}, {"p99", func(s Stats) float64 { return s.P99US }}} {
				g, t := fmt.Sprintf("signal latency %s (%s) vs tini-static", q.name, m.Mode), "within 1 ms"
				if gi == nil || tini == nil || gi.Latency.N == 0 || tini.Latency.N == 0 {
					out = append(out, missing(g, t))
					continue
				}
				d := q.get(gi.Latency) - q.get(tini.Latency)
				out = append(out, Goal{Goal: g, Target: t, Measured: fmt.Sprintf("%s vs %s (%s)", msUS(q.get(gi.Latency)), msUS(q.get(tini.Latency)), signedMS(d)), Met: d <= goalSignalDeltaUS && gi.Lost == 0})
			}
		}
	} else {
		out = append(out, missing("signal latency vs tini-static", "within 1 ms"))
	}

	if s := rep.Reap; s != nil && len(s.Storms) > 0 {
		for _, st := range s.Storms {
			g, t := fmt.Sprintf("reaping %d orphans (%s storm) vs tini-static", st.Orphans, st.How), "<= 2x"
			gi, tini := reapRow(&st, NameGracefulinit), reapRow(&st, NameTini)
			if gi == nil || tini == nil || gi.TotalMS == 0 || tini.TotalMS == 0 {
				out = append(out, missing(g, t))
				continue
			}
			v := gi.TotalMS / tini.TotalMS
			out = append(out, Goal{Goal: g, Target: t, Measured: fmt.Sprintf("%.0f ms vs %.0f ms (%.2fx)", gi.TotalMS, tini.TotalMS, v), Met: v <= goalReapRatio})
		}
	} else {
		out = append(out, missing("reaping orphans vs tini-static", "<= 2x"))
	}

	if s := rep.Term; s != nil && len(s.Modes) > 0 {
		for _, m := range s.Modes {
			g, t := fmt.Sprintf("SIGTERM-to-exit, drain 0 (%s) vs tini-static", m.Mode), "<= 1.05x"
			tini := termRow(&m, NameTini)
			// exit is one init's median exit time and its ratio to tini's.
			exit := func(name string) (v, ratio float64, ok bool) {
				f := termRow(&m, name)
				if f == nil || tini == nil || f.Exit.N == 0 || tini.Exit.N == 0 {
					return 0, 0, false
				}
				return f.Exit.MedianUS, f.Exit.MedianUS / tini.Exit.MedianUS, true
			}
			v, ratio, ok := exit(NameGracefulinit)
			if !ok {
				out = append(out, missing(g, t))
				continue
			}
			out = append(out, Goal{Goal: g, Target: t, Measured: fmt.Sprintf("%s vs %s (%.2fx)", msUS(v), msUS(tini.Exit.MedianUS), ratio), Met: ratio <= goalTermRatio,
				Floor: r.floors(func(name string) (string, bool, bool) {
					v, ratio, ok := exit(name)
					return fmt.Sprintf("%s (%.2fx)", msUS(v), ratio), ratio <= goalTermRatio, ok
				})})
		}
	} else {
		out = append(out, missing("SIGTERM-to-exit vs tini-static", "<= 1.05x"))
	}

	out = append(out, learnGoal(rep.Drain), drainCPUGoal(rep.Drain))

	g, t := "drain delay after the quiet period (median)", fmt.Sprintf("< %d ms", goalDrainDelayMS)
	if s := rep.Drain; s != nil && len(s.Runs) > 0 {
		out = append(out, Goal{Goal: g, Target: t, Measured: fmt.Sprintf("%.0f ms (drain ended by: %s)", s.MedianDelayMS, reasons(s.Runs)), Met: s.MedianDelayMS < goalDrainDelayMS})
	} else {
		out = append(out, missing(g, t))
	}
	return out
}

// learnGoal compares the CPU of a running app's gracefulinit with and
// without the drain learning its callers: the learner's share.
func learnGoal(s *DrainResult) Goal {
	g, t := "learning the callers while the app runs (idle connections open), the learner's share", fmt.Sprintf("<= %.1f ms/s (%.1f%% of a core)", goalLearnMSPerS, goalLearnMSPerS/10)
	var base, learn *CPURow
	if s != nil {
		for i := range s.CPU {
			c := &s.CPU[i]
			if c.Phase != "running" || c.EndedEarly {
				continue
			}
			if slices.Contains(c.Flags, "--drain-quiet") {
				learn = c
			} else {
				base = c
			}
		}
	}
	if base == nil || learn == nil {
		return Goal{Goal: g, Target: t, Measured: "not measured (see errors)"}
	}
	d := learn.SchedMSPerS - base.SchedMSPerS
	return Goal{Goal: g, Target: t, Met: d <= goalLearnMSPerS,
		Measured: fmt.Sprintf("%.3f ms/s with %d connections (%.3f learning - %.3f without a watcher, schedstat)", d, learn.IdleConns, learn.SchedMSPerS, base.SchedMSPerS)}
}

// drainCPUGoal checks the CPU of a watched drain with the most idle
// connections measured (10,000 in a full run).
func drainCPUGoal(s *DrainResult) Goal {
	g, t := "a watched drain with the most connections", fmt.Sprintf("<= %d ms/s (%d%% of a core)", goalDrainMSPerS, goalDrainMSPerS/10)
	var most *CPURow
	if s != nil {
		for i := range s.CPU {
			c := &s.CPU[i]
			if c.Phase == "draining" && slices.Contains(c.Flags, "--drain-quiet") && !c.EndedEarly && (most == nil || c.IdleConns > most.IdleConns) {
				most = c
			}
		}
	}
	if most == nil {
		return Goal{Goal: g, Target: t, Measured: "not measured (see errors)"}
	}
	return Goal{Goal: g, Target: t, Met: most.SchedMSPerS <= goalDrainMSPerS,
		Measured: fmt.Sprintf("%.3f ms/s with %d connections (schedstat)", most.SchedMSPerS, most.IdleConns)}
}

// rssFigures renders one init's idle RSS in every mode ("child 2.1 MB,
// pid1 2.1 MB"), whether all are under the goal, and whether it was measured.
func rssFigures(res *RSSResult, name string) (figure string, met, found bool) {
	var parts []string
	met = true
	for _, m := range res.Modes {
		for _, row := range m.Rows {
			if row.Name == name {
				found = true
				met = met && row.VmRSSKB < goalRSSKB
				parts = append(parts, fmt.Sprintf("%s %s", m.Mode, mb(row.VmRSSKB)))
			}
		}
	}
	return strings.Join(parts, ", "), met, found
}

// floors renders what measure says of each Go floor: "go-floor 2.1 MB
// (met); ...". measure returns the figure, whether it meets the goal, and
// whether the floor was measured at all.
func (r *runner) floors(measure func(name string) (figure string, met, found bool)) string {
	var parts []string
	for _, name := range []string{NameGoFloor, NameGoFloorDeps} {
		fig, met, found := measure(name)
		if !found {
			continue
		}
		verdict := "missed"
		if met {
			verdict = "met"
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", name, fig, verdict))
	}
	return strings.Join(parts, "; ")
}

func reasons(runs []DrainRun) string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		if !seen[r.Reason] {
			seen[r.Reason] = true
			out = append(out, r.Reason)
		}
	}
	return strings.Join(out, ", ")
}

func startupRow(s *StartupResult, name string) *StartupRow {
	for i := range s.Rows {
		if s.Rows[i].Name == name {
			return &s.Rows[i]
		}
	}
	return nil
}

func signalRow(m *SignalMode, name string) *SignalRow {
	for i := range m.Rows {
		if m.Rows[i].Name == name {
			return &m.Rows[i]
		}
	}
	return nil
}

func reapRow(s *ReapStorm, name string) *ReapRow {
	for i := range s.Rows {
		if s.Rows[i].Name == name {
			return &s.Rows[i]
		}
	}
	return nil
}

func termRow(m *TermMode, name string) *TermRow {
	for i := range m.Rows {
		if m.Rows[i].Name == name {
			return &m.Rows[i]
		}
	}
	return nil
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// msUS renders microseconds as milliseconds with enough digits for
// sub-millisecond figures.
func msUS(us float64) string {
	if us < 10000 && us > -10000 {
		return fmt.Sprintf("%.3f ms", us/1000)
	}
	return fmt.Sprintf("%.1f ms", us/1000)
}

func signedMS(us float64) string {
	if us >= 0 {
		return "+" + msUS(us)
	}
	return msUS(us)
}

// fmtRatio renders a ratio, or "-" when there is nothing to compare.
func fmtRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// WriteMarkdown renders the report as one table per section.
func (rep *Report) WriteMarkdown(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# gracefulinit benchmark\n\n")
	mode := "full"
	if rep.Meta.Quick {
		mode = "quick (smoke run: small samples, not for comparison)"
	}
	p("%s, kernel %s, %d CPUs, %s; run: %s. Ratios are to tini-static (lower is better).\n\n", rep.Meta.Start.Format("2006-01-02 15:04 MST"), rep.Meta.Kernel, rep.Meta.CPUs, rep.Meta.GoVersion, mode)
	p("Modes: **child** = the init runs as a child of the benchmark (tini with -s; the others register as subreapers themselves, dumb-init cannot); **pid1** = PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`), as in a container.\n\n")
	for _, n := range rep.Meta.Notes {
		p("- %s\n", n)
	}
	if len(rep.Meta.Notes) > 0 {
		p("\n")
	}

	tiniSize := int64(0)
	for _, i := range rep.Inits {
		if i.Name == NameTini {
			tiniSize = i.Size
		}
	}
	p("## 1. Binary size\n\n| init | version | size | linking | vs tini-static | note |\n|---|---|---:|---|---:|---|\n")
	for _, i := range rep.Inits {
		if !i.Present {
			p("| %s | - | - | - | - | missing (%s) |\n", i.Name, i.Path)
			continue
		}
		link := "static"
		if !i.Static {
			link = "dynamic (+ libc)"
		}
		p("| %s | %s | %s | %s | %s | %s |\n", i.Name, i.Version, kbSize(i.Size), link, fmtRatio(ratio(float64(i.Size), float64(tiniSize))), i.Note)
	}
	p("\n")

	if s := rep.RSS; s != nil {
		p("## 2. Idle RSS while supervising `sleep` (VmRSS of the init after 1 s, median of %d runs)\n\n", s.Runs)
		p("Goal: gracefulinit under 6 MB.\n\n| mode | init | VmRSS | RssAnon | vs tini-static |\n|---|---|---:|---:|---:|\n")
		for _, m := range s.Modes {
			var ref int64
			for _, row := range m.Rows {
				if row.Name == NameTini {
					ref = row.VmRSSKB
				}
			}
			for _, row := range m.Rows {
				p("| %s | %s | %s | %s | %s |\n", m.Mode, row.Name, mb(row.VmRSSKB), mb(row.RssAnonKB), fmtRatio(ratio(float64(row.VmRSSKB), float64(ref))))
			}
		}
		p("\n")
	}

	if s := rep.Startup; s != nil {
		p("## 3. Start-up overhead: `INIT -- true`, %d runs each, interleaved (mode: %s)\n\n", s.Runs, s.Mode)
		p("`true` alone: median %s, p90 %s. Overhead = init's figure minus that. Goal: gracefulinit's median overhead within 1 ms of tini-static's.\n\n", msUS(s.Baseline.MedianUS), msUS(s.Baseline.P90US))
		p("| init | median | p90 | overhead median | overhead p90 | overhead vs tini-static | failures |\n|---|---:|---:|---:|---:|---:|---:|\n")
		ref := startupRow(s, NameTini)
		for _, row := range s.Rows {
			cmp := "-"
			if ref != nil {
				cmp = fmt.Sprintf("%s (%s)", signedMS(row.OverheadMedianUS-ref.OverheadMedianUS), fmtRatio(ratio(row.OverheadMedianUS, ref.OverheadMedianUS)))
			}
			p("| %s | %s | %s | %s | %s | %s | %d |\n", row.Name, msUS(row.Raw.MedianUS), msUS(row.Raw.P90US), msUS(row.OverheadMedianUS), msUS(row.OverheadP90US), cmp, row.Failures)
		}
		p("\n")
	}

	if s := rep.Signals; s != nil {
		p("## 4. Signal-forwarding latency: kill(init, SIGUSR1) to the child's handler, %d signals per init, interleaved\n\n", s.Signals)
		p("`direct` is the recorder signalled without an init: the floor of the measurement (a Go child's signal delivery). Goal: within 1 ms of tini-static.\n\n")
		p("| mode | init | median | p90 | p99 | max | median over direct | vs tini-static (median) | lost |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, m := range s.Modes {
			p("| %s | direct | %s | %s | %s | %s | - | - | - |\n", m.Mode, msUS(m.Direct.MedianUS), msUS(m.Direct.P90US), msUS(m.Direct.P99US), msUS(m.Direct.MaxUS))
			ref := signalRow(&m, NameTini)
			for _, row := range m.Rows {
				cmp := "-"
				if ref != nil {
					cmp = fmt.Sprintf("%s (%s)", signedMS(row.Latency.MedianUS-ref.Latency.MedianUS), fmtRatio(ratio(row.Latency.MedianUS, ref.Latency.MedianUS)))
				}
				l := row.Latency
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", m.Mode, row.Name, msUS(l.MedianUS), msUS(l.P90US), msUS(l.P99US), msUS(l.MaxUS), signedMS(l.MedianUS-m.Direct.MedianUS), cmp, row.Lost)
			}
		}
		p("\n")
	}

	if s := rep.Reap; s != nil {
		p("## 5. Reaping orphans (mode: %s)\n\n", s.Mode)
		p("A child makes orphans through intermediates of %d that exit without waiting, %d at a time. **fork** storm: each orphan exits right after fork (no exec), the cheapest orphan there is, so the reaper's share of the time is largest; **exec** storm: each orphan runs `true`, so spawning dominates. Total = first spawn to no unreaped child left under the init; spawn = creating them all (the same work for every init, slowed by a reaper competing for the CPU); tail = last orphan handed over to last one reaped; peak = most children waiting at one poll (every 2 ms). Goal: no slower than 2x tini-static.\n\n", reapBatch, reapParallel)
		p("| storm | init | total | spawn | tail | peak unreaped | orphans/s | vs tini-static | failed runs |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, st := range s.Storms {
			ref := reapRow(&st, NameTini)
			for _, row := range st.Rows {
				cmp := "-"
				if ref != nil {
					cmp = fmtRatio(ratio(row.TotalMS, ref.TotalMS))
				}
				p("| %s, %d orphans, median of %d | %s | %.0f ms | %.0f ms | %.1f ms | %d | %.0f | %s | %d |\n", st.How, st.Orphans, st.Runs, row.Name, row.TotalMS, row.SpawnMS, row.TailMS, row.PeakUnreaped, row.OrphansPerSec, cmp, row.FailedRuns)
			}
		}
		p("\n")
	}

	if s := rep.Term; s != nil {
		p("## 6. SIGTERM to init exit, no drain (gracefulinit %s), child `sleep`, %d runs each, interleaved\n\n", strings.Join(s.Flags, " "), s.Runs)
		p("From kill(init, SIGTERM) to the init's exit (pidfd). Goal: gracefulinit / tini-static <= 1.05.\n\n")
		p("| mode | init | median | p90 | p99 | vs tini-static (median) | failures |\n|---|---|---:|---:|---:|---:|---:|\n")
		for _, m := range s.Modes {
			ref := termRow(&m, NameTini)
			for _, row := range m.Rows {
				cmp := "-"
				if ref != nil {
					cmp = fmt.Sprintf("%s (%s)", signedMS(row.Exit.MedianUS-ref.Exit.MedianUS), fmtRatio(ratio(row.Exit.MedianUS, ref.Exit.MedianUS)))
				}
				p("| %s | %s | %s | %s | %s | %s | %d |\n", m.Mode, row.Name, msUS(row.Exit.MedianUS), msUS(row.Exit.P90US), msUS(row.Exit.P99US), cmp, row.Failures)
			}
		}
		p("\n")
	}

	if s := rep.Drain; s != nil {
		p("## 7. Traffic-aware drain (gracefulinit as PID 1, `%s`)\n\n", strings.Join(s.Flags, " "))
		p("SIGTERM, then a client sends requests for %.0f ms (pooled keep-alive connections plus one new connection per request) and stops; its connections stay open. Delay = (stop signal at the app) - (last request) - quiet (%.0f ms). Goal: < 200 ms.\n\n", s.TrafficMS, s.QuietMS)
		p("| run | SIGTERM to stop signal | delay | drain ended by | held by |\n|---:|---:|---:|---|---|\n")
		for i, run := range s.Runs {
			p("| %d | %.0f ms | %.0f ms | %s | %s |\n", i+1, run.DrainMS, run.DelayMS, run.Reason, cmp.Or(run.Slowest, "-"))
		}
		if len(s.Runs) > 0 {
			p("| median | | %.0f ms | | |\n", s.MedianDelayMS)
		}
		p("\nCPU gracefulinit uses with idle connections open, while the app runs (a watched drain learns its callers, its samples paced to stay within 0.05%% of a core) and while it drains (a sample every 100 ms, less often when a sample costs more than 1.5 ms: within 1.5%% of a core):\n\n")
		p("| phase | variant | flags | idle conns | window | CPU (utime+stime) | CPU (schedstat) | note |\n|---|---|---|---:|---:|---:|---:|---|\n")
		for _, c := range s.CPU {
			note := ""
			if c.EndedEarly {
				note = "drain ended inside the window (" + c.DrainEndReason + ")"
			}
			p("| %s | %s | `%s` | %d | %.1f s | %.2f ms/s | %.3f ms/s | %s |\n", c.Phase, c.Variant, strings.Join(c.Flags, " "), c.IdleConns, c.WindowS, c.TicksMSPerS, c.SchedMSPerS, note)
		}
		p("\n")
	}

	p("## Goals\n\n`go-floor` is cmd/gofloor, the smallest init Go can build (catch, fork, forward, reap, exit; nothing else), and `go-floor+deps` the same linking the registry library gracefulinit links (fargo), unused; both built by this run. A goal the floor misses is out of reach for any init in Go on this machine.\n\n| goal | target | measured | met | Go floor, same run |\n|---|---|---|---|---|\n")
	for _, g := range rep.Goals {
		met := "no"
		if g.Met {
			met = "yes"
		}
		floor := g.Floor
		if floor == "" {
			floor = "-"
		}
		p("| %s | %s | %s | %s | %s |\n", g.Goal, g.Target, g.Measured, met, floor)
	}
	if len(rep.Errors) > 0 {
		p("\n## Errors\n\n")
		for _, e := range rep.Errors {
			p("- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	p("\nSection times: ")
	var parts []string
	for _, k := range []string{"idle_rss", "startup", "signals", "reaping", "sigterm_to_exit", "drain"} {
		if v, ok := rep.Timing[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f s", k, float64(v)/1000))
		}
	}
	p("%s.\n", strings.Join(parts, ", "))
}

func kbSize(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KB", float64(b)/1024)
	}
}
