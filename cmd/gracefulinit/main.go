// Command gracefulinit is a PID-1 supervisor for services behind a registry:
// it runs the app as its child, forwards signals, reaps zombies and, on
// SIGTERM, takes the app out of Nacos/Eureka, drains, stops the app and
// kills what is left before the runtime's deadline.
//
// The flow from here down: config.ParseSources reads flags and environment,
// buildHooks turns the registry settings into supervisor hooks, and
// supervisor.Run owns the process until the app exits.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/drain"
	"github.com/gracefulinit/gracefulinit/internal/health"
	"github.com/gracefulinit/gracefulinit/internal/ready"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/signals"
	"github.com/gracefulinit/gracefulinit/internal/supervisor"
	"github.com/gracefulinit/gracefulinit/internal/warmup"
)

// Set by the Makefile through -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

// exitUsage is the exit status for a bad invocation, as tini, dumb-init
// and catatonit use.
const exitUsage = 1

// caught holds every signal from the earliest moment the program can ask
// for them: a SIGTERM arriving while flags are parsed must start the stop
// sequence, not kill PID 1 with the Go runtime's exit status 2.
var caught = signals.Capture()

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// run prepares the supervisor's options from args and the environment and
// starts the app, unless a stop request came first.
func run(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	return untilStarted(caught, stderr, func() (*supervisor.Options, int) {
		return prepare(args, lookup, stdout, stderr)
	}, supervisor.Run)
}

// preStartStops are the signals that mean "stop" before any --stop-on is
// known: the ones whose default action ends a program.
var preStartStops = []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT}

// untilStarted is the one place a stop request before the app's start is
// decided. It reads caught while prepare runs (flags, files, registry
// set-up may be slow, and a stop request must not wait for it), then
// starts the app on this goroutine with what prepare returned, unless a
// stop request came first: then it returns 128+signal and nothing starts.
// Other signals that came meanwhile are queued again, in order, for the
// supervisor to forward once the app runs. prepare returning nil options
// ends the run with its code (an error, --version, --check).
func untilStarted(caught chan os.Signal, stderr io.Writer, prepare func() (*supervisor.Options, int), start func(supervisor.Options) int) int {
	type prepared struct {
		opts *supervisor.Options
		code int
	}
	done := make(chan prepared, 1)
	go func() {
		opts, code := prepare()
		done <- prepared{opts, code}
	}()
	var kept []os.Signal
	stopped := func(s os.Signal, stops []syscall.Signal) bool {
		sig, ok := s.(syscall.Signal)
		return ok && slices.Contains(stops, sig)
	}
	for {
		select {
		case s := <-caught:
			if stopped(s, preStartStops) {
				return stopBeforeStart(s.(syscall.Signal), stderr, nil)
			}
			kept = append(kept, s)
		case p := <-done:
			if p.opts == nil {
				return p.code
			}
			// What came in since, and what came before under a --stop-on
			// signal only now known.
			for len(caught) > 0 {
				kept = append(kept, <-caught)
			}
			stops := slices.Concat(preStartStops, p.opts.StopOn)
			for _, s := range kept {
				if stopped(s, stops) {
					return stopBeforeStart(s.(syscall.Signal), stderr, p.opts.Log)
				}
			}
			for _, s := range kept {
				select {
				case caught <- s:
				default: // full: dropped, as os/signal drops them
				}
			}
			p.opts.Signals = caught
			return start(*p.opts)
		}
	}
}

// stopBeforeStart says that a stop request came before the app started
// (through log once there is one) and returns the exit code, 128+signal.
func stopBeforeStart(sig syscall.Signal, stderr io.Writer, log *slog.Logger) int {
	if log != nil {
		log.Info("stop signal before the app started: exiting without starting it", "signal", signals.Name(sig))
	} else {
		fmt.Fprintf(stderr, "gracefulinit: %s before the app started: exiting without starting it\n", signals.Name(sig))
	}
	return 128 + int(sig)
}

// prepare reads the configuration and sets up everything the app's start
// needs; nil options mean: exit with the code (errors are already said).
func prepare(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) (*supervisor.Options, int) {
	cfg, src, err := config.ParseSources(args, lookup, stderr)
	if errors.Is(err, config.ErrHelp) {
		usage(stdout)
		return nil, 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gracefulinit: %v\nRun 'gracefulinit --help' for usage.\n", err)
		return nil, exitUsage
	}
	if cfg.Version {
		fmt.Fprintln(stdout, versionString())
		return nil, 0
	}
	if cfg.License {
		fmt.Fprint(stdout, licenseText())
		return nil, 0
	}
	log := newLogger(cfg, stderr)
	if unknown := config.UnknownEnv(os.Environ()); len(unknown) > 0 {
		// Never a refusal: a variable of another tool's naming (an image
		// pinning its download with GRACEFULINIT_VERSION) must not stop the app.
		log.Warn("environment variables with gracefulinit's prefix that set nothing, ignored: check their spelling against --help (--version, --license, --check and --help are read from the command line only)",
			"variables", strings.Join(unknown, ","))
	}
	if flags := config.SecretsOnCommandLine(cfg, src); len(flags) > 0 {
		log.Warn(secretsOnCommandLine, "flags", strings.Join(flags, ","))
	}
	log.Debug("signal state at start: " + startState())
	hooks, err := buildHooks(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "gracefulinit: %v\n", err)
		return nil, exitUsage
	}
	for _, l := range cfg.Timeline.Describe(stopSignalName(cfg)) {
		log.Debug("timeline: " + l)
	}
	add := appEnv(cfg, hooks, lookup)
	if cfg.Check {
		return nil, check(cfg, src, stdout, add)
	}
	if len(add) > 0 {
		log.Info("registry hold: the app is told through its environment to register itself out of rotation; gracefulinit puts it in once it is ready", "set", strings.Join(add, " "))
	}
	// Bound before the app starts, so a busy or bad address is an error
	// now, not a readinessProbe that never answers.
	var hs *health.Server
	if cfg.HealthAddr != "" {
		if hs, err = health.Listen(cfg.HealthAddr); err != nil {
			fmt.Fprintf(stderr, "gracefulinit: %v\n", err)
			return nil, exitUsage
		}
		hs.Serve()
	}
	o := supervisorOptions(cfg, hooks, hs, log)
	o.Env = append(o.Env, add...)
	return &o, 0
}

