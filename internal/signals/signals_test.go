package signals

import (
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		err  string
	}{
		{"TERM", syscall.SIGTERM, ""},
		{"sigterm", syscall.SIGTERM, ""},
		{"SIGQUIT", syscall.SIGQUIT, ""},
		{"15", syscall.SIGTERM, ""},
		{" usr1 ", syscall.SIGUSR1, ""},
		{"FOO", 0, "unknown signal \"FOO\""},
		{"0", 0, "numbers run from 1 to 64"},
		{"65", 0, "numbers run from 1 to 64"},
		{"", 0, "empty signal name"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestForwardedAndCatchable(t *testing.T) {
	caught := map[syscall.Signal]bool{}
	for _, s := range Catchable() {
		caught[s] = true
	}
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGWINCH, syscall.SIGCHLD, syscall.SIGTTOU} {
		if !caught[s] {
			t.Errorf("%v is not caught", s)
		}
	}
	if caught[syscall.SIGKILL] || caught[syscall.SIGSTOP] {
		t.Error("SIGKILL and SIGSTOP cannot be caught")
	}
	for s, want := range map[syscall.Signal]bool{syscall.SIGTERM: true, syscall.SIGWINCH: true, syscall.SIGCHLD: false, syscall.SIGSEGV: false, syscall.SIGTTOU: false, syscall.SIGPIPE: false, syscall.Signal(40): true} {
		if Forwarded(s) != want {
			t.Errorf("Forwarded(%v) = %v, want %v", s, !want, want)
		}
	}
	if Name(syscall.SIGTERM) != "SIGTERM" {
		t.Errorf("Name(SIGTERM) = %q", Name(syscall.SIGTERM))
	}
}

// TestCaptureThenRest: the early set arrives on the channel at once, the
// rest once CaptureRest has run, and the two together are Catchable.
func TestCaptureThenRest(t *testing.T) {
	catchable := map[syscall.Signal]bool{}
	for _, s := range Catchable() {
		catchable[s] = true
	}
	for _, s := range Early() {
		if !catchable[s] {
			t.Errorf("early signal %v is not Catchable", s)
		}
	}

	ch := Capture()
	t.Cleanup(func() { signal.Stop(ch) })
	expect := func(sig syscall.Signal) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if got != sig {
				t.Fatalf("sent %v, got %v", sig, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v never arrived on the channel", sig)
		}
	}
	// Without Capture, SIGTERM would end this test binary, and 34 too.
	expect(syscall.SIGTERM)
	expect(syscall.SIGHUP)
	expect(syscall.SIGUSR1)
	for _, s := range Uncatchable {
		// A handler, not SIG_IGN: exec must reset it for the app. Unless
		// the test's parent ignored it (CI runners ignore 32): then it
		// stays ignored, for the app too.
		var act kernelSigaction
		if err := sigaction(s, nil, &act); err != nil {
			t.Fatal(err)
		}
		if StartIgnored(s) {
			if act[0] != sigIgn {
				t.Errorf("signal %d was ignored at start and has disposition %d, want SIG_IGN", s, act[0])
			}
		} else if act[0] <= sigIgn {
			t.Errorf("signal %d has disposition %d, want a handler", s, act[0])
		}
		for range 100 {
			if err := syscall.Kill(os.Getpid(), s); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Not caught yet, the rest must be dropped by the runtime, not fatal.
	for _, s := range []syscall.Signal{syscall.SIGXCPU, syscall.SIGPWR, syscall.Signal(40), syscall.Signal(64)} {
		if err := syscall.Kill(os.Getpid(), s); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-ch:
		t.Fatalf("%v arrived before CaptureRest", got)
	case <-time.After(50 * time.Millisecond):
	}

	CaptureRest(ch)
	for _, s := range []syscall.Signal{syscall.SIGXCPU, syscall.SIGPWR, syscall.Signal(40), syscall.Signal(64)} {
		expect(s)
	}
}

// TestReadStartedFromEntry: what the entry stub recorded (bit sig-1 per
// signal) becomes the start state, exact; without its flag, the state is
// read as the runtime left it.
func TestReadStartedFromEntry(t *testing.T) {
	saved := [3]uint64{entryMask, entryIgnored, uint64(entryValid)}
	t.Cleanup(func() { entryMask, entryIgnored, entryValid = saved[0], saved[1], uint32(saved[2]) })
	bit := func(s syscall.Signal) uint64 { return 1 << (uint(s) - 1) }
	tests := []struct {
		name      string
		valid     uint32
		mask, ign uint64
		exact     bool
	}{
		{"stub ran", 1, bit(syscall.SIGTERM) | bit(syscall.SIGCHLD) | bit(50), bit(syscall.SIGQUIT) | bit(syscall.SIGTERM) | bit(64), true},
		{"stub ran, clean start", 1, 0, 0, true},
		{"no stub", 0, bit(syscall.SIGTERM), bit(syscall.SIGQUIT), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entryMask, entryIgnored, entryValid = tt.mask, tt.ign, tt.valid
			st := readStarted()
			if st.exact != tt.exact {
				t.Fatalf("exact = %v, want %v", st.exact, tt.exact)
			}
			if !tt.exact {
				// This test process runs without the stub: QUIT is not
				// ignored here, whatever entryIgnored says.
				if st.ignored[syscall.SIGQUIT] {
					t.Fatal("read the stub's record although its flag was not set")
				}
				return
			}
			if st.mask.Val[0] != tt.mask {
				t.Errorf("mask %016x, want %016x", st.mask.Val[0], tt.mask)
			}
			for sig := syscall.Signal(1); sig <= 64; sig++ {
				if want := tt.ign&bit(sig) != 0; st.ignored[sig] != want {
					t.Errorf("signal %d ignored = %v, want %v", sig, st.ignored[sig], want)
				}
			}
		})
	}
}

// TestHandedIgnored: every catchable signal ignored at start is handed to
// the app ignored, except the faults the runtime keeps, TERM (the stop
// sequence) and CHLD (reaping).
func TestHandedIgnored(t *testing.T) {
	var st startState
	for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGPIPE,
		syscall.SIGTERM, syscall.SIGCHLD, syscall.SIGSEGV, syscall.SIGILL, syscall.SIGURG, syscall.SIGPROF, 32, 33, 40, 64} {
		st.ignored[s] = true
	}
	var got []string
	for _, s := range handedIgnored(&st) {
		got = append(got, Name(s.(syscall.Signal)))
	}
	want := []string{"SIGHUP", "SIGQUIT", "SIGUSR1", "SIGPIPE", "signal 40", "signal 64"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("handed over ignored %v, want %v", got, want)
	}
}

// TestNothingIgnoredButAtStart: after Capture and CaptureRest, and inside
// ForFork, no signal is at SIG_IGN unless it was ignored at start (and,
// inside ForFork, is handed to the app ignored): exec resets every other
// disposition to SIG_DFL, so the app gets its defaults with no reset of
// gracefulinit's own (ILL, TRAP, STKFLT and SYS, which Capture ignores,
// keep the runtime's handler).
func TestNothingIgnoredButAtStart(t *testing.T) {
	ch := Capture()
	t.Cleanup(func() { signal.Stop(ch) })
	CaptureRest(ch)
	ignoredNow := func() map[syscall.Signal]bool {
		got := map[syscall.Signal]bool{}
		for sig := syscall.Signal(1); sig <= 64; sig++ {
			if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
				continue
			}
			var act kernelSigaction
			if err := sigaction(sig, nil, &act); err != nil {
				t.Fatalf("read signal %d: %v", sig, err)
			}
			if act[0] == sigIgn {
				got[sig] = true
			}
		}
		return got
	}
	for sig := range ignoredNow() {
		if !StartIgnored(sig) {
			t.Errorf("%s is SIG_IGN after Capture but was not ignored at start: the app would inherit it", Name(sig))
		}
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	restore := ForFork(ch)
	handed := map[syscall.Signal]bool{}
	for _, s := range handedIgnored(&started) {
		handed[s.(syscall.Signal)] = true
	}
	inFork := ignoredNow()
	restore()
	for sig := range inFork {
		if !StartIgnored(sig) {
			t.Errorf("%s is SIG_IGN for the fork but was not ignored at start", Name(sig))
		}
	}
	for sig := range handed {
		if !inFork[sig] {
			t.Errorf("%s was ignored at start but is not SIG_IGN for the fork", Name(sig))
		}
	}
}
