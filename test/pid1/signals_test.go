package pid1_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// forwarded are the signals the issue lists, in the order it lists them.
// TERM comes first on purpose: it starts the stop sequence, which without a
// drain or registry forwards it at once, and forwarding must go on after it.
var forwarded = []syscall.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT,
}

func names(sigs []syscall.Signal) []string {
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = sigName(s)
	}
	return out
}

// startRecorder runs gracefulinit [flags] -- pid1helper record, which exits
// with code after exitAfter signals, and waits until its handlers are in.
func startRecorder(t *testing.T, m mode, env, flags []string, exitAfter, code int) (*testbin.Proc, recorder) {
	t.Helper()
	rec := newRecorder(t, "child")
	args := append(append([]string{}, flags...), "--", helper(t), "record", "-log", rec.path,
		"-exit-after", strconv.Itoa(exitAfter), "-code", strconv.Itoa(code))
	p := start(t, m, env, args...)
	rec.waitReady(t, p)
	return p, rec
}

// TestForwardOneByOne sends each signal to gracefulinit and waits for the
// child to record it before sending the next: each must arrive exactly
// once, in order, and the child's exit code must come back.
func TestForwardOneByOne(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, m mode) {
		p, rec := startRecorder(t, m, nil, nil, len(forwarded), 42)
		for i, s := range forwarded {
			p.Signal(s)
			got := rec.waitCount(t, i+1)
			if want := names(forwarded[:i+1]); !slices.Equal(got, want) {
				t.Fatalf("after sending %s the child recorded %v, want %v", sigName(s), got, want)
			}
		}
		if code := p.Wait(exitTimeout); code != 42 {
			t.Fatalf("exit code %d, want the child's 42", code)
		}
	})
}

// TestForwardBurst sends all the signals back to back, without waiting,
// several times over: each must reach the child exactly once. Their order
// is not asserted: the kernel hands a multi-threaded process's pending
// signals to whichever threads ask first (lowest number first), so the Go
// runtime of gracefulinit and of the recorder may each swap neighbours
// within a burst. The test logs how often each kept the sent order; the
// one-by-one test above is the order guarantee.
func TestForwardBurst(t *testing.T) {
	t.Parallel()
	ascending := slices.Clone(forwarded)
	slices.Sort(ascending)
	descending := slices.Clone(ascending)
	slices.Reverse(descending)
	tests := []struct {
		name string
		sigs []syscall.Signal
	}{
		{"ascending", ascending},
		{"descending", descending},
		{"issue order", forwarded},
	}
	const rounds = 5
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				want := names(tc.sigs)
				fwdInOrder, recInOrder := 0, 0
				for range rounds {
					p, rec := startRecorder(t, m, nil, []string{"-v"}, len(tc.sigs), 43)
					pid := p.InitPID()
					for _, s := range tc.sigs {
						if err := syscall.Kill(pid, s); err != nil {
							t.Fatal(err)
						}
					}
					if code := p.Wait(exitTimeout); code != 43 {
						t.Fatalf("exit code %d, want the child's 43; recorded %v", code, rec.signals())
					}
					got := rec.signals()
					fwd := forwardedLog(p.Stderr.String())
					if !sameSet(got, want) {
						t.Fatalf("child recorded %v, want each of %v exactly once", got, want)
					}
					if !sameSet(fwd, want) {
						t.Fatalf("gracefulinit forwarded %v, want each of %v exactly once", fwd, want)
					}
					if slices.Equal(fwd, want) {
						fwdInOrder++
					}
					if slices.Equal(got, want) {
						recInOrder++
					}
				}
				t.Logf("sent %v %d times: gracefulinit forwarded in the sent order %d times, the child recorded it %d times",
					want, rounds, fwdInOrder, recInOrder)
			})
		}
	})
}

