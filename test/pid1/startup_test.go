package pid1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestExecFailures: a command that cannot be run makes gracefulinit exit
// like a shell would (127 not found, 126 not executable) with one line on
// stderr naming the command.
func TestExecFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage-binary")
	if err := os.WriteFile(garbage, []byte("\x7fELF not really\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	subdir := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}
	// An entrypoint copied into $PATH without chmod +x: the shell and tini
	// say 126, the file is there.
	pathDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(pathDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pathDir, "entrypoint-gi.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withPath := []string{"PATH=" + pathDir + ":" + os.Getenv("PATH")}
	tests := []struct {
		name    string
		env     []string
		command string
		want    int
		wantMsg string
	}{
		{"missing path", nil, filepath.Join(dir, "no-such-app"), 127, "not found"},
		{"missing in PATH", nil, "no-such-command-gi", 127, "not found"},
		{"no exec bit", nil, plain, 126, "not executable"},
		{"no exec bit in PATH", withPath, "entrypoint-gi.sh", 126, "not executable"},
		{"exec format error", nil, garbage, 126, "not executable"},
		{"directory", nil, subdir, 126, "not executable"},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				res := mustRun(t, m, tc.env, "--", tc.command, "arg")
				if res.code != tc.want {
					t.Fatalf("exit code %d, want %d (stderr %q)", res.code, tc.want, res.stderr)
				}
				l := lines(res.stderr)
				if len(l) != 1 || !strings.Contains(l[0], tc.command) || !strings.Contains(l[0], tc.wantMsg) {
					t.Fatalf("stderr %q: want one line naming %q and saying %q", res.stderr, tc.command, tc.wantMsg)
				}
				if res.stdout != "" {
					t.Fatalf("stdout %q, want nothing", res.stdout)
				}
			})
		}
	})
}

// TestBadInvocation: bad flags, a missing command or an unknown signal name
// stop gracefulinit before it starts anything: exit status 1 (tini's,
// dumb-init's and catatonit's for a usage error), a one-line error and a
// usage hint, and the command (which would create a marker file) never ran.
func TestBadInvocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     []string
		flags   []string
		noCmd   bool
		wantMsg string
	}{
		{"unknown flag", nil, []string{"--bogus"}, false, "unknown flag: --bogus"},
		{"unknown shorthand", nil, []string{"-Z"}, false, "-Z"},
		{"bad remap code", nil, []string{"-e", "x"}, false, "remap-exit"},
		{"remap code out of range", nil, []string{"-e", "256"}, false, "256"},
		{"unknown stop signal", nil, []string{"--stop-signal", "FOO"}, false, `unknown signal "FOO"`},
		{"stop signal out of range", nil, []string{"--stop-signal", "99"}, false, "99"},
		{"unknown pdeathsig", nil, []string{"-p", "BOGUS"}, false, `unknown signal "BOGUS"`},
		{"unknown pdeathsig long", nil, []string{"--pdeathsig=SIGNOPE"}, false, `unknown signal "SIGNOPE"`},
		{"unknown signal from env", []string{"GRACEFULINIT_STOP_SIGNAL=FOO"}, nil, false, "GRACEFULINIT_STOP_SIGNAL"},
		{"bad TINI_VERBOSITY", []string{"TINI_VERBOSITY=loud"}, nil, false, "TINI_VERBOSITY"},
		{"no command", nil, nil, true, "no command"},
		{"only --", nil, []string{"--"}, true, "no command"},
		{"flags but no command", nil, []string{"-v", "-g", "--"}, true, "no command"},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				marker := filepath.Join(t.TempDir(), "child-ran")
				args := slices.Clone(tc.flags)
				if !tc.noCmd {
					args = append(args, "--", "touch", marker)
				}
				res := mustRun(t, m, tc.env, args...)
				if res.code != 1 {
					t.Fatalf("exit code %d, want 1 (stderr %q)", res.code, res.stderr)
				}
				l := lines(res.stderr)
				if len(l) != 2 || !strings.HasPrefix(l[0], "gracefulinit: ") || !strings.Contains(l[0], tc.wantMsg) ||
					!strings.Contains(l[1], "--help") {
					t.Fatalf("stderr %q: want one error line mentioning %q, then a usage hint", res.stderr, tc.wantMsg)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Fatal("the command ran despite the bad invocation")
				}
			})
		}
	})
}

