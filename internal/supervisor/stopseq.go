package supervisor

import (
	"slices"
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

// seqConfig is what a stop sequence is configured with; fixed at newStopSeq.
type seqConfig struct {
	tl timeline.Timeline
	// stopOn are the signals that start the sequence (--stop-on); empty: TERM.
	stopOn []syscall.Signal
	// stopSig is sent to the app when the drain is over; 0: the signal
	// that started the sequence.
	stopSig syscall.Signal
	hooks   bool // a registry step runs: offline at the start of the sequence
	// early: the app may have registered itself before it was ready (mark
	// mode, HTTP hooks), so a stop before ready still takes it out.
	early bool
	// dumpSig is sent once, dumpBefore before the kill, to an app that
	// still runs after its stop signal (a JVM's SIGQUIT thread dump); 0: never.
	dumpSig    syscall.Signal
	dumpBefore time.Duration
}

// record is the stop sequence as it happened: what the shutdown summary
// and the termination message are made from.
type record struct {
	ready       bool           // the app became ready before the stop sequence
	termAt      time.Time      // the signal that started the sequence; zero: none
	termSig     syscall.Signal //
	stopSig     syscall.Signal // the stop signal the app got; 0: none
	stopAt      time.Time
	drainReason string // why the drain ended, or why there was none
	drainEnd    time.Time
	killed      bool // gracefulinit SIGKILLed the tree
	diedOfKill  bool // the app died of SIGKILL, whoever sent it (the OOM killer, a user)
	dumped      bool // the dump signal was sent
	dumpLate    bool // its time came during the drain: it went right after the stop signal
	exitAt      time.Time
}

// Killed is the summary's killed: the app died of SIGKILL, by gracefulinit
// or anyone else.
func (r record) Killed() bool { return r.killed || r.diedOfKill }

// stopSeq decides the stop sequence: events, each with the time it
// happened, go in; actions come out. It does no I/O, starts nothing and
// reads no clock, so its decisions are unit-tested without processes; the
// supervisor's loop feeds it and carries the actions out. It owns its
// state: the supervisor changes it only through the event methods below
// (becameReady, signal, drainOver, killDue, dumpDue, appExited) and reads
// it through running, killPoint, record and summaryDue.
type stopSeq struct {
	cfg       seqConfig
	phase     phase
	deadlines timeline.Deadlines
	dumpAt    time.Time // zero: no dump planned
	rec       record
}

// actions are what one event asks of the supervisor, in this order.
type actions struct {
	begin    bool      // a stop sequence began: stop the readiness probe and the online step
	killAt   time.Time // arm the kill timer; zero: none (tini mode, or not now)
	dumpAt   time.Time // arm the dump timer; zero: none
	offline  bool      // start the registry offline step, bounded by killPoint
	drain    bool      // start the drain
	endDrain string    // cancel the drain, which ended for this reason ("": no)
	stop     syscall.Signal
	dump     syscall.Signal // right after stop when both are set
	forward  syscall.Signal // a signal passed on to the app as it is
	kill     bool           // SIGKILL the process tree now
	// closeBy: after the app's exit, a stop request started the runtime's
	// clock; the registry close must end by this kill point.
	closeBy time.Time
}

func newStopSeq(c seqConfig) stopSeq {
	if len(c.stopOn) == 0 {
		c.stopOn = []syscall.Signal{syscall.SIGTERM}
	}
	return stopSeq{cfg: c}
}

// running reports whether no stop sequence began and the app runs.
func (s *stopSeq) running() bool { return s.phase == phaseRunning }

// killPoint is when gracefulinit kills the tree; zero when it never does
// (tini mode) or no stop sequence began.
func (s *stopSeq) killPoint() time.Time { return s.deadlines.Kill }

// record is the sequence so far, for the summary.
func (s *stopSeq) record() record { return s.rec }

// summaryDue decides the termination message: written only when
// gracefulinit caused the exit (it sent the stop signal or killed), so
// that after an exit of the app's own (a crash) the file stays as the app
// left it and the kubelet's fallback to the log's tail still works.
func (s *stopSeq) summaryDue() bool { return !s.rec.stopAt.IsZero() || s.rec.killed }

// becameReady records the app's readiness; false once the stop sequence
// began (the online step must not start then).
func (s *stopSeq) becameReady() bool {
	if s.phase != phaseRunning {
		return false
	}
	s.rec.ready = true
	return true
}

// signal decides what a signal gracefulinit received does: a --stop-on
// signal starts the stop sequence (a second one ends the drain, a later
// one is forwarded), the others are forwarded when signals.Forwarded says
// so. After the app's exit nothing is sent, but a stop request still
// starts the runtime's clock for the registry close.
func (s *stopSeq) signal(now time.Time, sig syscall.Signal) actions {
	stopOn := slices.Contains(s.cfg.stopOn, sig)
	switch {
	case s.phase == phaseExited:
		// Its pid may be anyone's once reaped.
		if stopOn && s.deadlines.Kill.IsZero() && s.cfg.tl.Kills() {
			s.deadlines = s.cfg.tl.At(now)
			return actions{closeBy: s.deadlines.Kill}
		}
		return actions{}
	case sig == syscall.SIGCHLD:
		return actions{} // reaping follows every wake-up
	case stopOn:
		return s.stopRequest(now, sig)
	case signals.Forwarded(sig):
		return actions{forward: sig}
	}
	return actions{}
}

func (s *stopSeq) stopRequest(now time.Time, sig syscall.Signal) actions {
	switch s.phase {
	case phaseDraining:
		return s.drainOver(now, "second-signal")
	case phaseStopping:
		return actions{forward: sig}
	}
	s.rec.termAt, s.rec.termSig = now, sig
	s.deadlines = s.cfg.tl.At(now)
	a := actions{begin: true, killAt: s.deadlines.Kill}
	if s.cfg.dumpSig != 0 && !s.deadlines.Kill.IsZero() {
		s.dumpAt = s.deadlines.Kill.Add(-s.cfg.dumpBefore)
		a.dumpAt = s.dumpAt
	}
	switch {
	case !s.rec.ready && !(s.cfg.hooks && s.cfg.early):
		s.rec.drainReason = "not ready"
		return s.stopNow(now, a)
	case !s.rec.ready:
		// Registered but not ready: out of the registry, and a drain only
		// by the per-caller rule (it waits for the callers it sees, and
		// for none when there are none); a fixed drain knows no callers.
		a.offline = true
		if s.cfg.tl.Drain <= 0 || s.cfg.tl.DrainQuiet <= 0 {
			s.rec.drainReason = "not ready"
			return s.stopNow(now, a)
		}
	default:
		a.offline = s.cfg.hooks
		if s.cfg.tl.Drain <= 0 { // no drain
			s.rec.drainReason = "none"
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
	s.rec.drainReason, s.rec.drainEnd = reason, now
	return s.stopNow(now, actions{endDrain: reason})
}

// stopNow sends the stop signal: --stop-signal, else the signal that
// started the sequence. A dump whose time came during the drain goes right
// after it, never silently not at all.
func (s *stopSeq) stopNow(now time.Time, a actions) actions {
	s.phase = phaseStopping
	s.rec.stopAt = now
	a.stop = s.cfg.stopSig
	if a.stop == 0 {
		a.stop = s.rec.termSig
	}
	s.rec.stopSig = a.stop
	if !s.dumpAt.IsZero() && !now.Before(s.dumpAt) && !s.rec.dumped {
		s.rec.dumped, s.rec.dumpLate = true, true
		a.dump = s.cfg.dumpSig
	}
	return a
}

// killDue is the kill timer firing.
func (s *stopSeq) killDue() actions {
	if s.phase == phaseExited {
		return actions{}
	}
	s.rec.killed = true
	return actions{kill: true}
}

// dumpDue is the dump timer firing: the app still runs this close to the
// kill, so it gets the dump signal once. Only after its stop signal: the
// dump is of the stop that hangs, not of a drain. A drain that runs past
// the dump time (its ceiling reported late on a loaded machine) sends it
// with the stop signal instead (stopNow).
func (s *stopSeq) dumpDue() actions {
	if s.phase != phaseStopping || s.rec.dumped || s.cfg.dumpSig == 0 {
		return actions{}
	}
	s.rec.dumped = true
	return actions{dump: s.cfg.dumpSig}
}

// appExited records the app's exit (sigkill: it died of SIGKILL); during
// the drain it ends the drain.
func (s *stopSeq) appExited(now time.Time, sigkill bool) (duringDrain bool) {
	duringDrain = s.phase == phaseDraining
	if duringDrain {
		s.rec.drainReason, s.rec.drainEnd = "app-exit", now
	}
	s.rec.diedOfKill = sigkill
	s.rec.exitAt = now
	s.phase = phaseExited
	return duringDrain
}
