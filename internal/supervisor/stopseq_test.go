package supervisor

import (
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/timeline"
)

// event is one input to a stopSeq, at an offset from the test's zero time.
type event struct {
	at     time.Duration
	kind   string // ready, signal, drain (the drain reported), kill (the timer fired)
	sig    syscall.Signal
	reason string
	killAt time.Duration // the kill timer wanted, as an offset from t0; 0: none
	want   actions       // without killAt
}

var t0 = time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC)

func mustTimeline(t *testing.T, in timeline.Input) timeline.Timeline {
	t.Helper()
	tl, err := timeline.New(in)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// TestStopSeqDecisions drives the stop sequence with events and a clock
// and checks each decision, with no process, timer or goroutine.
func TestStopSeqDecisions(t *testing.T) {
	set := func(d time.Duration) timeline.Setting { return timeline.Setting{Value: d, Set: true} }
	dflt := func(d time.Duration) timeline.Setting { return timeline.Setting{Value: d} }
	base := timeline.Input{GracePeriod: dflt(30 * time.Second), KillMargin: dflt(time.Second), StopTimeout: dflt(10 * time.Second)}
	with := func(mod func(*timeline.Input)) timeline.Input { in := base; mod(&in); return in }
	tiniMode := base
	grace10 := with(func(in *timeline.Input) { in.GracePeriod = set(10 * time.Second) })
	drain3 := with(func(in *timeline.Input) { in.GracePeriod, in.Drain = set(10*time.Second), set(3*time.Second) })
	registry := with(func(in *timeline.Input) { in.GracePeriod, in.Registry = set(20*time.Second), true })
	const s = time.Second
	term, usr1, chld, segv := syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGCHLD, syscall.SIGSEGV

	tests := []struct {
		name        string
		in          timeline.Input
		stop        syscall.Signal
		hooks       bool
		early       bool // the app registers itself (mark mode, HTTP hooks)
		events      []event
		drainReason string
		killed      bool
	}{
		{name: "tini mode: TERM forwarded, no kill timer", in: tiniMode, stop: term, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, want: actions{begin: true, forward: term, stop: true}},
			{at: 2 * s, kind: "signal", sig: term, want: actions{forward: term}},
			{at: 40 * s, kind: "signal", sig: usr1, want: actions{forward: usr1}},
		}, drainReason: "none"},
		{name: "signals other than TERM", in: tiniMode, stop: term, events: []event{
			{kind: "signal", sig: usr1, want: actions{forward: usr1}},
			{kind: "signal", sig: chld},
			{kind: "signal", sig: segv},
			{kind: "signal", sig: syscall.SIGINT, want: actions{forward: syscall.SIGINT}},
		}},
		{name: "grace 10s, no drain: stop at once, kill at 9s", in: grace10, stop: term, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, forward: term, stop: true}},
			{at: 10 * s, kind: "kill", want: actions{kill: true}},
		}, drainReason: "none", killed: true},
		{name: "drain then the stop signal", in: drain3, stop: syscall.SIGQUIT, hooks: true, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 2 * s, kind: "signal", sig: usr1, want: actions{forward: usr1}},
			{at: 4 * s, kind: "drain", reason: "ceiling", want: actions{endDrain: "ceiling", forward: syscall.SIGQUIT, stop: true}},
			{at: 4 * s, kind: "drain", reason: "late report"}, // already over: nothing
			{at: 5 * s, kind: "signal", sig: term, want: actions{forward: term}},
		}, drainReason: "ceiling"},
		{name: "second TERM ends the drain", in: drain3, stop: term, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, drain: true}},
			{at: 2 * s, kind: "signal", sig: term, want: actions{endDrain: "second-signal", forward: term, stop: true}},
		}, drainReason: "second-signal"},
		{name: "not ready: no offline, no drain", in: registry, stop: term, hooks: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, forward: term, stop: true}},
			{at: 2 * s, kind: "ready"}, // too late: must not count
		}, drainReason: "not ready"},
		{name: "not ready, self-registered: offline and the per-caller drain", in: registry, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 2 * s, kind: "ready"}, // too late: must not count
			{at: 3 * s, kind: "drain", reason: "all-quiet", want: actions{endDrain: "all-quiet", forward: term, stop: true}},
		}, drainReason: "all-quiet"},
		{name: "not ready, self-registered, fixed drain: offline, no drain", in: drain3, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, offline: true, forward: term, stop: true}},
		}, drainReason: "not ready"},
		{name: "not ready, self-registered, no drain: offline", in: grace10, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, offline: true, forward: term, stop: true}},
		}, drainReason: "not ready"},
		{name: "not ready, self-registered but no hooks: nothing to take out", in: registry, stop: term, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, forward: term, stop: true}},
		}, drainReason: "not ready"},
		{name: "not ready, self-registered: a second TERM ends the drain", in: registry, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 2 * s, kind: "signal", sig: term, want: actions{endDrain: "second-signal", forward: term, stop: true}},
		}, drainReason: "second-signal"},
		{name: "registry: offline and the traffic-aware drain", in: registry, stop: term, hooks: true, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 3 * s, kind: "drain", reason: "quiet", want: actions{endDrain: "quiet", forward: term, stop: true}},
			{at: 20 * s, kind: "kill", want: actions{kill: true}},
		}, drainReason: "quiet", killed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := mustTimeline(t, tt.in)
			seq := newStopSeq(tl, tt.stop, tt.hooks)
			seq.early = tt.early
			for i, ev := range tt.events {
				now := t0.Add(ev.at)
				want := ev.want
				if ev.killAt != 0 {
					want.killAt = t0.Add(ev.killAt)
				}
				var got actions
				switch ev.kind {
				case "ready":
					seq.becameReady()
				case "signal":
					got = seq.signal(now, ev.sig)
				case "drain":
					got = seq.drainOver(now, ev.reason)
				case "kill":
					got = seq.killDue()
				default:
					t.Fatalf("unknown event %q", ev.kind)
				}
				if got != want {
					t.Fatalf("event %d (%s %v at %v): actions %+v, want %+v", i, ev.kind, ev.sig, ev.at, got, want)
				}
			}
			if seq.drainReason != tt.drainReason || seq.killed != tt.killed {
				t.Fatalf("drain reason %q killed %v, want %q %v", seq.drainReason, seq.killed, tt.drainReason, tt.killed)
			}
		})
	}
}

