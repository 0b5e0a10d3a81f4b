package timeline

import (
	"strings"
	"testing"
	"time"
)

const s = time.Second

func set(d time.Duration) Setting { return Setting{Value: d, Set: true} }

// input is the configuration as Parse hands it over: defaults unless set.
func input(mod func(*Input)) Input {
	in := Input{
		GracePeriod: Setting{Value: DefaultGracePeriod},
		KillMargin:  Setting{Value: DefaultKillMargin},
		StopTimeout: Setting{Value: DefaultStopTimeout},
	}
	if mod != nil {
		mod(&in)
	}
	return in
}

// TestYieldingDefaults is the table of issue 14: --grace-period 6, 10, 20
// and 30 s, alone, with --drain, with --stop-timeout and with a registry.
// A default shrinks to fit what was set; only explicit values that
// contradict each other are refused.
func TestYieldingDefaults(t *testing.T) {
	tests := []struct {
		name                    string
		in                      Input
		margin, stop, drain, qu time.Duration
		err                     string
	}{
		{name: "6s", in: input(func(in *Input) { in.GracePeriod = set(6 * s) }), margin: s, stop: 5 * s},
		{name: "10s (docker stop's default)", in: input(func(in *Input) { in.GracePeriod = set(10 * s) }), margin: s, stop: 9 * s},
		{name: "20s", in: input(func(in *Input) { in.GracePeriod = set(20 * s) }), margin: s, stop: 10 * s},
		{name: "30s", in: input(func(in *Input) { in.GracePeriod = set(30 * s) }), margin: s, stop: 10 * s},

		{name: "6s drain 1s", in: input(func(in *Input) { in.GracePeriod, in.Drain = set(6*s), set(s) }), margin: s, stop: 4 * s, drain: s},
		{name: "10s drain 5s", in: input(func(in *Input) { in.GracePeriod, in.Drain = set(10*s), set(5*s) }), margin: s, stop: 4 * s, drain: 5 * s},
		{name: "20s drain 12s", in: input(func(in *Input) { in.GracePeriod, in.Drain = set(20*s), set(12*s) }), margin: s, stop: 7 * s, drain: 12 * s},
		{name: "30s drain 25s", in: input(func(in *Input) { in.GracePeriod, in.Drain = set(30*s), set(25*s) }), margin: s, stop: 4 * s, drain: 25 * s},
		{name: "default 30s drain 5s", in: input(func(in *Input) { in.Drain = set(5 * s) }), margin: s, stop: 10 * s, drain: 5 * s},

		{name: "6s stop-timeout 3s", in: input(func(in *Input) { in.GracePeriod, in.StopTimeout = set(6*s), set(3*s) }), margin: s, stop: 3 * s},
		{name: "10s stop-timeout 5s drain 4s", in: input(func(in *Input) { in.GracePeriod, in.StopTimeout, in.Drain = set(10*s), set(5*s), set(4*s) }), margin: s, stop: 5 * s, drain: 4 * s},
		{name: "20s stop-timeout 10s", in: input(func(in *Input) { in.GracePeriod, in.StopTimeout = set(20*s), set(10*s) }), margin: s, stop: 10 * s},
		{name: "30s stop-timeout 20s drain 9s", in: input(func(in *Input) { in.GracePeriod, in.StopTimeout, in.Drain = set(30*s), set(20*s), set(9*s) }), margin: s, stop: 20 * s, drain: 9 * s},

		// A registry's traffic-aware drain takes whatever the default
		// stop timeout leaves; both share a short grace period.
		{name: "6s registry", in: input(func(in *Input) { in.GracePeriod, in.Registry = set(6*s), true }), margin: s, stop: 2500 * time.Millisecond, drain: 2500 * time.Millisecond, qu: 2 * s},
		{name: "10s registry", in: input(func(in *Input) { in.GracePeriod, in.Registry = set(10*s), true }), margin: s, stop: 4500 * time.Millisecond, drain: 4500 * time.Millisecond, qu: 2 * s},
		{name: "20s registry", in: input(func(in *Input) { in.GracePeriod, in.Registry = set(20*s), true }), margin: s, stop: 9500 * time.Millisecond, drain: 9500 * time.Millisecond, qu: 2 * s},
		{name: "30s registry", in: input(func(in *Input) { in.GracePeriod, in.Registry = set(30*s), true }), margin: s, stop: 10 * s, drain: 19 * s, qu: 2 * s},
		{name: "registry default grace", in: input(func(in *Input) { in.Registry = true }), margin: s, stop: 10 * s, drain: 19 * s, qu: 2 * s},
		// --drain is the traffic-aware drain's ceiling; a fixed drain is
		// asked for by name.
		{name: "10s registry drain 8s", in: input(func(in *Input) { in.GracePeriod, in.Registry, in.Drain = set(10*s), true, set(8*s) }), margin: s, stop: s, drain: 8 * s, qu: 2 * s},
		{name: "registry drain 15s", in: input(func(in *Input) { in.Registry, in.Drain = true, set(15*s) }), margin: s, stop: 10 * s, drain: 15 * s, qu: 2 * s},
		{name: "registry drain 15s quiet 0: fixed", in: input(func(in *Input) { in.Registry, in.Drain, in.DrainQuiet = true, set(15*s), set(0) }), margin: s, stop: 10 * s, drain: 15 * s},
		{name: "registry quiet 5s", in: input(func(in *Input) { in.Registry, in.DrainQuiet = true, set(5*s) }), margin: s, stop: 10 * s, drain: 19 * s, qu: 5 * s},
		{name: "registry drain-min 3s", in: input(func(in *Input) { in.Registry, in.DrainMin = true, set(3*s) }), margin: s, stop: 10 * s, drain: 19 * s, qu: 2 * s},
		{name: "no registry drain 15s: fixed", in: input(func(in *Input) { in.Drain = set(15 * s) }), margin: s, stop: 10 * s, drain: 15 * s},
		{name: "20s quiet 1s", in: input(func(in *Input) { in.GracePeriod, in.DrainQuiet = set(20*s), set(s) }), margin: s, stop: 9500 * time.Millisecond, drain: 9500 * time.Millisecond, qu: s},

		// The kill margin yields too, for a grace period under 2 s.
		{name: "1s", in: input(func(in *Input) { in.GracePeriod = set(s) }), margin: s / 2, stop: s / 2},

		// Explicit values that contradict each other.
		{name: "10s stop-timeout 10s", in: input(func(in *Input) { in.GracePeriod, in.StopTimeout = set(10*s), set(10*s) }),
			err: "grace-period 10s - kill-margin 1s - stop-timeout 10s = -1s"},
		{name: "20s drain 12s stop-timeout 10s", in: input(func(in *Input) { in.GracePeriod, in.Drain, in.StopTimeout = set(20*s), set(12*s), set(10*s) }),
			err: "--drain 12s exceeds the drain budget: grace-period 20s - kill-margin 1s - stop-timeout 10s = 9s"},
		{name: "6s drain 5s", in: input(func(in *Input) { in.GracePeriod, in.Drain = set(6*s), set(5*s) }),
			err: "--drain leaves the app no time to stop"},
		{name: "default 30s drain 40s", in: input(func(in *Input) { in.Drain = set(40 * s) }),
			err: "--drain leaves the app no time to stop: the kill comes at grace-period 30s - kill-margin 1s = 29s"},
		{name: "margin 2s grace 2s", in: input(func(in *Input) { in.GracePeriod, in.KillMargin = set(2*s), set(2*s) }),
			err: "--kill-margin 2s must be shorter than --grace-period 2s"},
		{name: "drain-min over the ceiling", in: input(func(in *Input) {
			in.GracePeriod, in.DrainQuiet, in.DrainMin, in.StopTimeout = set(10*s), set(s), set(8*s), set(5*s)
		}),
			err: "--drain-min 8s exceeds the drain's ceiling 4s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl, err := New(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("New = %+v, %v; want one line containing %q", tl, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tl.Grace != tt.in.GracePeriod.Value || tl.KillMargin != tt.margin || tl.StopTimeout != tt.stop || tl.Drain != tt.drain || tl.DrainQuiet != tt.qu {
				t.Fatalf("grace %v margin %v stop %v drain %v quiet %v; want %v %v %v %v %v",
					tl.Grace, tl.KillMargin, tl.StopTimeout, tl.Drain, tl.DrainQuiet, tt.in.GracePeriod.Value, tt.margin, tt.stop, tt.drain, tt.qu)
			}
			if tl.Drain > tl.Budget() || tl.Budget() < 0 {
				t.Fatalf("drain %v over budget %v", tl.Drain, tl.Budget())
			}
			// What shrank is said, and only then.
			shrank := tl.StopTimeout != tt.in.StopTimeout.Value || tl.KillMargin != tt.in.KillMargin.Value
			if said := strings.Contains(strings.Join(tl.Describe("SIGTERM"), "\n"), "shrunk to fit"); said != shrank {
				t.Fatalf("Describe says shrunk=%v, want %v:\n%s", said, shrank, strings.Join(tl.Describe("SIGTERM"), "\n"))
			}
		})
	}
}