// TestVersionAndHelp: --version and --help print to stdout, exit 0 and
// start nothing.
func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	version := regexp.MustCompile(`^gracefulinit \S+ \(commit \S+, go1\.\d+\S* linux/\w+, signal state at start exact: recorded by the entry stub\)\n$`)
	helpFlags := []string{"--subreaper", "--pgroup", "--remap-exit", "--pdeathsig", "--verbose", "--version",
		"--stop-signal", "--grace-period", "--kill-margin"}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, stdout string)
	}{
		{"--version", []string{"--version"}, func(t *testing.T, out string) {
			if !version.MatchString(out) {
				t.Fatalf("stdout %q, want a line like %q", out, "gracefulinit v1.2.3 (commit abc123, go1.26.8 linux/amd64, signal state at start exact: recorded by the entry stub)")
			}
		}},
		{"--help", []string{"--help"}, nil},
		// tini prints its license with -l; so does gracefulinit, with the
		// modules it links.
		{"-l", []string{"-l"}, checkLicense},
		{"--license", []string{"--license"}, checkLicense},
		{"-h", []string{"-h"}, nil},
		{"--help with a command", []string{"--help", "--"}, nil},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				marker := filepath.Join(t.TempDir(), "child-ran")
				res := mustRun(t, m, nil, append(slices.Clone(tc.args), "touch", marker)...)
				if res.code != 0 || res.stderr != "" {
					t.Fatalf("exit code %d, stderr %q: want 0 and nothing", res.code, res.stderr)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Fatal("the command ran")
				}
				if tc.check != nil {
					tc.check(t, res.stdout)
					return
				}
				if !strings.HasPrefix(res.stdout, "Usage: gracefulinit") {
					t.Fatalf("stdout starts %q, want the usage", firstLine(res.stdout))
				}
				for _, f := range helpFlags {
					if !strings.Contains(res.stdout, f) {
						t.Errorf("--help does not mention %s", f)
					}
				}
			})
		}
	})
}

// checkLicense: -l prints the repository's LICENSE whole, then names the
// modules the binary links (the nacos helper's SDK is not among them).
func checkLicense(t *testing.T, out string) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "gracefulinit is licensed under the Apache License, Version 2.0:\n") ||
		!strings.Contains(out, string(license)) {
		t.Fatalf("stdout does not hold the Apache-2.0 LICENSE whole:\n%s", out)
	}
	for _, mod := range []string{"github.com/spf13/pflag", "golang.org/x/sys", "THIRD_PARTY_LICENSES"} {
		if !strings.Contains(out, mod) {
			t.Errorf("stdout does not name %s", mod)
		}
	}
	if strings.Contains(out, "nacos-sdk-go") {
		t.Error("stdout names nacos-sdk-go, which only gracefulinit-nacos links")
	}
}