// sameSet reports whether got holds exactly the elements of want, each once.
func sameSet(got, want []string) bool {
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// forwardedLog lists the signals gracefulinit's debug log says it sent to
// the app, in log order.
func forwardedLog(stderr string) []string {
	var out []string
	for _, l := range lines(stderr) {
		if !strings.Contains(l, `msg="forwarded signal"`) {
			continue
		}
		if _, v, ok := strings.Cut(l, " signal=SIG"); ok {
			name, _, _ := strings.Cut(v, " ")
			out = append(out, name)
		}
	}
	return out
}

// TestProcessGroup: with -g (or its variables) a forwarded signal reaches
// the whole process group, so a grandchild the app started gets it too;
// without, only the app does.
func TestProcessGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       []string
		flags     []string
		sig       syscall.Signal
		wantGroup bool
	}{
		{"no flag", nil, nil, syscall.SIGUSR1, false},
		{"-g", nil, []string{"-g"}, syscall.SIGUSR1, true},
		{"--pgroup", nil, []string{"--pgroup"}, syscall.SIGUSR1, true},
		{"-g stop signal", nil, []string{"-g"}, syscall.SIGTERM, true},
		{"no flag stop signal", nil, nil, syscall.SIGTERM, false},
		{"GRACEFULINIT_PGROUP", []string{"GRACEFULINIT_PGROUP=true"}, nil, syscall.SIGUSR1, true},
		{"TINI_KILL_PROCESS_GROUP", []string{"TINI_KILL_PROCESS_GROUP=1"}, nil, syscall.SIGUSR1, true},
		{"TINI_KILL_PROCESS_GROUP empty", []string{"TINI_KILL_PROCESS_GROUP="}, nil, syscall.SIGUSR1, true},
		{"flag wins over GRACEFULINIT_PGROUP", []string{"GRACEFULINIT_PGROUP=true"}, []string{"--pgroup=false"}, syscall.SIGUSR1, false},
		{"flag wins over TINI_KILL_PROCESS_GROUP", []string{"TINI_KILL_PROCESS_GROUP=1"}, []string{"--pgroup=false"}, syscall.SIGUSR1, false},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				child, grand := newRecorder(t, "child"), newRecorder(t, "grandchild")
				args := append(append([]string{}, tc.flags...), "--", helper(t), "record", "-log", child.path,
					"-grandchild", grand.path, "-exit-after", "2", "-code", "7")
				p := start(t, m, tc.env, args...)
				child.waitReady(t, p)
				grand.waitReady(t, p)

				p.Signal(tc.sig)
				if got := child.waitCount(t, 1); !slices.Equal(got, []string{sigName(tc.sig)}) {
					t.Fatalf("child recorded %v, want [%s]", got, sigName(tc.sig))
				}
				if tc.wantGroup {
					if got := grand.waitCount(t, 1); !slices.Equal(got, []string{sigName(tc.sig)}) {
						t.Fatalf("grandchild recorded %v, want [%s]", got, sigName(tc.sig))
					}
				} else {
					// gracefulinit's kill has returned by the time the child
					// recorded the signal, so a group signal would already be
					// pending at the grandchild. A higher-numbered marker sent
					// now is handed out after it: once the marker is recorded
					// alone, the grandchild never got the forwarded signal.
					if got := grand.markerAlone(t, grandchildPID(t, p)); !slices.Equal(got, []string{"WINCH"}) {
						t.Fatalf("grandchild recorded %v, want only the marker [WINCH]: the signal reached the group without -g", got)
					}
				}

				p.Signal(syscall.SIGHUP)
				if code := p.Wait(exitTimeout); code != 7 {
					t.Fatalf("exit code %d, want the child's 7", code)
				}
			})
		}
	})
}

// grandchildPID is the host pid of the app's only child.
func grandchildPID(t *testing.T, p *testbin.Proc) int {
	t.Helper()
	app := mustAppPID(t, p)
	var kids []int
	if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { kids = proctree.Children(app); return len(kids) == 1 }) {
		t.Fatalf("app %d has children %v, want one grandchild", app, kids)
	}
	return kids[0]
}

// TestSignalsAtStart fires signals at gracefulinit while it starts and
// once the app is up: none may kill or crash it (a Go program that has not
// asked for SIGSYS dumps its goroutines and exits 2; one that has not
// caught signal 34 dies of it), the real-time signals must reach the app
// once gracefulinit caught them, and the stop sequence that follows must
// run to its end. The app, a Go recorder that never exits on its own,
// keeps TERM and is killed at the deadline: 137.
//
// Before the app is ready only signals gracefulinit never forwards are
// sent: a forwarded USR1 that lands while the app is still in exec kills
// it (the default action), as it would without an init. That the
// real-time signals are dropped, not fatal, before gracefulinit caught
// them is TestCaptureThenRest's, in internal/signals.
func TestSignalsAtStart(t *testing.T) {
	t.Parallel()
	// SIGPIPE is gracefulinit's own (its writes to a dead pipe), never the app's.
	never := []syscall.Signal{syscall.SIGSYS, syscall.SIGTRAP, syscall.SIGPIPE, 32, 34}
	forwarded := []syscall.Signal{
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM,
		syscall.SIGXCPU, syscall.SIGPWR, 40, 64, // a Go app drops those it did not ask for
	}
	// (SIGSTKFLT is left out: it is forwarded, and a Go app dies of it.)
	forModes(t, func(t *testing.T, m mode) {
		rec := newRecorder(t, "child")
		p := start(t, m, nil, "--grace-period", "3s", "--kill-margin", "1s", "--stop-timeout", "1s",
			"--", helper(t), "record", "-log", rec.path)
		// As soon as the child exists: gracefulinit is still catching the
		// real-time and rare signals in the background then.
		pid := p.InitPID()
		fire := func(rounds int, barrage []syscall.Signal) {
			t.Helper()
			for range rounds {
				for _, s := range barrage {
					if err := syscall.Kill(pid, s); err != nil {
						code := p.Wait(exitTimeout)
						t.Fatalf("kill %v: %v: gracefulinit exited with %d; the app recorded %v\nstderr:\n%s", s, err, code, rec.signals(), p.Stderr)
					}
				}
			}
			if testbin.WaitFor(context.Background(), 300*time.Millisecond, p.Exited) {
				t.Fatalf("gracefulinit exited (code %d) under the signals\nstderr:\n%s", p.Cmd.ProcessState.ExitCode(), p.Stderr)
			}
		}
		fire(3, never)
		rec.waitReady(t, p)
		fire(3, append(never, forwarded...))
		// The real-time signals are forwarded once caught, a few ms in.
		for _, rt := range []syscall.Signal{40, 64} {
			name := strconv.Itoa(int(rt))
			if !testbin.WaitFor(context.Background(), eventTimeout, func() bool {
				p.Signal(rt)
				return slices.Contains(rec.signals(), name)
			}) {
				t.Fatalf("signal %d never reached the app; it recorded %v", rt, rec.signals())
			}
		}
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(exitTimeout); code != 137 {
			t.Fatalf("exit code %d, want 137 (the recorder keeps TERM and is killed at the deadline)\nstderr:\n%s", code, p.Stderr)
		}
		if got := rec.signals(); !slices.Contains(got, "TERM") {
			t.Errorf("the app never got TERM; it recorded %v", got)
		}
	})
}