// TestTiniMode: with no registry, no drain and no timeline flag there is
// no deadline and no kill, whatever the defaults say.
func TestTiniMode(t *testing.T) {
	tl, err := New(input(nil))
	if err != nil {
		t.Fatal(err)
	}
	if tl.Kills() || tl.Drain != 0 || tl.Budget() != 0 {
		t.Fatalf("tini mode: %+v, want no kill and no drain", tl)
	}
	term := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := tl.At(term)
	if !d.Kill.IsZero() || !d.Runtime.IsZero() || !d.DrainMax.Equal(term) {
		t.Fatalf("At = %+v, want no kill, no runtime deadline, no drain", d)
	}
	if got := strings.Join(tl.Describe("SIGTERM"), "\n"); !strings.Contains(got, "never kills") {
		t.Fatalf("Describe = %q, want it to say there is no kill", got)
	}
	// Any timeline flag turns the timeline on, with the default grace.
	for name, mod := range map[string]func(*Input){
		"kill-margin":  func(in *Input) { in.KillMargin = set(2 * s) },
		"stop-timeout": func(in *Input) { in.StopTimeout = set(5 * s) },
		"drain":        func(in *Input) { in.Drain = set(0) },
		"registry":     func(in *Input) { in.Registry = true },
	} {
		tl, err := New(input(mod))
		if err != nil || !tl.Kills() || tl.Grace != DefaultGracePeriod {
			t.Errorf("%s set: %+v, %v; want the default 30s timeline", name, tl, err)
		}
	}
}

func TestAt(t *testing.T) {
	tl, err := New(input(func(in *Input) { in.GracePeriod, in.KillMargin, in.Drain = set(10*s), set(2*s), set(3*s) }))
	if err != nil {
		t.Fatal(err)
	}
	term := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := tl.At(term)
	want := Deadlines{Term: term, DrainMax: term.Add(3 * s), Kill: term.Add(8 * s), Runtime: term.Add(10 * s)}
	if d != want {
		t.Fatalf("At = %+v, want %+v", d, want)
	}
}
