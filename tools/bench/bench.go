// Package bench measures gracefulinit against its peers (tini-static,
// dumb-init, catatonit) on this machine, side by side in one run: binary
// size, idle memory, start-up overhead, signal-forwarding latency, orphan
// reaping, SIGTERM-to-exit time and the traffic-aware drain.
//
// Every process it starts is killed and reaped before Run returns, even on
// error or cancellation: the benchmark registers itself as a child
// subreaper so that nothing it starts can escape to the host's init.
package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// Names of the programs under test; tini-static is the reference every
// ratio is taken against.
const (
	NameGracefulinit = "gracefulinit"
	NameTini         = "tini-static"
	NameDumbInit     = "dumb-init"
	NameCatatonit    = "catatonit"
	// The Go floor (cmd/gofloor), built by the run itself: what any Go
	// init pays before it does anything of its own, bare and with the
	// registry library gracefulinit links (nacos-sdk-go lives in the
	// gracefulinit-nacos helper, not in PID 1).
	NameGoFloor     = "go-floor"
	NameGoFloorDeps = "go-floor+deps"
)

// Config says what to measure and how hard.
type Config struct {
	Quick bool // small sample counts: a smoke run of every section in well under a minute

	Gracefulinit string // bin/gracefulinit (PID 1; the Nacos SDK is in its helper)
	TiniStatic   string
	DumbInit     string
	Catatonit    string

	// Sections limits the run to these sections (names as in
	// Report.Timing: idle_rss, startup, signals, reaping, sigterm_to_exit,
	// drain); empty means all.
	Sections []string

	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// DefaultConfig is the full run with the binaries make builds and the
// peers scripts/deps.sh installs.
func DefaultConfig() Config {
	return Config{
		Gracefulinit: "bin/gracefulinit",
		TiniStatic:   "/usr/bin/tini-static",
		DumbInit:     "/usr/bin/dumb-init",
		Catatonit:    "/usr/bin/catatonit",
	}
}

// params are the sample counts and durations, full or quick.
type params struct {
	rssRuns      int
	rssSettle    time.Duration
	startRuns    int
	signals      int
	orphans      int
	reapRuns     int
	reapExecRuns int
	termRuns     int
	drainRuns    int
	drainMax     time.Duration
	drainQuiet   time.Duration
	traffic      time.Duration
	cpuWindow    time.Duration
	idleConns    int
	learnWindow  time.Duration // CPU window while the app runs and the drain learns its callers
	learnConns   int           // idle connections open meanwhile
	manyConns    int           // idle connections of the largest draining case
	reapTimeout  time.Duration
	drainTimeout time.Duration
}

func paramsFor(quick bool) params {
	if quick {
		return params{
			rssRuns: 1, rssSettle: time.Second, startRuns: 20, signals: 50,
			orphans: 500, reapRuns: 1, reapExecRuns: 1, termRuns: 10,
			drainRuns: 1, drainMax: 3 * time.Second, drainQuiet: 500 * time.Millisecond,
			traffic: 500 * time.Millisecond, cpuWindow: time.Second, idleConns: 20,
			learnWindow: 6 * time.Second, learnConns: 200, manyConns: 2000,
			reapTimeout: 60 * time.Second, drainTimeout: 30 * time.Second,
		}
	}
	return params{
		rssRuns: 3, rssSettle: time.Second, startRuns: 200, signals: 500,
		orphans: 10000, reapRuns: 3, reapExecRuns: 3, termRuns: 100,
		drainRuns: 3, drainMax: 10 * time.Second, drainQuiet: 500 * time.Millisecond,
		traffic: time.Second, cpuWindow: 5 * time.Second, idleConns: 50,
		learnWindow: 30 * time.Second, learnConns: 1000, manyConns: 10000,
		reapTimeout: 120 * time.Second, drainTimeout: 60 * time.Second,
	}
}

// Report is everything one run measured; it is what bin/bench.json holds.
type Report struct {
	Meta    Meta             `json:"meta"`
	Inits   []InitInfo       `json:"inits"`
	RSS     *RSSResult       `json:"idle_rss,omitempty"`
	Startup *StartupResult   `json:"startup,omitempty"`
	Signals *SignalResult    `json:"signals,omitempty"`
	Reap    *ReapResult      `json:"reaping,omitempty"`
	Term    *TermResult      `json:"sigterm_to_exit,omitempty"`
	Drain   *DrainResult     `json:"drain,omitempty"`
	Goals   []Goal           `json:"goals"`
	Errors  []string         `json:"errors,omitempty"`
	Timing  map[string]int64 `json:"section_ms"`
}

// Meta describes the machine and the run.
type Meta struct {
	Start     time.Time `json:"start"`
	Quick     bool      `json:"quick"`
	Kernel    string    `json:"kernel"`
	CPUs      int       `json:"cpus"`
	GoVersion string    `json:"go_version"`
	Notes     []string  `json:"notes"`
}

// InitInfo is one program under test and its binary.
type InitInfo struct {
	Init
	Present bool   `json:"present"`
	Size    int64  `json:"size_bytes"`
	Static  bool   `json:"static"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Goal is one target from the issues and whether this run met it.
type Goal struct {
	Goal     string `json:"goal"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	// Floor is what the Go floors measured against the same target in
	// the same run: a goal they miss is out of reach for an init in Go.
	Floor string `json:"go_floor,omitempty"`
}

// runner carries one Run's state.
type runner struct {
	cfg    Config
	p      params
	log    io.Writer
	helper string // path of the built benchhelper
	tmp    string
	sleep  string
	true_  string
	rep    *Report
}

// Run measures every section and returns the report. A section that fails
// is recorded in Report.Errors and the others still run; the error is
// non-nil only when nothing could be measured (no helper, no
// gracefulinit) or ctx ended.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r := &runner{cfg: cfg, p: paramsFor(cfg.Quick), log: cfg.Log}
	if r.log == nil {
		r.log = io.Discard
	}
	r.rep = &Report{
		Meta: Meta{
			Start: time.Now(), Quick: cfg.Quick, Kernel: kernel(), CPUs: runtime.NumCPU(),
			GoVersion: runtime.Version(), Notes: []string{},
		},
		Timing: map[string]int64{},
	}
	sections := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"idle_rss", r.measureRSS},
		{"startup", r.measureStartup},
		{"signals", r.measureSignals},
		{"reaping", r.measureReap},
		{"sigterm_to_exit", r.measureTerm},
		{"drain", r.measureDrain},
	}
	for _, name := range cfg.Sections {
		known := false
		for _, s := range sections {
			known = known || s.name == name
		}
		if !known {
			return nil, fmt.Errorf("unknown section %q: use idle_rss, startup, signals, reaping, sigterm_to_exit or drain", name)
		}
	}
	// Orphans of anything the benchmark starts come back to it rather
	// than to the host's init, and are reaped by reapStrays.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become a child subreaper: %w", err)
	}
	defer reapStrays()

	tmp, err := os.MkdirTemp("", "gracefulinit-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	r.tmp = tmp
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	// Even a cancelled run reports what it measured against the goals.
	defer func() { r.rep.Goals = r.goals() }()

	for _, s := range sections {
		if err := ctx.Err(); err != nil {
			return r.rep, err
		}
		if len(cfg.Sections) > 0 && !contains(cfg.Sections, s.name) {
			continue
		}
		fmt.Fprintf(r.log, "bench: %s...\n", s.name)
		start := time.Now()
		err := s.fn(ctx)
		reapStrays()
		r.rep.Timing[s.name] = time.Since(start).Milliseconds()
		if err != nil {
			if ctx.Err() != nil {
				return r.rep, ctx.Err()
			}
			r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("%s: %v", s.name, err))
			fmt.Fprintf(r.log, "bench: %s failed: %v\n", s.name, err)
		}
	}
	return r.rep, nil
}

func kernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// setup builds the helper and inspects the binaries.
func (r *runner) setup(ctx context.Context) error {
	var err error
	if r.sleep, err = exec.LookPath("sleep"); err != nil {
		return err
	}
	if r.true_, err = exec.LookPath("true"); err != nil {
		return err
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return fmt.Errorf("unshare (util-linux) is needed to run the inits as PID 1: %w", err)
	}
	if err := r.buildHelper(ctx); err != nil {
		return err
	}
	floor, floorDeps, err := r.buildFloors(ctx)
	if err != nil {
		return err
	}
	list := []Init{
		{NameGracefulinit, r.cfg.Gracefulinit, StyleGracefulinit},
		{NameTini, r.cfg.TiniStatic, StyleTini},
		{NameDumbInit, r.cfg.DumbInit, StyleDumbInit},
		{NameCatatonit, r.cfg.Catatonit, StyleCatatonit},
		{NameGoFloor, floor, StyleGoFloor},
		{NameGoFloorDeps, floorDeps, StyleGoFloor},
	}
	for _, in := range list {
		info := inspect(in)
		r.rep.Inits = append(r.rep.Inits, info)
	}
	full := r.info(NameGracefulinit)
	if full == nil || !full.Present {
		return fmt.Errorf("gracefulinit binary %q not found: run make build", r.cfg.Gracefulinit)
	}
	for _, i := range r.rep.Inits {
		if !i.Present {
			r.rep.Meta.Notes = append(r.rep.Meta.Notes, fmt.Sprintf("%s not found at %s: left out (scripts/deps.sh installs the peers).", i.Name, i.Path))
		}
	}
	return nil
}