// TestStartSignalState: --version says whether the signal state handed to
// the app is the exact one (the release's entry stub ran) or what the Go
// runtime left of it (a plain go install), and -v logs the same at start.
func TestStartSignalState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, bin, want string
	}{
		{"as shipped", testbin.Binary(t), "signal state at start exact: recorded by the entry stub"},
		{"go install", testbin.PlainBinary(t), "signal state at start approximate: built without -ldflags '-E _gracefulinit_rt0'"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run(ctx, mode{}, tc.bin, nil, nil, "--version")
			if err != nil || res.code != 0 {
				t.Fatalf("--version: %v, exit code %d", err, res.code)
			}
			if !strings.Contains(res.stdout, tc.want+")") {
				t.Errorf("--version printed %q, want it to end with %q", res.stdout, tc.want)
			}
			res, err = run(ctx, mode{}, tc.bin, nil, nil, "-v", "--", "true")
			if err != nil || res.code != 0 {
				t.Fatalf("-v: %v, exit code %d", err, res.code)
			}
			if !strings.Contains(res.stderr, strings.Replace(tc.want, "at start ", "at start: ", 1)) {
				t.Errorf("-v logged no %q at start:\n%s", tc.want, res.stderr)
			}
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// selfTerm is an app that sends SIGTERM to gracefulinit and waits for it to
// come back: a run that logs at info level (the stop sequence) on its own.
var selfTerm = []string{"--", "sh", "-c", "kill -TERM $PPID; exec sleep 30"}

// TestLogging: quiet by default, debug logs with -v (or the variables), the
// flags winning over the variables.
func TestLogging(t *testing.T) {
	t.Parallel()
	type want int
	const (
		silent want = iota // no output at all
		info               // info lines, no debug
		debug              // debug lines
	)
	trueCmd := []string{"--", "true"}
	tests := []struct {
		name     string
		env      []string
		flags    []string
		app      []string
		wantCode int
		want     want
	}{
		{"default run is quiet", nil, nil, trueCmd, 0, silent},
		{"-v", nil, []string{"-v"}, trueCmd, 0, debug},
		{"--verbose", nil, []string{"--verbose"}, trueCmd, 0, debug},
		{"--log-level debug", nil, []string{"--log-level", "debug"}, trueCmd, 0, debug},
		{"GRACEFULINIT_VERBOSE", []string{"GRACEFULINIT_VERBOSE=1"}, nil, trueCmd, 0, debug},
		{"TINI_VERBOSITY=3", []string{"TINI_VERBOSITY=3"}, nil, trueCmd, 0, debug},
		{"flag wins over TINI_VERBOSITY", []string{"TINI_VERBOSITY=3"}, []string{"--log-level", "info"}, trueCmd, 0, silent},
		// Without a timeline (tini mode) a plain stop is as quiet as tini.
		{"tini mode stop is quiet", nil, nil, selfTerm, 143, silent},
		{"stop sequence logs at info", nil, []string{"--grace-period", "30s"}, selfTerm, 143, info},
		{"TINI_VERBOSITY=2", []string{"TINI_VERBOSITY=2"}, []string{"--grace-period", "30s"}, selfTerm, 143, info},
		{"TINI_VERBOSITY=0", []string{"TINI_VERBOSITY=0"}, nil, selfTerm, 143, silent},
		{"flag wins over TINI_VERBOSITY=0", []string{"TINI_VERBOSITY=0"}, []string{"-v"}, selfTerm, 143, debug},
		{"--log-level error", nil, []string{"--log-level", "error"}, selfTerm, 143, silent},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				res := mustRun(t, m, tc.env, append(slices.Clone(tc.flags), tc.app...)...)
				if res.code != tc.wantCode {
					t.Fatalf("exit code %d, want %d (stderr %q)", res.code, tc.wantCode, res.stderr)
				}
				hasDebug := strings.Contains(res.stderr, "level=DEBUG")
				hasInfo := strings.Contains(res.stderr, "level=INFO")
				switch tc.want {
				case silent:
					if res.stderr != "" {
						t.Fatalf("stderr %q, want nothing", res.stderr)
					}
				case info:
					if !hasInfo || hasDebug {
						t.Fatalf("stderr %q, want info lines and no debug", res.stderr)
					}
				case debug:
					if !hasDebug || !strings.Contains(res.stderr, `msg="child started"`) {
						t.Fatalf("stderr %q, want debug lines including the child's start", res.stderr)
					}
				}
			})
		}
	})
	t.Run("json", func(t *testing.T) {
		res := mustRun(t, modes[0], nil, "-v", "--log-format", "json", "--", "true")
		l := lines(res.stderr)
		if res.code != 0 || len(l) == 0 {
			t.Fatalf("exit code %d, stderr %q", res.code, res.stderr)
		}
		for _, line := range l {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["level"] == nil || rec["msg"] == nil {
				t.Fatalf("log line %q is not a JSON record with level and msg: %v", line, err)
			}
		}
	})
}

