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
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/drain"
	"github.com/gracefulinit/gracefulinit/internal/health"
	"github.com/gracefulinit/gracefulinit/internal/ready"
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
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	os.Exit(untilStarted(stop, os.Stderr, func() int {
		return run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	}))
}

// gate decides, once, between starting the app and a stop signal that came
// first: preparing (flags, files, registry set-up) may be slow, and a stop
// request must not wait for it, nor be followed by an app that starts.
var gate struct {
	sync.Mutex
	started, stopped bool
}

// claimStart reports whether the app may start: no stop signal ended
// gracefulinit's preparation.
func claimStart() bool {
	gate.Lock()
	defer gate.Unlock()
	gate.started = !gate.stopped
	return gate.started
}

// untilStarted runs run and returns its code, unless a stop signal on stop
// comes before run started the app: then it returns 128+signal at once.
// After the start the supervisor owns every signal (it reads its own copy).
func untilStarted(stop chan os.Signal, stderr io.Writer, run func() int) int {
	done := make(chan int, 1)
	go func() { done <- run() }()
	select {
	case code := <-done:
		return code
	case s := <-stop:
		gate.Lock()
		first := !gate.started
		gate.stopped = first
		gate.Unlock()
		if first {
			sig := s.(syscall.Signal)
			fmt.Fprintf(stderr, "gracefulinit: %s before the app started: exiting without starting it\n", signals.Name(sig))
			return 128 + int(sig)
		}
		signal.Stop(stop)
		return <-done
	}
}

func run(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, src, err := config.ParseSources(args, lookup, stderr)
	if errors.Is(err, config.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gracefulinit: %v\nRun 'gracefulinit --help' for usage.\n", err)
		return exitUsage
	}
	if cfg.Version {
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	if cfg.License {
		fmt.Fprint(stdout, licenseText())
		return 0
	}
	log := newLogger(cfg, stderr)
	log.Debug("signal state at start: " + startState())
	hooks, err := buildHooks(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "gracefulinit: %v\n", err)
		return exitUsage
	}
	for _, l := range cfg.Timeline.Describe(signals.Name(cfg.StopSignal)) {
		log.Debug("timeline: " + l)
	}
	if cfg.Check {
		return check(cfg, src, stdout)
	}
	// Bound before the app starts, so a busy or bad address is an error
	// now, not a readinessProbe that never answers.
	var hs *health.Server
	if cfg.HealthAddr != "" {
		if hs, err = health.Listen(cfg.HealthAddr); err != nil {
			fmt.Fprintf(stderr, "gracefulinit: %v (choose a free port)\n", err)
			return exitUsage
		}
		hs.Serve()
	}
	if sig, ok := stopBeforeStart(caught); ok {
		log.Info("stop signal before the app started: exiting without starting it", "signal", signals.Name(sig))
		return 128 + int(sig)
	}
	if !claimStart() {
		return 128 + int(syscall.SIGTERM) // untilStarted has already returned the code
	}
	return supervisor.Run(supervisor.Options{
		Signals:   caught,
		Command:   cfg.Command,
		Env:       childEnv(os.Environ()),
		Subreaper: cfg.Subreaper,
		PGroup:    cfg.PGroup,
		PDeathSig: cfg.PDeathSig,
		RemapExit: cfg.RemapExit,
		WarnReap:  cfg.WarnReap,

		Timeline: cfg.Timeline,
		Drain: drain.Options{
			CacheMax: cfg.DrainCacheMax,
			Global:   !cfg.DrainPerCaller,
			Ignore:   cfg.DrainIgnore,
			Ports:    cfg.Ports,
			Addrs:    drainAddrs(cfg),
		},
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
	})
}

// stopBeforeStart reports a stop signal (TERM, INT, QUIT) that arrived while
// gracefulinit prepared: there is no app to stop yet, so it must not be
// started only to be stopped. Other signals go back in the queue, in order,
// for the supervisor to forward to the app.
func stopBeforeStart(ch chan os.Signal) (syscall.Signal, bool) {
	var keep []os.Signal
	defer func() {
		for _, s := range keep {
			select {
			case ch <- s:
			default: // full: dropped, as os/signal drops them
			}
		}
	}()
	for {
		select {
		case s := <-ch:
			switch s {
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
				return s.(syscall.Signal), true
			}
			keep = append(keep, s)
		default:
			return 0, false
		}
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: gracefulinit [flags] -- COMMAND [ARGS...]\n\n")
	fmt.Fprintf(w, "Runs COMMAND as its child: forwards signals, reaps zombies, exits with the child's code.\n")
	fmt.Fprintf(w, "On SIGTERM: registry offline, drain, stop signal, SIGKILL before the grace deadline.\n")
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