// judge turns one init's failed runs into the section's error or a note.
// Any failure of gracefulinit is an error: it is what is under test. A
// peer failing some runs is its own behaviour, measured and noted; a peer
// failing every run means the harness is wrong, an error again.
func (r *runner) judge(section, name string, failed, total int, last error) error {
	if failed == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s: %s failed %d of %d runs, last: %v", section, name, failed, total, last)
	if strings.HasPrefix(name, NameGracefulinit) || failed >= total {
		return errors.New(msg)
	}
	r.rep.Meta.Notes = append(r.rep.Meta.Notes, msg)
	return nil
}

// info finds the InitInfo by name.
func (r *runner) info(name string) *InitInfo {
	for i := range r.rep.Inits {
		if r.rep.Inits[i].Name == name {
			return &r.rep.Inits[i]
		}
	}
	return nil
}

// present lists the inits that exist, in table order, minus the excluded names.
func (r *runner) present(exclude ...string) []Init {
	var out []Init
	for _, i := range r.rep.Inits {
		if i.Present && !contains(exclude, i.Name) {
			out = append(out, i.Init)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func inspect(in Init) InitInfo {
	info := InitInfo{Init: in}
	abs, err := filepath.Abs(in.Path)
	if err == nil {
		info.Path = abs
	}
	st, err := os.Stat(info.Path)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		info.Note = "missing"
		return info
	}
	info.Present = true
	info.Size = st.Size()
	info.Version = version(info.Init)
	if b, err := os.ReadFile(info.Path); err == nil {
		sum := sha256.Sum256(b)
		info.SHA256 = hex.EncodeToString(sum[:])
		if f, err := elf.NewFile(bytes.NewReader(b)); err == nil {
			info.Static = true
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					info.Static = false
				}
			}
		}
	}
	return info
}

// version asks the program for its version, for the record; "" if it
// does not say within a few seconds.
func version(in Init) string {
	flag := "--version"
	if in.Style == StyleCatatonit {
		flag = "-V"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, in.Path, flag).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// buildHelper compiles cmd/benchhelper into the run's temp dir.
func (r *runner) buildHelper(ctx context.Context) error {
	r.helper = filepath.Join(r.tmp, "benchhelper")
	return r.goBuild(ctx, r.helper, "./bench/cmd/benchhelper")
}

// buildFloors compiles cmd/gofloor twice, the way the Makefile builds
// gracefulinit (static, stripped): bare, and with -tags deps.
func (r *runner) buildFloors(ctx context.Context) (bare, deps string, err error) {
	bare = filepath.Join(r.tmp, NameGoFloor)
	deps = filepath.Join(r.tmp, NameGoFloorDeps)
	if err := r.goBuild(ctx, bare, "./bench/cmd/gofloor", "-ldflags", "-s -w"); err != nil {
		return "", "", err
	}
	if err := r.goBuild(ctx, deps, "./bench/cmd/gofloor", "-ldflags", "-s -w", "-tags", "deps"); err != nil {
		return "", "", err
	}
	return bare, deps, nil
}

// goBuild runs go build -trimpath with CGO off in the module root.
func (r *runner) goBuild(ctx context.Context, out, pkg string, flags ...string) error {
	root, err := repo.Root()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "tools") // the helper programs' module
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append([]string{"build", "-trimpath", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