// TestEnvConfig: every variable the issue lists is read, and the flag wins
// over the variable. The behaviour behind each is tested elsewhere in
// this package; this reads the resolved configuration that --check prints.
func TestEnvConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   []string
		flags []string
		flag  string
		want  string
	}{
		{"GRACEFULINIT_REMAP_EXIT", []string{"GRACEFULINIT_REMAP_EXIT=3,143"}, nil, "remap-exit", "[3,143]"},
		{"remap flag wins", []string{"GRACEFULINIT_REMAP_EXIT=3"}, []string{"-e", "4"}, "remap-exit", "[4]"},
		{"GRACEFULINIT_PGROUP", []string{"GRACEFULINIT_PGROUP=true"}, nil, "pgroup", "true"},
		{"pgroup flag wins", []string{"GRACEFULINIT_PGROUP=true"}, []string{"--pgroup=false"}, "pgroup", "false"},
		{"TINI_SUBREAPER", []string{"TINI_SUBREAPER="}, nil, "subreaper", "true"},
		{"TINI_SUBREAPER=1", []string{"TINI_SUBREAPER=1"}, nil, "subreaper", "true"},
		{"subreaper flag wins", []string{"TINI_SUBREAPER=1"}, []string{"--subreaper=false"}, "subreaper", "false"},
		{"TINI_KILL_PROCESS_GROUP", []string{"TINI_KILL_PROCESS_GROUP=1"}, nil, "pgroup", "true"},
		{"pgroup flag wins over tini", []string{"TINI_KILL_PROCESS_GROUP=1"}, []string{"-g=false"}, "pgroup", "false"},
		{"TINI_VERBOSITY=3", []string{"TINI_VERBOSITY=3"}, nil, "log-level", "debug"},
		{"TINI_VERBOSITY=1", []string{"TINI_VERBOSITY=1"}, nil, "log-level", "warn"},
		{"log-level flag wins", []string{"TINI_VERBOSITY=3"}, []string{"--log-level", "error"}, "log-level", "error"},
		{"unset", nil, nil, "pgroup", "false"},
	}
	m := modes[1]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := mustRun(t, m, tc.env, append(slices.Clone(tc.flags), "--check", "--", "true")...)
			if res.code != 0 {
				t.Fatalf("--check exit code %d, stderr %q", res.code, res.stderr)
			}
			re := regexp.MustCompile(`(?m)^\s*--` + regexp.QuoteMeta(tc.flag) + `\s+(\S+)`)
			got := re.FindStringSubmatch(res.stdout)
			if got == nil || got[1] != tc.want {
				t.Fatalf("--check shows --%s as %v, want %q\n%s", tc.flag, got, tc.want, res.stdout)
			}
		})
	}
}

// sigFields reads SigBlk and SigIgn from a /proc/PID/status dump.
func sigFields(t *testing.T, status string) (blk, ign uint64) {
	t.Helper()
	found := 0
	for _, l := range lines(status) {
		name, v, ok := strings.Cut(l, ":")
		if !ok || (name != "SigBlk" && name != "SigIgn") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("bad %s line %q", name, l)
		}
		if name == "SigBlk" {
			blk = n
		} else {
			ign = n
		}
		found++
	}
	if found != 2 {
		t.Fatalf("no SigBlk/SigIgn in %q", status)
	}
	return blk, ign
}

func sigBits(sigs ...syscall.Signal) uint64 {
	var b uint64
	for _, s := range sigs {
		b |= 1 << (uint(s) - 1)
	}
	return b
}

// dirtyBlocked and dirtyIgnored are the signal state a careless parent
// leaves behind. SIGCHLD blocked must not stop gracefulinit reaping; TERM
// blocked and ignored must not stop it handling TERM; QUIT, USR1 and the
// real-time signals ignored are what the Go runtime hides once it runs.
var (
	dirtyBlocked = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGTERM, syscall.SIGCHLD, syscall.SIGCONT, syscall.SIGWINCH, 40, 50}
	dirtyIgnored = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGPIPE, syscall.SIGUSR1,
		syscall.SIGTERM, syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTOU, 32, 34, 40, 50, 64}
)

func sigList(sigs []syscall.Signal) string {
	var s []string
	for _, x := range sigs {
		s = append(s, strconv.Itoa(int(x)))
	}
	return strings.Join(s, ",")
}

func dirtyWrapper(t *testing.T) []string {
	return []string{helper(t), "wrap", "-block", sigList(dirtyBlocked), "-ignore", sigList(dirtyIgnored), "--"}
}

// What a Go program can pass on of the signal state it was started with
// when it reads it from Go (a plain go install, without the entry stub):
// the Go runtime has by then unblocked the signals it cannot work without
// (lostBlocked) and installed its handler over an inherited SIG_IGN for
// every signal but keptIgnored. tini passes on all.
var (
	lostBlocked = sigBits(syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP,
		syscall.SIGABRT, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGTERM, syscall.SIGSTKFLT,
		syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, syscall.SIGSYS, 32, 33, 34)
	keptIgnored = sigBits(syscall.SIGHUP, syscall.SIGINT, syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGTTIN,
		syscall.SIGTTOU, 32, 34)
)

