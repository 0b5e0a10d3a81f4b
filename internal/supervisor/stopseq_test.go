package supervisor

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
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
		stopOn      []syscall.Signal
		hooks       bool
		early       bool // the app registers itself (mark mode, HTTP hooks)
		events      []event
		drainReason string
		killed      bool
	}{
		{name: "tini mode: TERM forwarded, no kill timer", in: tiniMode, stop: term, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, want: actions{begin: true, stop: term}},
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
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, stop: term}},
			{at: 10 * s, kind: "kill", want: actions{kill: true}},
		}, drainReason: "none", killed: true},
		{name: "drain then the stop signal", in: drain3, stop: syscall.SIGQUIT, hooks: true, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 2 * s, kind: "signal", sig: usr1, want: actions{forward: usr1}},
			{at: 4 * s, kind: "drain", reason: "ceiling", want: actions{endDrain: "ceiling", stop: syscall.SIGQUIT}},
			{at: 4 * s, kind: "drain", reason: "late report"}, // already over: nothing
			{at: 5 * s, kind: "signal", sig: term, want: actions{forward: term}},
		}, drainReason: "ceiling"},
		{name: "second TERM ends the drain", in: drain3, stop: term, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, drain: true}},
			{at: 2 * s, kind: "signal", sig: term, want: actions{endDrain: "second-signal", stop: term}},
		}, drainReason: "second-signal"},
		{name: "not ready: no offline, no drain", in: registry, stop: term, hooks: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, stop: term}},
			{at: 2 * s, kind: "ready"}, // too late: must not count
		}, drainReason: "not ready"},
		{name: "not ready, self-registered: offline and the per-caller drain", in: registry, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 2 * s, kind: "ready"}, // too late: must not count
			{at: 3 * s, kind: "drain", reason: "all-quiet", want: actions{endDrain: "all-quiet", stop: term}},
		}, drainReason: "all-quiet"},
		{name: "not ready, self-registered, fixed drain: offline, no drain", in: drain3, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, offline: true, stop: term}},
		}, drainReason: "not ready"},
		{name: "not ready, self-registered, no drain: offline", in: grace10, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 10 * s, want: actions{begin: true, offline: true, stop: term}},
		}, drainReason: "not ready"},
		{name: "not ready, self-registered but no hooks: nothing to take out", in: registry, stop: term, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, stop: term}},
		}, drainReason: "not ready"},
		{name: "not ready, self-registered: a second TERM ends the drain", in: registry, stop: term, hooks: true, early: true, events: []event{
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 2 * s, kind: "signal", sig: term, want: actions{endDrain: "second-signal", stop: term}},
		}, drainReason: "second-signal"},
		{name: "registry: offline and the traffic-aware drain", in: registry, stop: term, hooks: true, events: []event{
			{kind: "ready"},
			{at: s, kind: "signal", sig: term, killAt: 20 * s, want: actions{begin: true, offline: true, drain: true}},
			{at: 3 * s, kind: "drain", reason: "quiet", want: actions{endDrain: "quiet", stop: term}},
			{at: 20 * s, kind: "kill", want: actions{kill: true}},
		}, drainReason: "quiet", killed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := mustTimeline(t, tt.in)
			seq := newStopSeq(seqConfig{tl: tl, stopOn: tt.stopOn, stopSig: tt.stop, hooks: tt.hooks, early: tt.early})
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
			if rec := seq.record(); rec.drainReason != tt.drainReason || rec.Killed() != tt.killed {
				t.Fatalf("drain reason %q killed %v, want %q %v", rec.drainReason, rec.Killed(), tt.drainReason, tt.killed)
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
	seq := newStopSeq(seqConfig{tl: tl, hooks: true})
	seq.becameReady()
	seq.signal(t0, syscall.SIGTERM)
	if seq.appExited(t0.Add(time.Second), false) != true {
		t.Fatal("the app exited during the drain: the drain must end")
	}
	rec := seq.record()
	if rec.drainReason != "app-exit" || !rec.drainEnd.Equal(t0.Add(time.Second)) || !rec.stopAt.IsZero() {
		t.Fatalf("reason %q end %v stop %v; want app-exit at 1s and no stop signal", rec.drainReason, rec.drainEnd, rec.stopAt)
	}
	if seq.summaryDue() {
		t.Fatal("the app exited before gracefulinit sent it anything: the termination message is the app's")
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
	if got := seq.killDue(); got != (actions{}) || seq.record().Killed() {
		t.Fatalf("kill timer after the app's exit: %+v (killed %v), want nothing", got, seq.record().Killed())
	}
	want := timeline.Deadlines{Term: t0, DrainMax: t0.Add(3 * time.Second), Kill: t0.Add(9 * time.Second), Runtime: t0.Add(10 * time.Second)}
	if seq.record().termAt != t0 || seq.deadlines != want || seq.killPoint() != want.Kill {
		t.Fatalf("term %v deadlines %+v, want %v %+v", seq.record().termAt, seq.deadlines, t0, want)
	}
}

// TestStopSeqStopOn: each --stop-on signal starts the sequence and, with
// no --stop-signal, is the stop signal the app gets; a second one of any
// of them ends the drain; other signals are forwarded at once.
func TestStopSeqStopOn(t *testing.T) {
	tl := mustTimeline(t, timeline.Input{
		GracePeriod: timeline.Setting{Value: 20 * time.Second, Set: true},
		KillMargin:  timeline.Setting{Value: time.Second},
		StopTimeout: timeline.Setting{Value: 10 * time.Second},
		Registry:    true,
	})
	intr, quit, term := syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM
	for _, tc := range []struct {
		name         string
		stopOn       []syscall.Signal
		stopSig      syscall.Signal
		first        syscall.Signal
		second       syscall.Signal
		wantFirst    actions // without killAt
		wantSecond   actions
		wantStopSent syscall.Signal
	}{
		{"STOPSIGNAL INT", []syscall.Signal{intr}, 0, intr, intr,
			actions{begin: true, offline: true, drain: true}, actions{endDrain: "second-signal", stop: intr}, intr},
		{"INT or TERM, second is the other", []syscall.Signal{intr, term}, 0, intr, term,
			actions{begin: true, offline: true, drain: true}, actions{endDrain: "second-signal", stop: intr}, intr},
		{"QUIT with --stop-signal TERM", []syscall.Signal{quit}, term, quit, quit,
			actions{begin: true, offline: true, drain: true}, actions{endDrain: "second-signal", stop: term}, term},
		{"default TERM only: INT forwarded at once", nil, 0, intr, term,
			actions{forward: intr}, actions{begin: true, offline: true, drain: true}, 0},
		{"--stop-on INT: TERM forwarded at once", []syscall.Signal{intr}, 0, term, intr,
			actions{forward: term}, actions{begin: true, offline: true, drain: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq := newStopSeq(seqConfig{tl: tl, stopOn: tc.stopOn, stopSig: tc.stopSig, hooks: true})
			seq.becameReady()
			got := seq.signal(t0, tc.first)
			if tc.wantFirst.begin {
				tc.wantFirst.killAt = t0.Add(19 * time.Second)
			}
			if got != tc.wantFirst {
				t.Fatalf("first %v: %+v, want %+v", tc.first, got, tc.wantFirst)
			}
			got = seq.signal(t0.Add(time.Second), tc.second)
			if tc.wantSecond.begin {
				tc.wantSecond.killAt = t0.Add(20 * time.Second)
			}
			if got != tc.wantSecond {
				t.Fatalf("second %v: %+v, want %+v", tc.second, got, tc.wantSecond)
			}
			if rec := seq.record(); rec.stopSig != tc.wantStopSent {
				t.Fatalf("stop signal recorded %v, want %v", rec.stopSig, tc.wantStopSent)
			}
		})
	}
}

// TestStopSeqAfterExit: a stop request during the registry close (the app
// already exited on its own) starts the runtime's clock once: the close
// must end by that kill point; nothing is sent, and in tini mode there is
// no kill point at all.
func TestStopSeqAfterExit(t *testing.T) {
	grace := mustTimeline(t, timeline.Input{
		GracePeriod: timeline.Setting{Value: 10 * time.Second, Set: true},
		KillMargin:  timeline.Setting{Value: time.Second},
		StopTimeout: timeline.Setting{Value: 5 * time.Second},
	})
	seq := newStopSeq(seqConfig{tl: grace, stopOn: []syscall.Signal{syscall.SIGINT}, hooks: true})
	seq.becameReady()
	seq.appExited(t0, false)
	if got := seq.signal(t0.Add(time.Second), syscall.SIGTERM); got != (actions{}) {
		t.Fatalf("TERM, not a --stop-on signal, after the exit: %+v, want nothing", got)
	}
	if got := seq.signal(t0.Add(time.Second), syscall.SIGINT); got != (actions{closeBy: t0.Add(10 * time.Second)}) {
		t.Fatalf("INT after the exit: %+v, want the close bounded by the kill point at 10s", got)
	}
	if got := seq.signal(t0.Add(2*time.Second), syscall.SIGINT); got != (actions{}) {
		t.Fatalf("a second INT after the exit moved the kill point: %+v", got)
	}
	if seq.killPoint() != t0.Add(10*time.Second) || seq.summaryDue() {
		t.Fatalf("kill point %v summary due %v", seq.killPoint(), seq.summaryDue())
	}
	tini := newStopSeq(seqConfig{hooks: true})
	tini.appExited(t0, false)
	if got := tini.signal(t0, syscall.SIGTERM); got != (actions{}) {
		t.Fatalf("tini mode: TERM after the exit gave %+v, want nothing (no deadline of its own)", got)
	}
}

// TestStopSeqKilledAndCause: killed is true whenever the app died of
// SIGKILL, and the termination message is due only when gracefulinit
// caused the exit.
func TestStopSeqKilledAndCause(t *testing.T) {
	tl := mustTimeline(t, timeline.Input{
		GracePeriod: timeline.Setting{Value: 10 * time.Second, Set: true},
		KillMargin:  timeline.Setting{Value: time.Second},
		StopTimeout: timeline.Setting{Value: 5 * time.Second},
	})
	for _, tc := range []struct {
		name       string
		events     func(*stopSeq)
		sigkill    bool
		wantKilled bool
		wantDue    bool
	}{
		{"crash on its own", func(*stopSeq) {}, false, false, false},
		{"OOM-killed on its own", func(*stopSeq) {}, true, true, false},
		{"stopped by its stop signal", func(s *stopSeq) { s.signal(t0, syscall.SIGTERM) }, false, false, true},
		{"killed by gracefulinit", func(s *stopSeq) { s.signal(t0, syscall.SIGTERM); s.killDue() }, true, true, true},
		{"SIGKILLed by someone after its stop signal", func(s *stopSeq) { s.signal(t0, syscall.SIGTERM) }, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq := newStopSeq(seqConfig{tl: tl})
			seq.becameReady()
			tc.events(&seq)
			seq.appExited(t0.Add(time.Second), tc.sigkill)
			if got := seq.record().Killed(); got != tc.wantKilled {
				t.Errorf("killed = %v, want %v", got, tc.wantKilled)
			}
			if got := seq.summaryDue(); got != tc.wantDue {
				t.Errorf("summary due = %v, want %v", got, tc.wantDue)
			}
		})
	}
}

// TestStopSeqDump: the dump signal goes once, dumpBefore before the kill,
// only to an app that got its stop signal and has not exited; a dump whose
// time came during the drain goes right after the stop signal, never not
// at all.
func TestStopSeqDump(t *testing.T) {
	tl := mustTimeline(t, timeline.Input{
		GracePeriod: timeline.Setting{Value: 20 * time.Second, Set: true},
		KillMargin:  timeline.Setting{Value: time.Second},
		StopTimeout: timeline.Setting{Value: 10 * time.Second},
		Drain:       timeline.Setting{Value: 5 * time.Second, Set: true},
	})
	quit, term := syscall.SIGQUIT, syscall.SIGTERM
	newSeq := func(sig syscall.Signal, before time.Duration) stopSeq {
		seq := newStopSeq(seqConfig{tl: tl, dumpSig: sig, dumpBefore: before})
		seq.becameReady()
		return seq
	}
	const s = time.Second
	for _, tc := range []struct {
		name     string
		sig      syscall.Signal
		before   time.Duration
		events   func(*stopSeq) actions // between the stop request and the dump timer
		wantStop actions                // what events returned last
		want     actions                // the dump timer
		dumped   bool
	}{
		{"app still stopping", quit, 3 * s, func(q *stopSeq) actions { return q.drainOver(t0.Add(5*s), "ceiling") },
			actions{endDrain: "ceiling", stop: term}, actions{dump: quit}, true},
		{"still draining (a drain past the dump time): sent with the stop signal", quit, 3 * s,
			func(q *stopSeq) actions { q.dumpDue(); return q.drainOver(t0.Add(17*s), "ceiling") },
			actions{endDrain: "ceiling", stop: term, dump: quit}, actions{}, true},
		{"dump just under the stop time, the ceiling reported a little late", quit, 10*s - time.Millisecond,
			func(q *stopSeq) actions { return q.drainOver(t0.Add(9*s+5*time.Millisecond), "ceiling") },
			actions{endDrain: "ceiling", stop: term, dump: quit}, actions{}, true},
		{"app exited", quit, 3 * s, func(q *stopSeq) actions {
			q.drainOver(t0.Add(5*s), "ceiling")
			q.appExited(t0.Add(6*s), false)
			return actions{}
		}, actions{}, actions{}, false},
		{"no dump signal", 0, 3 * s, func(q *stopSeq) actions { return q.drainOver(t0.Add(5*s), "ceiling") },
			actions{endDrain: "ceiling", stop: term}, actions{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq := newSeq(tc.sig, tc.before)
			a := seq.signal(t0, term)
			wantAt := time.Time{}
			if tc.sig != 0 {
				wantAt = t0.Add(19*s - tc.before) // kill at grace - margin
			}
			if !a.dumpAt.Equal(wantAt) {
				t.Fatalf("dump timer at %v, want %v", a.dumpAt, wantAt)
			}
			if got := tc.events(&seq); got != tc.wantStop {
				t.Fatalf("stop: %+v, want %+v", got, tc.wantStop)
			}
			if got := seq.dumpDue(); got != tc.want {
				t.Fatalf("dump due: %+v, want %+v", got, tc.want)
			}
			if got := seq.dumpDue(); got != (actions{}) {
				t.Fatalf("second dump: %+v, want nothing (once)", got)
			}
			if seq.record().dumped != tc.dumped {
				t.Fatalf("dumped = %v, want %v", seq.record().dumped, tc.dumped)
			}
		})
	}
}

// TestStopSeqOwnsItsState: outside stopseq.go, nothing assigns to the stop
// sequence's fields; the supervisor changes it only through its events, so
// every decision is in stopseq.go and tested here.
func TestStopSeqOwnsItsState(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if name == "stopseq.go" || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		// seqField reports whether e is x.seq.<anything> for some x.
		seqField := func(e ast.Expr) bool {
			for {
				sel, ok := e.(*ast.SelectorExpr)
				if !ok {
					return false
				}
				if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "seq" {
					return true
				}
				e = sel.X
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var lhs []ast.Expr
			switch s := n.(type) {
			case *ast.AssignStmt:
				lhs = s.Lhs
			case *ast.IncDecStmt:
				lhs = []ast.Expr{s.X}
			case *ast.UnaryExpr:
				if s.Op == token.AND {
					lhs = []ast.Expr{s.X} // a pointer into it lets anyone write
				}
			}
			for _, e := range lhs {
				if seqField(e) {
					t.Errorf("%s: writes the stop sequence's state directly; add an event to stopseq.go", fset.Position(e.Pos()))
				}
			}
			return true
		})
	}
}