// TestStopSeqRecord: the times the summary reports are the events' times.
func TestStopSeqRecord(t *testing.T) {
	tl := mustTimeline(t, timeline.Input{
		GracePeriod: timeline.Setting{Value: 10 * time.Second, Set: true},
		KillMargin:  timeline.Setting{Value: time.Second},
		StopTimeout: timeline.Setting{Value: 10 * time.Second},
		Drain:       timeline.Setting{Value: 3 * time.Second, Set: true},
	})
	seq := newStopSeq(tl, syscall.SIGTERM, false)
	seq.becameReady()
	seq.signal(t0, syscall.SIGTERM)
	if seq.appExited(t0.Add(time.Second)) != true {
		t.Fatal("the app exited during the drain: the drain must end")
	}
	if seq.drainReason != "app-exit" || !seq.drainEnd.Equal(t0.Add(time.Second)) || !seq.stopAt.IsZero() {
		t.Fatalf("reason %q end %v stop %v; want app-exit at 1s and no stop signal", seq.drainReason, seq.drainEnd, seq.stopAt)
	}
	if got := seq.drainOver(t0.Add(2*time.Second), "ceiling"); got != (actions{}) {
		t.Fatalf("drain report after the app's exit: %+v, want nothing", got)
	}
	// Once the app is reaped its pid may be anyone's: nothing is sent.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGUSR1} {
		if got := seq.signal(t0.Add(2*time.Second), sig); got != (actions{}) {
			t.Fatalf("%v after the app's exit: %+v, want nothing", sig, got)
		}
	}
	if got := seq.killDue(); got != (actions{}) || seq.killed {
		t.Fatalf("kill timer after the app's exit: %+v (killed %v), want nothing", got, seq.killed)
	}
	want := timeline.Deadlines{Term: t0, DrainMax: t0.Add(3 * time.Second), Kill: t0.Add(9 * time.Second), Runtime: t0.Add(10 * time.Second)}
	if seq.termAt != t0 || seq.deadlines != want {
		t.Fatalf("term %v deadlines %+v, want %v %+v", seq.termAt, seq.deadlines, t0, want)
	}
}

// TestStopSeqDump: the dump signal goes once, dumpBefore before the kill,
// only to an app that got its stop signal and has not exited.
func TestStopSeqDump(t *testing.T) {
	tl := mustTimeline(t, timeline.Input{
		GracePeriod: timeline.Setting{Value: 20 * time.Second, Set: true},
		KillMargin:  timeline.Setting{Value: time.Second},
		StopTimeout: timeline.Setting{Value: 10 * time.Second},
		Drain:       timeline.Setting{Value: 5 * time.Second, Set: true},
	})
	quit := syscall.SIGQUIT
	newSeq := func(sig syscall.Signal) stopSeq {
		seq := newStopSeq(tl, syscall.SIGTERM, false)
		seq.dumpSig, seq.dumpBefore = sig, 3*time.Second
		seq.becameReady()
		return seq
	}
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		events func(*stopSeq) // between the stop signal and the dump timer
		want   actions
	}{
		{"app still stopping", quit, func(s *stopSeq) { s.drainOver(t0.Add(5*time.Second), "ceiling") }, actions{forward: quit, dump: true}},
		{"still draining (a drain past the dump time)", quit, func(*stopSeq) {}, actions{}},
		{"app exited", quit, func(s *stopSeq) { s.drainOver(t0.Add(5*time.Second), "ceiling"); s.appExited(t0.Add(6 * time.Second)) }, actions{}},
		{"no dump signal", 0, func(s *stopSeq) { s.drainOver(t0.Add(5*time.Second), "ceiling") }, actions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq := newSeq(tc.sig)
			a := seq.signal(t0, syscall.SIGTERM)
			wantAt := time.Time{}
			if tc.sig != 0 {
				wantAt = t0.Add(19*time.Second - 3*time.Second) // kill at grace - margin
			}
			if !a.dumpAt.Equal(wantAt) {
				t.Fatalf("dump timer at %v, want %v", a.dumpAt, wantAt)
			}
			tc.events(&seq)
			if got := seq.dumpDue(); got != tc.want {
				t.Fatalf("dump due: %+v, want %+v", got, tc.want)
			}
			if got := seq.dumpDue(); got != (actions{}) {
				t.Fatalf("second dump: %+v, want nothing (once)", got)
			}
			if seq.dumped != tc.want.dump {
				t.Fatalf("dumped = %v, want %v", seq.dumped, tc.want.dump)
			}
		})
	}
}