// unkeptIgnored: linked as shipped (the entry stub records the state
// before the runtime runs), gracefulinit passes on the whole mask and every
// ignored signal but these, on which the runtime keeps its own handler
// whatever the program asks, and which it resets to SIG_DFL in the child.
// TERM and CHLD are gracefulinit's own (its stop sequence, its reaping):
// never ignored, not even for the fork.
var unkeptIgnored = sigBits(syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV,
	syscall.SIGSTKFLT, syscall.SIGSYS, syscall.SIGURG, syscall.SIGPROF, 33, syscall.SIGTERM, syscall.SIGCHLD)

// tiniPath is tini 0.19.0 from Debian, which ./scripts/deps.sh installs.
func tiniPath(t *testing.T) string {
	t.Helper()
	const path = "/usr/bin/tini"
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("tini is needed side by side: %v (run ./scripts/deps.sh)", err)
	}
	return path
}

// TestInheritedSignalState: like tini, the app starts with the signal mask
// and the ignored signals gracefulinit was started with (nohup, a shell's
// trap ” HUP or background job, a careless parent), read side by side
// with tini from the app's /proc/self/status: all of it as shipped, up to
// what the Go runtime hides from Go code without the entry stub (a plain
// go install, see lostBlocked).
func TestInheritedSignalState(t *testing.T) {
	t.Parallel()
	tini := tiniPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*exitTimeout)
	defer cancel()

	// The wrapper must really leave that state behind, or the test proves nothing.
	res, err := run(ctx, modes[1], "cat", nil, dirtyWrapper(t), "/proc/self/status")
	if err != nil || res.code != 0 {
		t.Fatalf("wrapper: %v, exit %d", err, res.code)
	}
	blk, ign := sigFields(t, res.stdout)
	// The test's own parent may leave more behind (CI runners ignore
	// signal 32, for one): the dirty bits must be there, others may be.
	if want := sigBits(dirtyBlocked...); blk&want != want {
		t.Fatalf("wrapper left SigBlk %016x, want at least %016x", blk, want)
	}
	if want := sigBits(dirtyIgnored...); ign&want != want {
		t.Fatalf("wrapper left SigIgn %016x, want at least %016x", ign, want)
	}

	binaries := []struct {
		name string
		bin  string
		// want is what the app must start with, given tini's app's state.
		want func(tBlk, tIgn uint64) (blk, ign uint64)
	}{
		{"as shipped", testbin.Binary(t), func(tBlk, tIgn uint64) (uint64, uint64) {
			return tBlk, tIgn &^ unkeptIgnored
		}},
		{"go install", testbin.PlainBinary(t), func(tBlk, tIgn uint64) (uint64, uint64) {
			return tBlk &^ lostBlocked, tIgn & keptIgnored
		}},
	}
	tests := []struct {
		name       string
		wrap       []string
		inheriting bool // the app must start with something blocked or ignored
		// pid1: the wrapper execs the init (a shell's background job
		// forks it, so there it cannot be PID 1).
		pid1 bool
	}{
		{"clean start", nil, false, true},
		{"dirty start", dirtyWrapper(t), true, true},
		{"nohup", []string{"nohup"}, true, true},
		{"trap '' HUP INT", []string{"sh", "-c", `trap '' HUP INT; exec "$@"`, "sh"}, true, true},
		// POSIX: a non-interactive shell starts a background job with INT
		// and QUIT ignored.
		{"sh background job", []string{"sh", "-c", `"$@" & wait $!`, "sh"}, true, false},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			if m.pid1 && !tc.pid1 {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				status := func(init string, flags ...string) (blk, ign uint64) {
					t.Helper()
					args := append(flags, "--", "cat", "/proc/self/status")
					res, err := run(ctx, m, init, nil, tc.wrap, args...)
					if err != nil || res.code != 0 {
						t.Fatalf("%s: %v, exit code %d, stderr %q", init, err, res.code, res.stderr)
					}
					return sigFields(t, res.stdout)
				}
				tBlk, tIgn := status(tini, "-s")
				for _, b := range binaries {
					blk, ign := status(b.bin)
					wBlk, wIgn := b.want(tBlk, tIgn)
					if blk != wBlk {
						t.Errorf("%s: the app's SigBlk %016x, want %016x (tini's app: %016x)", b.name, blk, wBlk, tBlk)
					}
					if ign != wIgn {
						t.Errorf("%s: the app's SigIgn %016x, want %016x (tini's app: %016x)", b.name, ign, wIgn, tIgn)
					}
					if tc.inheriting && blk == 0 && ign == 0 {
						t.Errorf("%s: the app inherited nothing of a dirty start (tini's app: SigBlk %016x SigIgn %016x)", b.name, tBlk, tIgn)
					}
				}
			})
		}
		// Started dirty, gracefulinit must still catch and forward what
		// its parent blocked or ignored, as tini does (the recorder hears
		// them despite the inherited SIG_IGN: it installs handlers). QUIT
		// and 64 are ignored at start and handed over ignored, each by its
		// own path (caught at once, caught after the start).
		t.Run("dirty start forwards", func(t *testing.T) {
			rec := newRecorder(t, "child")
			sent := []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGWINCH, 64, syscall.SIGTERM}
			p := startWith(t, testbin.Options{PID1: m.pid1, Wrapper: dirtyWrapper(t)},
				"--", helper(t), "record", "-log", rec.path, "-exit-after", strconv.Itoa(len(sent)), "-code", "9")
			rec.waitReady(t, p)
			// Those ignored at start are ignored for the fork and caught
			// again just after it: wait until they are.
			want := sigBits(sent...)
			if !testbin.WaitFor(ctx, eventTimeout, func() bool { return sigCaught(initPID(p))&want == want }) {
				t.Fatalf("gracefulinit never caught all of %016x again (SigCgt %016x)", want, sigCaught(initPID(p)))
			}
			for i, s := range sent {
				p.Signal(s)
				if got := rec.waitCount(t, i+1); !slices.Equal(got, names(sent[:i+1])) {
					t.Fatalf("child recorded %v, want %v", got, names(sent[:i+1]))
				}
			}
			if code := p.Wait(exitTimeout); code != 9 {
				t.Fatalf("exit code %d, want the child's 9", code)
			}
		})
		// TERM blocked and ignored at start: gracefulinit still starts its
		// stop sequence on TERM. The app starts with TERM blocked, as under
		// tini, so the forwarded TERM stays pending in it (under tini it
		// would run on); gracefulinit's deadline kills it. (Not ignored:
		// see signals.ForFork.)
		t.Run("dirty start stops on TERM", func(t *testing.T) {
			p := startWith(t, testbin.Options{PID1: m.pid1, Wrapper: dirtyWrapper(t)},
				"--grace-period", "3s", "--", "sleep", "1000")
			mustAppPID(t, p)
			p.Signal(syscall.SIGTERM)
			if code := p.Wait(exitTimeout); code != 128+int(syscall.SIGKILL) {
				t.Fatalf("exit code %d, want %d: the app, TERM blocked, is killed at the deadline\nstderr:\n%s",
					code, 128+int(syscall.SIGKILL), p.Stderr)
			}
			for _, want := range []string{"stop signal received", "killing the process tree"} {
				if s := p.Stderr.String(); !strings.Contains(s, want) {
					t.Fatalf("no %q in the log:\n%s", want, s)
				}
			}
		})
	})
}