// supervisorOptions are the supervisor's options for cfg.
func supervisorOptions(cfg *config.Config, hooks supervisor.Hooks, hs *health.Server, log *slog.Logger) supervisor.Options {
	return supervisor.Options{
		Command:   cfg.Command,
		Env:       childEnv(os.Environ()),
		Subreaper: cfg.Subreaper,
		PGroup:    cfg.PGroup,
		PDeathSig: cfg.PDeathSig,
		RemapExit: cfg.RemapExit,
		WarnReap:  cfg.WarnReap,

		Timeline: cfg.Timeline,
		Drain: drain.Options{
			// Max, Quiet and Min come from the Timeline (see supervisor.Run).
			Policy: drain.Policy{CacheMax: cfg.DrainCacheMax, Global: !cfg.DrainPerCaller},
			Ignore: cfg.DrainIgnore,
			Ports:  cfg.Ports,
			Addrs:  drainAddrs(cfg),
		},
		StopOn:     cfg.StopOn,
		StopSignal: cfg.StopSignal,

		Ready:         readyProbe(cfg),
		ReadyInterval: cfg.ReadyInterval,
		ReadyTimeout:  cfg.ReadyTimeout,
		Warmup: warmup.Options{
			Calls: cfg.WarmupHTTP, Requests: cfg.WarmupRequests,
			Concurrency: cfg.WarmupConcurrency, Timeout: cfg.WarmupTimeout,
		},

		Hooks:        hooks,
		CloseTimeout: cfg.RegistryTimeout,

		Health:         hs,
		TerminationLog: cfg.TerminationLog,
		DumpSignal:     cfg.DumpSignal,
		DumpBefore:     cfg.DumpBefore,

		Log: log,
	}
}

// stopSignalName names the signal the app gets after the drain.
func stopSignalName(cfg *config.Config) string {
	if cfg.StopSignal != 0 {
		return signals.Name(cfg.StopSignal)
	}
	if len(cfg.StopOn) == 1 {
		return signals.Name(cfg.StopOn[0])
	}
	return "the signal that started the stop sequence"
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: gracefulinit [flags] -- COMMAND [ARGS...]\n\n")
	fmt.Fprintf(w, "Runs COMMAND as its child: forwards signals, reaps zombies, exits with the child's code.\n")
	fmt.Fprintf(w, "On SIGTERM (--stop-on): registry offline, drain, stop signal, SIGKILL before the grace deadline.\n")
	fmt.Fprintf(w, "Every flag can also be set as GRACEFULINIT_<FLAG> (e.g. GRACEFULINIT_GRACE_PERIOD=40s); the flag wins.\n")
	flagHelp(w)
}

func versionString() string {
	rev := commit
	if info, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("gracefulinit %s (commit %s, %s %s/%s, signal state at start %s)", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH, startState())
}

// startState says whether the app gets exactly the signal mask and ignored
// signals gracefulinit was started with, or what the Go runtime left of them.
func startState() string {
	if signals.StartExact() {
		return "exact: recorded by the entry stub"
	}
	return "approximate: built without -ldflags '-E " + signals.EntrySymbol + "'"
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if cfg.Verbosity > 0 {
		level = slog.LevelDebug
	}
	switch cfg.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("logger", "gracefulinit")
}

func readyProbe(cfg *config.Config) ready.Probe {
	switch {
	case cfg.ReadyHTTP != "":
		return ready.HTTP{URL: cfg.ReadyHTTP}
	case cfg.ReadyTCP != "":
		return ready.TCP{Addr: cfg.ReadyTCP}
	}
	return nil
}

// appEnv is what the hold adds to the app's environment so that the app
// registers itself out of rotation (see registry.AppEnver); nil with
// --registry-hold-env=false or nothing to hold.
func appEnv(cfg *config.Config, hooks supervisor.Hooks, lookup func(string) (string, bool)) []string {
	set, ok := hooks.(*registry.Set)
	if !ok || !cfg.RegistryHoldEnv {
		return nil
	}
	return set.AppEnv(lookup)
}

// childEnv keeps gracefulinit's own secrets out of the app's environment.
func childEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, config.EnvPrefix) && strings.Contains(name, "PASSWORD") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func drainAddrs(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	for _, ip := range cfg.DrainIPs {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// secretsOnCommandLine is the WARN (and --check's line) for secrets given
// as flags.
const secretsOnCommandLine = "secrets on gracefulinit's command line, which ps shows to every process that can see it: pass them in the variables (GRACEFULINIT_*) or, for passwords, --nacos-password-file and --eureka-password-file"
