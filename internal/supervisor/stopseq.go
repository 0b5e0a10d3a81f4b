package supervisor

import (
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/signals"
	"github.com/gracefulinit/gracefulinit/internal/timeline"
)

type phase int

const (
	phaseRunning  phase = iota // no stop signal yet
	phaseDraining              // stop sequence: drain window
	phaseStopping              // stop signal sent to the app
	phaseExited                // the app exited: nothing more is sent to it
)

// stopSeq decides the stop sequence: events, each with the time it
// happened, go in; actions come out. It does no I/O, starts nothing and
// reads no clock, so its decisions are unit-tested without processes; the
// supervisor's loop feeds it and carries the actions out. Its fields are
// also the record the shutdown summary is made from.
type stopSeq struct {
	tl      timeline.Timeline
	stopSig syscall.Signal // sent to the app when the drain is over
	hooks   bool           // a registry step runs: offline at the start of the sequence
	// early: the app may have registered itself before it was ready (mark
	// mode, HTTP hooks), so a stop before ready still takes it out.
	early bool
	// dumpSig is sent once, dumpBefore before the kill, to an app that
	// still runs after its stop signal (a JVM's SIGQUIT thread dump); 0: never.
	dumpSig    syscall.Signal
	dumpBefore time.Duration

	phase       phase
	ready       bool // the app became ready before the stop sequence
	termAt      time.Time
	termSig     syscall.Signal
	deadlines   timeline.Deadlines
	drainReason string // why the drain ended, or why there was none
	drainEnd    time.Time
	stopAt      time.Time
	killed      bool
	dumped      bool // dumpSig was sent
}

// actions are what one event asks of the supervisor, in this order.
type actions struct {
	begin    bool      // a stop sequence began: stop the readiness probe and the online step
	killAt   time.Time // arm the kill timer; zero: none (tini mode, or not now)
	dumpAt   time.Time // arm the dump timer; zero: none
	offline  bool      // start the registry offline step, bounded by deadlines.Kill
	drain    bool      // start the drain
	endDrain string    // cancel the drain, which ended for this reason ("": no)
	forward  syscall.Signal
	stop     bool // forward is the stop signal
	dump     bool // forward is the dump signal
	kill     bool // SIGKILL the process tree now
}

func newStopSeq(tl timeline.Timeline, stopSig syscall.Signal, hooks bool) stopSeq {
	return stopSeq{tl: tl, stopSig: stopSig, hooks: hooks}
}

// becameReady records the app's readiness; false once the stop sequence
// began (the online step must not start then).
func (s *stopSeq) becameReady() bool {
	if s.phase != phaseRunning {
		return false
	}
	s.ready = true
	return true
}

// signal decides what a signal gracefulinit received does: SIGTERM starts
// the stop sequence (a second one ends the drain, a later one is
// forwarded), the others are forwarded when signals.Forwarded says so.
func (s *stopSeq) signal(now time.Time, sig syscall.Signal) actions {
	switch {
	case s.phase == phaseExited:
		return actions{} // its pid may be anyone's once reaped
	case sig == syscall.SIGCHLD:
		return actions{} // reaping follows every wake-up
	case sig == syscall.SIGTERM:
		return s.term(now, sig)
	case signals.Forwarded(sig):
		return actions{forward: sig}
	}
	return actions{}
}

func (s *stopSeq) term(now time.Time, sig syscall.Signal) actions {
	switch s.phase {
	case phaseDraining:
		return s.drainOver(now, "second-signal")
	case phaseStopping:
		return actions{forward: sig}
	}
	s.termAt, s.termSig = now, sig
	s.deadlines = s.tl.At(now)
	a := actions{begin: true, killAt: s.deadlines.Kill}
	if s.dumpSig != 0 && !s.deadlines.Kill.IsZero() {
		a.dumpAt = s.deadlines.Kill.Add(-s.dumpBefore)
	}
	switch {
	case !s.ready && !(s.hooks && s.early):
		s.drainReason = "not ready"
		return s.stopNow(now, a)
	case !s.ready:
		// Registered but not ready: out of the registry, and a drain only
		// by the per-caller rule (it waits for the callers it sees, and
		// for none when there are none); a fixed drain knows no callers.
		a.offline = true
		if s.tl.Drain <= 0 || s.tl.DrainQuiet <= 0 {
			s.drainReason = "not ready"
			return s.stopNow(now, a)
		}
	default:
		a.offline = s.hooks
		if s.tl.Drain <= 0 { // no drain
			s.drainReason = "none"
			return s.stopNow(now, a)
		}
	}
	s.phase = phaseDraining
	a.drain = true
	return a
}

// drainOver ends the drain window for reason and sends the stop signal;
// nothing when no drain is under way.
func (s *stopSeq) drainOver(now time.Time, reason string) actions {
	if s.phase != phaseDraining {
		return actions{}
	}
	s.drainReason, s.drainEnd = reason, now
	return s.stopNow(now, actions{endDrain: reason})
}

func (s *stopSeq) stopNow(now time.Time, a actions) actions {
	s.phase = phaseStopping
	s.stopAt = now
	a.forward, a.stop = s.stopSig, true
	return a
}

// killDue is the kill timer firing.
func (s *stopSeq) killDue() actions {
	if s.phase == phaseExited {
		return actions{}
	}
	s.killed = true
	return actions{kill: true}
}

// dumpDue is the dump timer firing: the app still runs this close to the
// kill, so it gets the dump signal once. Only after its stop signal: the
// dump is of the stop that hangs, not of a drain (config keeps
// --dump-before within the stop timeout, so the drain is over by then).
func (s *stopSeq) dumpDue() actions {
	if s.phase != phaseStopping || s.dumped || s.dumpSig == 0 {
		return actions{}
	}
	s.dumped = true
	return actions{forward: s.dumpSig, dump: true}
}

// appExited records the app's exit; during the drain it ends the drain.
func (s *stopSeq) appExited(now time.Time) (duringDrain bool) {
	duringDrain = s.phase == phaseDraining
	if duringDrain {
		s.drainReason, s.drainEnd = "app-exit", now
	}
	s.phase = phaseExited
	return duringDrain
}