// sigCaught is SigCgt of pid's /proc status, 0 if unreadable.
func sigCaught(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return 0
}

// TestPdeathsig: -p is tini's: gracefulinit receives SIGNAL when its own
// parent dies, and handles it like any signal it receives (forwarded; TERM
// starts the stop sequence). Here the parent is a shell, or unshare for
// PID 1 (without --kill-child, which would SIGKILL the init instead).
func TestPdeathsig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   []string
		flags []string
		want  string // "" : no signal
	}{
		{"-p USR1", nil, []string{"-p", "USR1"}, "USR1"},
		{"--pdeathsig SIGHUP", nil, []string{"--pdeathsig=SIGHUP"}, "HUP"},
		{"number", nil, []string{"-p", "12"}, "USR2"},
		{"TERM", nil, []string{"-p", "TERM"}, "TERM"},
		{"GRACEFULINIT_PDEATHSIG", []string{"GRACEFULINIT_PDEATHSIG=INT"}, nil, "INT"},
		{"flag wins over env", []string{"GRACEFULINIT_PDEATHSIG=INT"}, []string{"-p", "QUIT"}, "QUIT"},
		{"none", nil, nil, ""},
	}
	launchers := map[bool][]string{
		true:  {"unshare", "--pid", "--fork", "--mount-proc"},
		false: {"sh", "-c", `"$0" "$@"; :`},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				rec := newRecorder(t, "child")
				args := append(slices.Clone(tc.flags), "--", helper(t), "record", "-log", rec.path, "-exit-after", "1", "-code", "7")
				// Started through a launcher of our own, so PID1 is false
				// for testbin: the init is the launcher's child.
				p := testbin.Start(t, testbin.Options{Env: tc.env, Wrapper: launchers[m.pid1]}, args...)
				rec.waitReady(t, p)
				init := mustChild(t, p.Cmd.Process.Pid)
				killOnCleanup(t, init)
				app := mustChild(t, init)
				killOnCleanup(t, app)
				launcher := p.Cmd.Process.Pid
				if err := syscall.Kill(launcher, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				// Not p.Done: gracefulinit and the app hold the output pipes.
				if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { return !alive(launcher) }) {
					t.Fatalf("launcher %d survived SIGKILL", launcher)
				}
				if tc.want != "" {
					if got := rec.waitCount(t, 1); !slices.Equal(got, []string{tc.want}) {
						t.Fatalf("app recorded %v, want [%s]", got, tc.want)
					}
				} else if got := rec.markerAlone(t, app); !slices.Equal(got, []string{"WINCH"}) {
					t.Fatalf("app recorded %v, want only the marker [WINCH]", got)
				}
				// The recorder exits after one signal; gracefulinit, which
				// outlived its parent, exits with its code.
				if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { return !alive(init) }) {
					t.Fatalf("gracefulinit %d still runs after its app exited", init)
				}
			})
		}
		// When gracefulinit itself dies the app gets nothing from -p (the
		// old behaviour set it on the app): as a plain child the app lives
		// on, as PID 1 the kernel ends the namespace.
		t.Run("init dies", func(t *testing.T) {
			p, rec := startRecorder(t, m, nil, []string{"-p", "USR1"}, 1, 0)
			app := mustAppPID(t, p)
			init := p.InitPID()
			if err := syscall.Kill(init, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if m.pid1 {
				if !testbin.WaitFor(context.Background(), eventTimeout, func() bool { return !alive(app) }) {
					t.Fatalf("app %d outlived its PID 1", app)
				}
				if got := rec.signals(); len(got) != 0 {
					t.Fatalf("app recorded %v, want nothing", got)
				}
				return
			}
			// The kernel would queue a parent-death signal as it re-parents
			// the app: once the app has a new parent, it would be there.
			if !testbin.WaitFor(context.Background(), eventTimeout, func() bool {
				ppid, err := strconv.Atoi(statusField(t, app, "PPid"))
				return err == nil && ppid != init
			}) {
				t.Fatalf("app %d never left the killed gracefulinit %d", app, init)
			}
			defer func() {
				if code := p.Wait(exitTimeout); code != -1 {
					t.Errorf("gracefulinit exit code %d, want -1 (killed)", code)
				}
			}()
			if got := rec.markerAlone(t, app); !slices.Equal(got, []string{"WINCH"}) {
				t.Fatalf("app recorded %v, want only the marker [WINCH]", got)
			}
		})
	})
}

// mustChild waits for pid's only child to have exec'd and returns it.
func mustChild(t *testing.T, pid int) int {
	t.Helper()
	var child int
	if !testbin.WaitFor(context.Background(), eventTimeout, func() bool {
		kids := proctree.Children(pid)
		if len(kids) == 0 || proctree.Exe(kids[0]) == proctree.Exe(pid) {
			return false
		}
		child = kids[0]
		return true
	}) {
		t.Fatalf("process %d never had a child of its own", pid)
	}
	return child
}

// killOnCleanup SIGKILLs pid when the test ends, unless it has exited by
// then (a pidfd makes sure the pid was not reused).
func killOnCleanup(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of %d: %v", pid, err)
	}
	t.Cleanup(func() {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}
