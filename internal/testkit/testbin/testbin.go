// Package testbin builds the repository's binaries once per test process,
// runs gracefulinit the way production does: as PID 1 of a fresh PID
// namespace (unshare --pid --fork --mount-proc), or as a plain subreaper
// child, and reads its JSON log.
package testbin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/signals"
	"github.com/gracefulinit/gracefulinit/internal/testkit/pidns"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// build is one package's binary, built at most once per test process.
type build struct {
	once sync.Once
	path string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// Build builds the main package pkg (relative to the repository root, e.g.
// "./testdata/pid1/pid1helper") once per test process, static like the
// release, and returns the binary's path. It fails t when the build does.
// ./cmd/gracefulinit is linked as the Makefile links it, entering through
// the signal-state stub (EntryLDFlags).
func Build(t testing.TB, pkg string) string {
	t.Helper()
	return buildOnce(t, pkg, true)
}

// BuildVersion builds pkg as Build does, stamped as the Makefile stamps a
// release: -X main.version=version. Tests of the version check between
// gracefulinit and gracefulinit-nacos build two releases this way.
func BuildVersion(t testing.TB, pkg, version string) string {
	t.Helper()
	return buildOnceAs(t, pkg, true, version)
}

func buildOnce(t testing.TB, pkg string, entry bool) string {
	t.Helper()
	return buildOnceAs(t, pkg, entry, "")
}

func buildOnceAs(t testing.TB, pkg string, entry bool, version string) string {
	t.Helper()
	key := pkg
	if !entry {
		key += " (plain)"
	}
	if version != "" {
		key += " (version " + version + ")"
	}
	buildsMu.Lock()
	b := builds[key]
	if b == nil {
		b = &build{}
		builds[key] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() { b.path, b.err = goBuild(pkg, entry, version) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// EntryLDFlags is what the Makefile, the Dockerfile and these builds pass
// the linker for ./cmd/gracefulinit: its ELF entry is the stub that
// records the signal state before the Go runtime changes it
// (internal/signals/entry.go). The other binaries do not link that package.
const EntryLDFlags = "-E " + signals.EntrySymbol

// RunDirEnv names a directory that one test run (make test) shares between
// its test processes: each binary is built there once, under a lock, by the
// first package that asks, and the others reuse it. The run removes the
// directory when it ends. Unset, every test process builds its own copies
// and its TestMain removes them (RemoveBuilt).
const RunDirEnv = "GI_TEST_RUN_DIR"

// goBuild builds pkg into a fresh directory, or reuses the run's copy (see
// RunDirEnv), and returns the binary's path. pkg may be a space-separated
// list of main packages, built into the same directory; the path returned
// is the first one's. entry links ./cmd/gracefulinit with EntryLDFlags; a
// version is stamped into main.version.
func goBuild(pkg string, entry bool, version string) (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	if run := os.Getenv(RunDirEnv); run != "" {
		return sharedBuild(root, run, pkg, entry, version)
	}
	dir, err := os.MkdirTemp("", "gracefulinit-bin-")
	if err != nil {
		return "", err
	}
	if err := buildInto(root, dir, pkg, entry, version); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return filepath.Join(dir, filepath.Base(strings.Fields(pkg)[0])), nil
}

// sharedBuild returns pkg built into run/KEY, KEY being a hash of the
// sources and the build's arguments, building it there first if no test
// process of the run has. An flock on run/KEY.lock makes the others wait
// for the one that builds, instead of compiling the same packages side by
// side on a loaded machine.
func sharedBuild(root, run, pkg string, entry bool, version string) (string, error) {
	key, err := buildKey(root, pkg, entry, version)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(run, key)
	bin := filepath.Join(dir, filepath.Base(strings.Fields(pkg)[0]))
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close() // releases the flock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("testbin: lock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".built")); err == nil {
		return bin, nil
	}
	os.RemoveAll(dir) // a build that died half-way
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := buildInto(root, dir, pkg, entry, version); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ".built"), nil, 0o644); err != nil {
		return "", err
	}
	return bin, nil
}

// buildKey hashes what a build's output depends on: the packages, the
// entry flag, the version stamped, the Go toolchain and every source file of the module
// (tools/ and build outputs aside), so a run dir reused after an edit
// never hands out a stale binary.
func buildKey(root, pkg string, entry bool, version string) (string, error) {
	srcOnce.Do(func() { srcHash, srcErr = hashSources(root) })
	if srcErr != nil {
		return "", srcErr
	}
	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("testbin: go env GOVERSION: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "testbin-v1\n%s\n%q\n%v\n%q\n%s\n", bytes.TrimSpace(goVersion), pkg, entry, version, srcHash)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

var (
	srcOnce sync.Once
	srcHash string
	srcErr  error
)

// hashSources hashes the path and content of every file under root but
// .git, tools/ (a module of its own), build outputs and tests' files.
func hashSources(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			switch rel {
			case ".git", "tools", "bin", "dist", ".cache":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("testbin: hash the sources: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildInto builds each package of pkg into dir, static like the release.
func buildInto(root, dir, pkg string, entry bool, version string) error {
	pkgs := strings.Fields(pkg)
	for _, p := range pkgs {
		args := []string{"build", "-trimpath", "-o", filepath.Join(dir, filepath.Base(p))}
		var ldflags []string
		if entry && p == "./cmd/gracefulinit" {
			ldflags = append(ldflags, EntryLDFlags)
		}
		if version != "" {
			ldflags = append(ldflags, "-X main.version="+version)
		}
		if len(ldflags) > 0 {
			args = append(args, "-ldflags", strings.Join(ldflags, " "))
		}
		cmd := exec.Command("go", append(args, p)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", p, err, out)
		}
	}
	return nil
}

// RemoveBuilt deletes the binaries Build made, for a TestMain to call after
// the tests have run. The run's shared copies (RunDirEnv) are the run's to
// remove: other test processes may still use them.
func RemoveBuilt() {
	buildsMu.Lock()
	defer buildsMu.Unlock()
	for _, b := range builds {
		if b.path != "" && !inRunDir(b.path) {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
}

// inRunDir reports whether path is in the run's shared directory.
func inRunDir(path string) bool {
	run := os.Getenv(RunDirEnv)
	return run != "" && strings.HasPrefix(path, filepath.Clean(run)+string(filepath.Separator))
}

// Binary returns the path of gracefulinit built for this test process
// (static, like the release), with gracefulinit-nacos, the register-mode
// helper, beside it as in the image.
func Binary(t testing.TB) string {
	t.Helper()
	return Build(t, "./cmd/gracefulinit ./cmd/gracefulinit-nacos")
}

// PlainBinary returns gracefulinit built without EntryLDFlags, as a plain
// go install builds it: it passes on the signal state only as far as the
// Go runtime has left it.
func PlainBinary(t testing.TB) string {
	t.Helper()
	return buildOnce(t, "./cmd/gracefulinit", false)
}

// Helper returns the path of gracefulinit-nacos, the register-mode helper,
// next to Binary's gracefulinit.
func Helper(t testing.TB) string {
	t.Helper()
	return filepath.Join(filepath.Dir(Binary(t)), "gracefulinit-nacos")
}

// Proc is a running gracefulinit.
type Proc struct {
	t      testing.TB
	Cmd    *exec.Cmd
	PID1   bool
	Stdout *SafeBuffer
	Stderr *SafeBuffer
	done   chan struct{}
	err    error
}

// SafeBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SafeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Options for Start.
type Options struct {
	PID1 bool     // run as PID 1 of a new PID namespace
	Env  []string // added to os.Environ()
	Dir  string
	// Wrapper, if set, is an argv prefix run in gracefulinit's place; the
	// binary's path and args are appended. It must exec gracefulinit (so
	// the pid stays the same), e.g. to start it with a dirty signal state.
	Wrapper []string
	// Binary, if set, is run instead of Binary(t): a copy elsewhere, e.g.
	// without the helper beside it.
	Binary string
}

// Start runs gracefulinit with args. It is killed (with its whole
// namespace) in t.Cleanup if still running.
func Start(t testing.TB, o Options, args ...string) *Proc {
	t.Helper()
	bin := o.Binary
	if bin == "" {
		bin = Binary(t)
	}
	argv := append(append(append([]string{}, o.Wrapper...), bin), args...)
	if o.PID1 {
		argv = pidns.Argv(argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Dir = o.Dir
	p := &Proc{t: t, Cmd: cmd, PID1: o.PID1, Stdout: &SafeBuffer{}, Stderr: &SafeBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gracefulinit: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("gracefulinit stdout:\n%s\ngracefulinit stderr:\n%s", p.Stdout, p.Stderr)
		}
	})
	return p
}

// InitPID is gracefulinit's pid as seen from the test (host namespace).
// As PID 1 that is unshare's only child. It waits until gracefulinit has
// started its child: by then it catches every signal, and a signal sent
// earlier could hit the Go runtime's default handling instead.
func (p *Proc) InitPID() int {
	p.t.Helper()
	var pid int
	poll.Within(context.Background(), 10*time.Second, 5*time.Millisecond, func() bool {
		pid = pidns.ReadyInit(p.Cmd.Process.Pid, p.PID1)
		return pid != 0 || p.Exited()
	})
	switch {
	case pid != 0:
		return pid
	case p.Exited():
		p.t.Fatalf("gracefulinit exited before its child started\nstderr:\n%s", p.Stderr)
	default:
		p.t.Fatalf("gracefulinit did not start its child within 10s\nstderr:\n%s", p.Stderr)
	}
	return 0
}

// Signal sends sig to gracefulinit itself and returns when it was sent.
func (p *Proc) Signal(sig syscall.Signal) time.Time {
	p.t.Helper()
	pid := p.InitPID()
	at := time.Now()
	if err := syscall.Kill(pid, sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	return at
}

// Wait waits up to timeout for gracefulinit to exit and returns its exit code.
func (p *Proc) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("gracefulinit still running after %v\nstderr:\n%s", timeout, p.Stderr)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Done is closed when gracefulinit has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether gracefulinit has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitFor polls cond every 10ms until it holds or timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	return poll.Within(ctx, timeout, 10*time.Millisecond, cond)
}

// LogRecord is one of gracefulinit's JSON log records (--log-format json).
type LogRecord map[string]any

// Str is the attribute key as text: a string as is, another value as fmt
// prints it, "" when absent.
func (l LogRecord) Str(key string) string {
	v, ok := l[key]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Num is the numeric attribute key, 0 when absent or not a number.
func (l LogRecord) Num(key string) float64 {
	v, _ := l[key].(float64)
	return v
}

// Dur reads a duration attribute: slog writes a time.Duration as
// nanoseconds, the shutdown summary writes text ("4.002s"); anything else
// (the summary's "-") is 0.
func (l LogRecord) Dur(key string) time.Duration {
	if n, ok := l[key].(float64); ok {
		return time.Duration(n)
	}
	d, _ := time.ParseDuration(l.Str(key))
	return d
}

// Logs parses gracefulinit's JSON records out of its stderr, which it
// shares with its child: other lines (the JVM's own) are skipped.
func (p *Proc) Logs() []LogRecord {
	var out []LogRecord
	sc := bufio.NewScanner(strings.NewReader(p.Stderr.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		var l LogRecord
		if json.Unmarshal(line, &l) == nil && l["logger"] == "gracefulinit" {
			out = append(out, l)
		}
	}
	return out
}

// Summary is gracefulinit's "shutdown summary" record, parsed. Durations
// are measured by gracefulinit from the stop request; the ones it reports
// as "-" (the step never happened) are -1.
type Summary struct {
	Signal      string
	Offline     string
	DrainEnd    string
	Drain       time.Duration
	StopSignal  string
	StopSentAt  time.Duration
	ChildExitAt time.Duration
	Killed      bool
	ChildCode   int
	ExitCode    int
	Total       time.Duration
	Deadline    time.Duration
	Record      LogRecord // all of it, offline_took included
}

// summaryFields are the fields every summary must carry.
var summaryFields = []string{"signal", "offline", "drain_end", "drain", "stop_sent_at", "child_exit_at", "killed", "exit_code", "total", "deadline"}

// ParseSummary reads a "shutdown summary" record. The error names every
// field that is missing or not of its type; the Summary holds what parsed.
func ParseSummary(l LogRecord) (Summary, error) {
	var errs []error
	for _, f := range summaryFields {
		if _, ok := l[f]; !ok {
			errs = append(errs, fmt.Errorf("shutdown summary lacks %q", f))
		}
	}
	dur := func(key string) time.Duration {
		s := l.Str(key)
		if s == "-" {
			return -1
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("summary %s=%q: not a duration: %v", key, s, err))
		}
		return d
	}
	num := func(key string) int {
		f, ok := l[key].(float64)
		if !ok {
			errs = append(errs, fmt.Errorf("summary %s=%v: not a number", key, l[key]))
		}
		return int(f)
	}
	killed, ok := l["killed"].(bool)
	if !ok {
		errs = append(errs, fmt.Errorf("summary killed=%v: not a boolean", l["killed"]))
	}
	s := Summary{
		Signal:      l.Str("signal"),
		Offline:     l.Str("offline"),
		DrainEnd:    l.Str("drain_end"),
		Drain:       dur("drain"),
		StopSignal:  l.Str("stop_signal"),
		StopSentAt:  dur("stop_sent_at"),
		ChildExitAt: dur("child_exit_at"),
		Killed:      killed,
		ChildCode:   num("child_exit_code"),
		ExitCode:    num("exit_code"),
		Total:       dur("total"),
		Deadline:    dur("deadline"),
		Record:      l,
	}
	return s, errors.Join(errs...)
}
