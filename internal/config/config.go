// Package config turns the command line and GRACEFULINIT_* / TINI_* environment
// variables into a validated Config. It has no side effects beyond reading
// files named by *-file flags; every error is one line naming the flag and the fix.
package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/pflag"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/registry/eureka"
	"github.com/gracefulinit/gracefulinit/internal/registry/httphook"
	"github.com/gracefulinit/gracefulinit/internal/registry/nacos"
	"github.com/gracefulinit/gracefulinit/internal/signals"
	"github.com/gracefulinit/gracefulinit/internal/termlog"
	"github.com/gracefulinit/gracefulinit/internal/timeline"
	"github.com/gracefulinit/gracefulinit/internal/warmup"
)

// EnvPrefix is prepended to a flag's upper-snake-case name to form its variable.
const EnvPrefix = "GRACEFULINIT_"

// ErrHelp is returned when -h/--help was given; the caller prints Usage.
var ErrHelp = pflag.ErrHelp

// Config is everything gracefulinit was asked to do.
type Config struct {
	Command []string

	// PID-1 core, tini-compatible.
	Subreaper bool
	PGroup    bool
	RemapExit []int
	PDeathSig syscall.Signal
	WarnReap  bool // -w: warn about each reaped zombie that is not the app
	License   bool // -l: print the license and exit
	Verbosity int
	LogFormat string // text|json
	LogLevel  string // debug|info|warn|error; empty means derived from Verbosity
	Version   bool
	Check     bool

	// Shutdown timeline.
	GracePeriod time.Duration
	KillMargin  time.Duration
	StopTimeout time.Duration
	Drain       time.Duration
	DrainQuiet  time.Duration
	DrainMin    time.Duration
	// DrainCacheMax: after this from the offline, callers still calling are
	// not waited for; default 40s with Nacos, 95s with Eureka, else 0 (off).
	DrainCacheMax time.Duration
	// DrainIgnore are callers left out of the drain: --drain-ignore, and
	// the node's address from HOST_IP when set.
	DrainIgnore    []netip.Prefix
	DrainPerCaller bool       // false: one quiet window over every caller, the rule before per-caller drains
	HostIP         netip.Addr // $HOST_IP, the node's address (kubelet probes come from it); invalid when unset
	Ports          []int
	DrainIPs       []net.IP
	// StopOn are the signals that start the stop sequence (default TERM);
	// StopSignal goes to the app after the drain, 0: the one that started it.
	StopOn     []syscall.Signal
	StopSignal syscall.Signal
	// Timeline is the above resolved: defaults shrunk to fit, validated.
	Timeline timeline.Timeline

	// Readiness.
	ReadyHTTP     string
	ReadyTCP      string
	ReadyInterval time.Duration
	ReadyTimeout  time.Duration

	// Warm-up: requests sent after ready, before online.
	WarmupHTTP        []httphook.Call
	WarmupRequests    int
	WarmupConcurrency int
	WarmupTimeout     time.Duration

	// Registries.
	Registries      []string // "nacos", "eureka"
	RegistryTimeout time.Duration
	RegistryHold    bool // mark mode: keep the app's own registration out of rotation until it is ready and warm
	RegistryHoldEnv bool // mark mode with the hold: tell the app through its environment to register itself out of rotation
	Service         string
	IP              string
	// Nacos and Eureka are the backends' own options, bound to the flags:
	// their defaults and validation are the backends' (Resolve).
	Nacos  nacos.Options
	Eureka eureka.Options
	// HTTP hooks for registries gracefulinit does not speak: each
	// "METHOD URL [BODY]", run in the online and offline slots.
	OnlineHTTP  []httphook.Call
	OfflineHTTP []httphook.Call

	// Kubernetes.
	HealthAddr     string         // serve /ready and /live here; empty: off
	TerminationLog string         // write the shutdown summary here; empty: off
	DumpSignal     syscall.Signal // sent once DumpBefore before the kill; 0: off
	DumpBefore     time.Duration

	flags *pflag.FlagSet
}

// Flags is the flag set the configuration was parsed with; its values are
// bound to the Config, so they show the command line and environment.
func (c *Config) Flags() *pflag.FlagSet { return c.flags }

// DrainBudget is the longest the drain may last: what the grace period
// leaves after the kill margin and the time reserved for the app to stop
// (0 in tini mode, where there is no deadline).
func (c *Config) DrainBudget() time.Duration { return c.Timeline.Budget() }

// HasRegistry reports whether a native registry (Nacos, Eureka) is configured.
func (c *Config) HasRegistry() bool { return len(c.Registries) > 0 }

// HasOffline reports whether any step takes the instance out of rotation at
// SIGTERM: a native registry or an --offline-http hook. Such a step turns
// the traffic-aware drain on by default.
func (c *Config) HasOffline() bool { return c.HasRegistry() || len(c.OfflineHTTP) > 0 }

// Port is the registered port: the first --port, or 0.
func (c *Config) Port() int {
	if len(c.Ports) == 0 {
		return 0
	}
	return c.Ports[0]
}

// MaxDuration bounds every duration flag. A year is far beyond any sensible
// grace period or timeout, and keeps sums of a few durations clear of
// time.Duration's overflow (292 years), which would wrap to negative deadlines.
const MaxDuration = 365 * 24 * time.Hour

// durationValue accepts Go durations ("30s", "1m30s") and bare seconds ("30"),
// because grace periods are written as seconds everywhere else in Kubernetes.
// Set refuses what is not a finite duration from 0 to MaxDuration.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	s = strings.TrimSpace(s)
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	const fix = "use a value like 30s, 1m, 500ms or 30 (seconds)"
	if n, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case math.IsNaN(n) || math.IsInf(n, 0):
			return 0, fmt.Errorf("%q is not a duration: %s", s, fix)
		case n < 0:
			return 0, fmt.Errorf("negative duration %q: %s", s, fix)
		case n > MaxDuration.Seconds():
			return 0, fmt.Errorf("duration %q is longer than a year (%s): %s", s, MaxDuration, fix)
		case n > 0 && n < 1e-9:
			return 0, fmt.Errorf("duration %q is shorter than a nanosecond: %s", s, fix)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// ParseDuration also fails on overflow; the advice is the same.
		return 0, fmt.Errorf("invalid duration %q: %s", s, fix)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q: %s", s, fix)
	}
	if v > MaxDuration {
		return 0, fmt.Errorf("duration %q is longer than a year (%s): %s", s, MaxDuration, fix)
	}
	return v, nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }

// countValue is a whole number from 1 to max.
type countValue struct {
	n   *int
	max int
}

func (c *countValue) Set(s string) error {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > int64(c.max) {
		return fmt.Errorf("want a whole number from 1 to %d", c.max)
	}
	*c.n = int(n)
	return nil
}

func (c *countValue) String() string {
	if c.n == nil {
		return "0"
	}
	return strconv.Itoa(*c.n)
}
func (c *countValue) Type() string { return "int" }

// MaxWeight is the largest weight Nacos accepts (its MAX_WEIGHT_VALUE);
// MinWeight the smallest that still draws traffic in practice (weights are
// shown and edited with two decimals; 1e-300 would keep the instance out).
const (
	MaxWeight = 10000
	MinWeight = 0.01
)

// weightValue is a Nacos weight from MinWeight to MaxWeight. 0 is not
// allowed because it is the weight that takes an instance out.
type weightValue float64

func (w *weightValue) Set(s string) error {
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%q is not a number: use a weight like 1", s)
	}
	if math.IsNaN(n) || n < MinWeight || n > MaxWeight {
		return fmt.Errorf("weight %q out of range: use a number from %g to %d, like 1", s, MinWeight, MaxWeight)
	}
	*w = weightValue(n)
	return nil
}
func (w *weightValue) String() string { return strconv.FormatFloat(float64(*w), 'g', -1, 64) }

// Type is pflag's name for float64 flags, so --help reads the same.
func (w *weightValue) Type() string { return "float64" }

type signalValue syscall.Signal

func (s *signalValue) Set(v string) error {
	sig, err := signals.Parse(v)
	if err != nil {
		return err
	}
	*s = signalValue(sig)
	return nil
}
func (s *signalValue) String() string {
	if *s == 0 {
		return ""
	}
	return strings.TrimPrefix(signals.Name(syscall.Signal(*s)), "SIG")
}
func (s *signalValue) Type() string { return "signal" }

// signalsValue is a repeatable signal flag; each value may also list
// several, comma-separated (GRACEFULINIT_STOP_ON=TERM,INT). The first value
// given replaces the default.
type signalsValue struct {
	sigs *[]syscall.Signal
	set  bool
}

func (s *signalsValue) Set(v string) error {
	if !s.set {
		*s.sigs, s.set = nil, true
	}
	for _, part := range strings.Split(v, ",") {
		sig, err := signals.Parse(part)
		if err != nil {
			return err
		}
		if !slices.Contains(*s.sigs, sig) {
			*s.sigs = append(*s.sigs, sig)
		}
	}
	return nil
}

func (s *signalsValue) String() string {
	names := make([]string, len(*s.sigs))
	for i, sig := range *s.sigs {
		names[i] = strings.TrimPrefix(signals.Name(sig), "SIG")
	}
	return strings.Join(names, ",")
}
func (s *signalsValue) Type() string { return "signals" }

// FlagSet builds the flag set bound to cfg. It is exported so the README test
// and --help print the same thing.
func FlagSet(cfg *Config, out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("gracefulinit", pflag.ContinueOnError)
	fs.SetOutput(out)
	// The caller prints --help to stdout; pflag's own usage would print it
	// a second time on the error stream.
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.SetInterspersed(false)

	// tini-compatible core.
	fs.BoolVarP(&cfg.Subreaper, "subreaper", "s", false, "register as a child subreaper (automatic when not PID 1)")
	fs.BoolVarP(&cfg.PGroup, "pgroup", "g", false, "send forwarded signals to the child's whole process group")
	fs.IntSliceVarP(&cfg.RemapExit, "remap-exit", "e", nil, "exit with 0 when the child exits with `CODE` (repeatable, e.g. 143 for the JVM)")
	fs.VarP((*signalValue)(&cfg.PDeathSig), "pdeathsig", "p", "`SIGNAL` gracefulinit receives when its parent dies, handled like any signal (forwarded; a --stop-on signal, TERM by default, starts the stop sequence)")
	fs.CountVarP(&cfg.Verbosity, "verbose", "v", "more logging (repeatable)")
	fs.BoolVarP(&cfg.WarnReap, "warn-on-reap", "w", false, "log a warning for each reaped zombie that is not the app")
	fs.BoolVarP(&cfg.License, "license", "l", false, "print the license, then exit")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", "", "log level: debug, info, warn or error (default info, debug with -v)")
	fs.BoolVar(&cfg.Version, "version", false, "print version, commit and Go version, then exit")
	fs.BoolVar(&cfg.Check, "check", false, "print the resolved configuration (secrets redacted), check registries and the timeline, then exit")
	endSection(fs, "Core (as tini)")

	// Shutdown timeline.
	cfg.GracePeriod, cfg.KillMargin, cfg.StopTimeout = timeline.DefaultGracePeriod, timeline.DefaultKillMargin, timeline.DefaultStopTimeout
	fs.Var((*durationValue)(&cfg.GracePeriod), "grace-period", "the runtime's stop deadline (terminationGracePeriodSeconds, docker stop -t)")
	fs.Var((*durationValue)(&cfg.KillMargin), "kill-margin", "SIGKILL the process tree this long before the deadline")
	fs.Var((*durationValue)(&cfg.StopTimeout), "stop-timeout", "time reserved for the app between the stop signal and SIGKILL")
	fs.Var((*durationValue)(&cfg.Drain), "drain", "longest drain before the stop signal (default 0; with a registry or --offline-http the ceiling of the traffic-aware drain, default the whole drain budget)")
	fs.Var((*durationValue)(&cfg.DrainQuiet), "drain-quiet", "end the drain once each caller of the app's ports is quiet this long (default 2s with a registry or --offline-http; 0 = a fixed drain of --drain)")
	fs.Var((*durationValue)(&cfg.DrainMin), "drain-min", "shortest drain when --drain-quiet is set")
	fs.Var((*durationValue)(&cfg.DrainCacheMax), "drain-cache-max", "callers still calling this long after the registry offline are not waited for (default 40s with nacos, 95s with eureka: cache TTL + propagation)")
	fs.BoolVar(&cfg.DrainPerCaller, "drain-per-caller", true, "wait for each caller by its own habit; false: end --drain-quiet after the last request of anyone")
	fs.StringSlice("drain-ignore", nil, "leave callers in this `CIDR` or IP out of the drain (repeatable; e.g. probers); $HOST_IP, the node's address, is left out when set")
	fs.IntSliceVar(&cfg.Ports, "port", nil, "the app's listening `PORT` (repeatable); the first one is the registered port")
	fs.IPSliceVar(&cfg.DrainIPs, "drain-ip", nil, "watch only traffic to this local `IP` (repeatable; for apps sharing a network namespace, e.g. hostNetwork)")
	cfg.StopOn = []syscall.Signal{syscall.SIGTERM}
	fs.Var(&signalsValue{sigs: &cfg.StopOn}, "stop-on", "`SIGNAL` that starts the stop sequence: offline, drain, stop signal (repeatable, e.g. INT for an image's STOPSIGNAL INT; others are forwarded at once)")
	fs.Var((*signalValue)(&cfg.StopSignal), "stop-signal", "signal sent to the app after the drain (default: the signal that started the stop sequence)")
	endSection(fs, "Shutdown timeline and drain")

	// Readiness.
	cfg.ReadyInterval, cfg.ReadyTimeout = time.Second, 5*time.Minute
	fs.StringVar(&cfg.ReadyHTTP, "ready-http", "", "the app is ready when this `URL` answers 2xx")
	fs.StringVar(&cfg.ReadyTCP, "ready-tcp", "", "the app is ready when `HOST:PORT` accepts a connection")
	fs.Var((*durationValue)(&cfg.ReadyInterval), "ready-interval", "time between readiness probes")
	fs.Var((*durationValue)(&cfg.ReadyTimeout), "ready-timeout", "give up waiting for readiness after this long (the app keeps running, never marked online)")
	endSection(fs, "Readiness")

	// Registries.
	cfg.RegistryTimeout = registry.DefaultTimeout
	fs.StringSliceVar(&cfg.Registries, "registry", nil, "registries to update: nacos, eureka (comma list)")
	fs.Var((*durationValue)(&cfg.RegistryTimeout), "registry-timeout", "bound on each registry call")
	fs.BoolVar(&cfg.RegistryHold, "registry-hold", true, "mark mode: keep the app's own registration out of rotation from the moment it appears until the app is ready (and warmed up), then put it online")
	fs.BoolVar(&cfg.RegistryHoldEnv, "registry-hold-env", true, "mark mode, with the hold: tell the app through its environment to register itself out of rotation (Spring Cloud binds SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0 and EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE), unless the environment sets them; no consumer sees it before it is ready")
	fs.StringVar(&cfg.Service, "service", "", "the app's service name in the registry")
	fs.StringVar(&cfg.IP, "ip", "", "the app's registered IP (default $POD_IP, else the first non-loopback address)")
	endSection(fs, "Registries")

	fs.StringSliceVar(&cfg.Nacos.Addrs, "nacos-addr", nil, "Nacos server URLs (comma list, failed over in order)")
	fs.StringVar(&cfg.Nacos.Namespace, "nacos-namespace", nacos.DefaultNamespace, "Nacos namespace id")
	fs.StringVar(&cfg.Nacos.Group, "nacos-group", nacos.DefaultGroup, "Nacos group")
	fs.StringVar(&cfg.Nacos.Cluster, "nacos-cluster", nacos.DefaultCluster, "Nacos cluster; DEFAULT finds the instance by ip:port in any cluster (empty alike), another name must match")
	fs.StringVar(&cfg.Nacos.Username, "nacos-username", "", "Nacos username")
	fs.StringVar(&cfg.Nacos.Password, "nacos-password", "", "Nacos password (prefer --nacos-password-file)")
	fs.String("nacos-password-file", "", "read the Nacos password from this `FILE` (a regular file up to 64 KiB; one trailing newline dropped)")
	fs.StringVar(&cfg.Nacos.Offline, "nacos-offline", nacos.DefaultOffline, "how to take the instance out: both (weight 0 and disabled, honoured by every consumer incl. Dubbo), weight or disable")
	fs.StringVar(&cfg.Nacos.Mode, "nacos-mode", nacos.DefaultMode, "mark: the app registers itself; register: gracefulinit registers it")
	cfg.Nacos.Weight = nacos.DefaultWeight
	fs.Var((*weightValue)(&cfg.Nacos.Weight), "nacos-weight", "weight restored at start (mark) or registered (register), 0.01 to 10000")
	fs.StringToStringVar(&cfg.Nacos.Metadata, "nacos-metadata", nil, "instance metadata `k=v` for register mode (repeatable)")
	fs.StringVar(&cfg.Nacos.CacheDir, "nacos-cache-dir", "", "the Nacos SDK's cache and log dir (default under the OS temp dir)")
	fs.StringVar(&cfg.Nacos.Helper, "nacos-helper", "", "the gracefulinit-nacos `PATH` that runs the Nacos SDK for register mode (default: next to gracefulinit)")
	endSection(fs, "Nacos")

	fs.StringSliceVar(&cfg.Eureka.URLs, "eureka-url", nil, "Eureka service URLs, e.g. http://eureka:8761/eureka (comma list)")
	fs.StringVar(&cfg.Eureka.App, "eureka-app", "", "Eureka app name (default --service)")
	fs.StringVar(&cfg.Eureka.InstanceID, "eureka-instance-id", "", "Eureka instance id (default hostname:app:port, as Spring Cloud; if the server has no such id, the app's instance at --ip:--port)")
	fs.StringVar(&cfg.Eureka.Mode, "eureka-mode", eureka.DefaultMode, "mark: the app registers itself; register: gracefulinit registers it")
	fs.StringVar(&cfg.Eureka.Username, "eureka-username", "", "Eureka basic-auth username")
	fs.StringVar(&cfg.Eureka.Password, "eureka-password", "", "Eureka basic-auth password (prefer --eureka-password-file)")
	fs.String("eureka-password-file", "", "read the Eureka password from this `FILE` (a regular file up to 64 KiB; one trailing newline dropped)")
	cfg.Eureka.Heartbeat = eureka.DefaultHeartbeat
	fs.Var((*durationValue)(&cfg.Eureka.Heartbeat), "eureka-heartbeat", "renewal interval in register mode")
	fs.BoolVar(&cfg.Eureka.DeregisterOnExit, "eureka-deregister-on-exit", false, "mark mode: deregister the instance after the app has exited")
	fs.StringToStringVar(&cfg.Eureka.Metadata, "eureka-metadata", nil, "instance metadata `k=v` for register mode (repeatable)")
	endSection(fs, "Eureka")

	// Registries gracefulinit does not speak (Dubbo QoS, Spring's
	// service-registry actuator), as HTTP calls in the same slots.
	fs.StringArray("online-http", nil, "`'METHOD URL [BODY]'` called once the app is ready, e.g. 'GET http://127.0.0.1:22222/online' (repeatable; one per line in the variable)")
	fs.StringArray("offline-http", nil, "`'METHOD URL [BODY]'` called at SIGTERM, e.g. 'GET http://127.0.0.1:22222/offline' (repeatable; one per line in the variable)")
	endSection(fs, "Other registries (HTTP calls)")

	cfg.WarmupRequests, cfg.WarmupConcurrency, cfg.WarmupTimeout = warmup.DefaultRequests, warmup.DefaultConcurrency, warmup.DefaultTimeout
	fs.StringArray("warmup-http", nil, "`'METHOD URL [BODY]'` sent to the app after it is ready and before it goes online, so the JIT has compiled the hot paths, e.g. 'GET http://127.0.0.1:8080/api/items' (repeatable, sent in turn; one per line in the variable)")
	fs.Var(&countValue{&cfg.WarmupRequests, warmup.MaxRequests}, "warmup-requests", "warm-up requests in all")
	fs.Var(&countValue{&cfg.WarmupConcurrency, warmup.MaxConcurrency}, "warmup-concurrency", "warm-up requests in flight at once")
	fs.Var((*durationValue)(&cfg.WarmupTimeout), "warmup-timeout", "bound on the whole warm-up: the app goes online then, warm or not")
	endSection(fs, "Warm-up")

	// Kubernetes.
	fs.StringVar(&cfg.HealthAddr, "health-addr", "", "serve /ready (200 once the app is ready and online, 503 from SIGTERM) and /live on `HOST:PORT`, for the pod's probes")
	fs.StringVar(&cfg.TerminationLog, "termination-log", termlog.DefaultPath, "write the shutdown summary to this `FILE` when gracefulinit stopped the app, never over a message the app wrote (kubectl describe pod shows it; used only if it exists, unless set; empty: off)")
	fs.Var((*signalValue)(&cfg.DumpSignal), "dump-signal", "send this `SIGNAL` once, --dump-before the kill, if the app still runs (QUIT: a JVM thread dump)")
	fs.Var((*durationValue)(&cfg.DumpBefore), "dump-before", "with --dump-signal: how long before the kill to send it, e.g. 3s")
	endSection(fs, "Kubernetes")
	return fs
}

// maxVerbosity is the highest -v count kept; more changes nothing (every
// level above 0 is debug), so it is cut to this, as tini does.
const maxVerbosity = 3

// EnvName is the environment variable that sets the named flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Parse reads args (without the program name) and the environment through
// lookup. The command is whatever follows "--" (or the first non-flag).
// Errors may quote a value (pflag's always do); passwords in any URL given
// are masked in them, whether or not the URL parses.
func Parse(args []string, lookup func(string) (string, bool), out io.Writer) (*Config, error) {
	cfg, _, err := ParseSources(args, lookup, out)
	return cfg, err
}

// ParseSources is Parse that also says where each value came from.
func ParseSources(args []string, lookup func(string) (string, bool), out io.Writer) (*Config, Sources, error) {
	var read []string
	record := func(k string) (string, bool) {
		v, ok := lookup(k)
		if ok {
			read = append(read, v)
		}
		return v, ok
	}
	cfg, src, err := parse(args, record, out)
	if err != nil && !errors.Is(err, ErrHelp) {
		var secrets []string
		for _, v := range append(read, args...) {
			secrets = append(secrets, redact.Secrets(v)...)
		}
		msg := parseBoolErr.ReplaceAllString(err.Error(), "want true or false")
		return nil, nil, errors.New(oneLine(redact.Text(msg, secrets...)))
	}
	return cfg, src, err
}

// parseBoolErr is what pflag says of a bool flag's bad value, in Go's words.
var parseBoolErr = regexp.MustCompile(`strconv\.ParseBool: parsing "(?:[^"\\]|\\.)*": invalid syntax`)

// oneLine escapes control characters, which pflag's errors echo raw from
// the value (a newline in --nacos-metadata): an error is one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s))
}

func parse(args []string, lookup func(string) (string, bool), out io.Writer) (*Config, Sources, error) {
	cfg := &parsing{Config: &Config{}, src: Sources{}}
	fs := FlagSet(cfg.Config, out)
	cfg.flags = fs
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, nil, ErrHelp
		}
		return nil, nil, err
	}
	fs.Visit(func(f *pflag.Flag) { cfg.src[f.Name] = "flag" })
	if err := applyEnv(fs, lookup, cfg.src); err != nil {
		return nil, nil, err
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := cfg.src[f.Name]; !ok {
			cfg.src[f.Name] = "default"
		}
	})
	cfg.Command = fs.Args()
	if cfg.Version || cfg.License {
		return cfg.Config, cfg.src, nil
	}
	if err := readSecretFiles(fs, cfg); err != nil {
		return nil, nil, err
	}
	if err := finish(cfg, lookup); err != nil {
		return nil, nil, err
	}
	return cfg.Config, cfg.src, nil
}

// applyEnv sets every flag not given on the command line from its
// GRACEFULINIT_* variable, then the tini variables, and records in src
// which variable set which flag.
func applyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool), src map[string]string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || slices.Contains(actionFlags, f.Name) {
			return
		}
		v, ok := lookup(EnvName(f.Name))
		if !ok || v == "" {
			return
		}
		values, verr := envValues(EnvName(f.Name), f.Value.Type(), v)
		if verr != nil {
			err = verr
			return
		}
		if len(values) == 0 {
			return
		}
		if f.Value.Type() == "count" {
			v = values[0]
			// A count flag's Set increments; the variable gives the level.
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 0 {
				err = fmt.Errorf("%s=%q: want a number from 0 to %d", EnvName(f.Name), v, maxVerbosity)
				return
			}
			for i := 0; i < min(n, maxVerbosity); i++ {
				_ = f.Value.Set("+1")
			}
			f.Changed = true
			src[f.Name] = "env " + EnvName(f.Name)
			return
		}
		// Lists take one entry per line or comma (envValues); repeatable
		// flags whose values may hold commas (HTTP bodies) one per line.
		for _, v := range values {
			if serr := fs.Set(f.Name, v); serr != nil {
				// pflag names the flag and quotes the value again; the
				// variable already says both.
				msg := serr.Error()
				if _, why, ok := strings.Cut(msg, " flag: "); ok && strings.HasPrefix(msg, "invalid argument ") {
					msg = why
				}
				err = fmt.Errorf("%s=%q: %s", EnvName(f.Name), v, msg)
				return
			}
		}
		src[f.Name] = "env " + EnvName(f.Name)
	})
	if err != nil {
		return err
	}
	tini := []struct{ env, flag string }{
		{"TINI_SUBREAPER", "subreaper"},
		{"TINI_KILL_PROCESS_GROUP", "pgroup"},
	}
	for _, t := range tini {
		// tini treats any value, even empty, as "on".
		if _, ok := lookup(t.env); ok && !fs.Changed(t.flag) {
			_ = fs.Set(t.flag, "true")
			src[t.flag] = "env " + t.env
		}
	}
	if v, ok := lookup("TINI_VERBOSITY"); ok && !fs.Changed("verbose") && !fs.Changed("log-level") {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 {
			return fmt.Errorf("TINI_VERBOSITY=%q: want a number from 0 to 3", v)
		}
		lvl := map[int]string{0: "error", 1: "warn", 2: "info"}[n]
		if n >= 3 {
			lvl = "debug"
		}
		_ = fs.Set("log-level", lvl)
		src["log-level"] = "env TINI_VERBOSITY"
	}
	return nil
}

func readSecretFiles(fs *pflag.FlagSet, cfg *parsing) error {
	files := []struct {
		flag, pwFlag string
		dst          *string
	}{
		{"nacos-password-file", "nacos-password", &cfg.Nacos.Password},
		{"eureka-password-file", "eureka-password", &cfg.Eureka.Password},
	}
	for _, f := range files {
		path := fs.Lookup(f.flag).Value.String()
		if path == "" {
			continue
		}
		if fs.Changed(f.pwFlag) {
			return fmt.Errorf("--%s and --%s both given: keep only the file", f.pwFlag, f.flag)
		}
		pw, err := readSecretFile(path)
		if err != nil {
			return fmt.Errorf("%s %s: %v", cfg.origin(f.flag), path, err)
		}
		*f.dst = pw
	}
	return nil
}

// MaxSecretFile bounds a password file; a mounted Secret is far smaller.
const MaxSecretFile = 64 << 10

// readSecretFile reads a password from a regular file of at most
// MaxSecretFile bytes, without one trailing newline. It never blocks and
// never reads more than the limit: the open is non-blocking (a FIFO with no
// writer would otherwise hang start-up), and devices such as /dev/zero,
// FIFOs and directories are refused from fstat before any read.
func readSecretFile(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return "", fmt.Errorf("cannot read it: %v", errors.Unwrap(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot read it: %v", errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s): point it at a file holding the password, e.g. a mounted Secret", fileKind(fi.Mode()))
	}
	if fi.Size() > MaxSecretFile {
		return "", fmt.Errorf("more than a password file may hold (%d KiB; it has %d bytes): point it at the file holding only the password", MaxSecretFile>>10, fi.Size())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("cannot read it: %v", err)
	}
	if len(b) > MaxSecretFile {
		return "", fmt.Errorf("more than a password file may hold (%d KiB; it grew while read): point it at the file holding only the password", MaxSecretFile>>10)
	}
	pw := string(b)
	if p, ok := strings.CutSuffix(pw, "\n"); ok {
		pw = strings.TrimSuffix(p, "\r")
	}
	if pw == "" {
		return "", errors.New("empty: write the password into it, or drop the flag for no password")
	}
	return pw, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// resolveTimeline computes the shutdown timeline once and writes the
// values it settled on (defaults shrunk to fit) back, for --check.
func resolveTimeline(cfg *parsing) error {
	set := func(name string, v time.Duration) timeline.Setting {
		return timeline.Setting{Value: v, Set: cfg.flags.Changed(name)}
	}
	tl, err := timeline.New(timeline.Input{
		GracePeriod: set("grace-period", cfg.GracePeriod),
		KillMargin:  set("kill-margin", cfg.KillMargin),
		StopTimeout: set("stop-timeout", cfg.StopTimeout),
		Drain:       set("drain", cfg.Drain),
		DrainQuiet:  set("drain-quiet", cfg.DrainQuiet),
		DrainMin:    set("drain-min", cfg.DrainMin),
		Registry:    cfg.HasOffline(),
		Name:        cfg.origin,
	})
	if err != nil {
		return err
	}
	cfg.Timeline = tl
	if tl.Kills() {
		cfg.KillMargin, cfg.StopTimeout = tl.KillMargin, tl.StopTimeout
		cfg.Drain, cfg.DrainQuiet, cfg.DrainMin = tl.Drain, tl.DrainQuiet, tl.DrainMin
	}
	return nil
}

// finish fills derived defaults and validates.
func finish(cfg *parsing, lookup func(string) (string, bool)) error {
	if len(cfg.Command) == 0 && !cfg.Check {
		return errors.New("no command given: put the app after --, e.g. gracefulinit -- java -jar app.jar")
	}
	if cfg.Verbosity < 0 {
		return fmt.Errorf("%s %d: want a number from 0 to %d, or -v, -vv, -vvv", cfg.origin("verbose"), cfg.Verbosity, maxVerbosity)
	}
	cfg.Verbosity = min(cfg.Verbosity, maxVerbosity)
	for _, code := range cfg.RemapExit {
		if code < 0 || code > 255 {
			return fmt.Errorf("%s %d: exit codes run from 0 to 255", cfg.origin("remap-exit"), code)
		}
	}
	if err := checkStopOn(cfg); err != nil {
		return err
	}
	switch cfg.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("%s %q: use text or json", cfg.origin("log-format"), cfg.LogFormat)
	}
	switch cfg.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%s %q: use debug, info, warn or error", cfg.origin("log-level"), cfg.LogLevel)
	}
	for _, p := range cfg.Ports {
		if p <= 0 || p > 65535 {
			return fmt.Errorf("%s %d: ports run from 1 to 65535", cfg.origin("port"), p)
		}
	}
	if cfg.DrainQuiet > 0 && len(cfg.Ports) == 0 {
		return errors.New("--drain-quiet needs the app's ports: add --port, e.g. --port 8080")
	}
	if err := parseHTTPHooks(cfg); err != nil {
		return err
	}
	// A registry or offline hook drains by traffic unless --drain-quiet 0.
	if cfg.DrainMin > 0 && cfg.DrainQuiet == 0 && (!cfg.HasOffline() || cfg.flags.Changed("drain-quiet")) {
		return fmt.Errorf("%s only applies with --drain-quiet: add --drain-quiet or remove %[1]s", cfg.origin("drain-min"))
	}
	if err := resolveTimeline(cfg); err != nil {
		return err
	}
	if err := finishKubernetes(cfg); err != nil {
		return err
	}
	if err := finishDrainPeers(cfg, lookup); err != nil {
		return err
	}
	if cfg.ReadyHTTP != "" {
		u, err := url.Parse(cfg.ReadyHTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !validPort(u.Port(), true) {
			return fmt.Errorf("%s %q: want a URL like http://127.0.0.1:8080/actuator/health (ports run from 1 to 65535)", cfg.origin("ready-http"), redact.URL(cfg.ReadyHTTP))
		}
	}
	if cfg.ReadyTCP != "" {
		if !validHostPort(cfg.ReadyTCP) {
			return fmt.Errorf("%s %q: want HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8080", cfg.origin("ready-tcp"), cfg.ReadyTCP)
		}
	}
	if cfg.ReadyHTTP != "" && cfg.ReadyTCP != "" {
		return errors.New("--ready-http and --ready-tcp both given: keep one")
	}
	if err := finishWarmup(cfg); err != nil {
		return err
	}
	if cfg.ReadyInterval <= 0 {
		return fmt.Errorf("%s must be positive, e.g. 1s", cfg.origin("ready-interval"))
	}
	if cfg.RegistryTimeout <= 0 {
		return fmt.Errorf("%s must be positive, e.g. 5s", cfg.origin("registry-timeout"))
	}
	return finishRegistries(cfg, lookup)
}

// finishWarmup reads --warmup-http and checks the warm-up's bounds.
func finishWarmup(cfg *parsing) error {
	specs, _ := cfg.flags.GetStringArray("warmup-http")
	for _, spec := range specs {
		c, err := httphook.Parse(spec)
		if err != nil {
			return fmt.Errorf("%s: %v", cfg.origin("warmup-http"), err)
		}
		cfg.WarmupHTTP = append(cfg.WarmupHTTP, c)
	}
	if cfg.WarmupTimeout <= 0 {
		return fmt.Errorf("%s must be positive, e.g. 60s", cfg.origin("warmup-timeout"))
	}
	for _, c := range cfg.WarmupHTTP {
		if !appHost(cfg, c.URL) {
			return fmt.Errorf("%s: URL %s is not this machine's: the warm-up must reach this instance of the app, not the service (whose other instances serve traffic already): use 127.0.0.1, localhost or the pod's IP, e.g. 'GET http://127.0.0.1:8080/'", cfg.origin("warmup-http"), redact.URL(c.URL))
		}
	}
	if len(cfg.WarmupHTTP) > 0 && cfg.ReadyHTTP == "" && cfg.ReadyTCP == "" {
		// Without a probe the app counts as ready once started: the
		// warm-up would meet a port not yet open.
		return fmt.Errorf("%s needs a readiness probe to start after: add --ready-http or --ready-tcp, e.g. --ready-http http://127.0.0.1:8080/actuator/health", cfg.origin("warmup-http"))
	}
	if len(cfg.WarmupHTTP) == 0 {
		for _, f := range []string{"warmup-requests", "warmup-concurrency", "warmup-timeout"} {
			if cfg.flags.Changed(f) {
				return fmt.Errorf("%s only applies with --warmup-http: add the requests to send, e.g. --warmup-http 'GET http://127.0.0.1:8080/', or remove it", cfg.origin(f))
			}
		}
	}
	return nil
}

// appHost reports whether rawURL's host is this machine: a loopback or
// interface address, localhost, the hostname, --ip, or the host the
// readiness probe reaches the app at. Names are not looked up.
func appHost(cfg *parsing, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.IsLoopback() || a.IsUnspecified() || a.String() == cfg.IP || localAddr(a) {
			return true
		}
	}
	if strings.EqualFold(host, "localhost") || strings.EqualFold(host, cfg.IP) {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(host, name) {
		return true
	}
	probe := cfg.ReadyTCP
	if ru, err := url.Parse(cfg.ReadyHTTP); err == nil && cfg.ReadyHTTP != "" {
		probe = ru.Host
	}
	if ph, _, err := net.SplitHostPort(probe); err == nil && strings.EqualFold(host, ph) {
		return true
	}
	return false
}

// localAddr reports whether a is an address of one of this machine's
// interfaces.
func localAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// parseHTTPHooks reads --online-http and --offline-http. An offline hook
// turns the traffic-aware drain on like a registry does, so it needs the
// app's port unless a drain flag says otherwise.
func parseHTTPHooks(cfg *parsing) error {
	for _, h := range []struct {
		flag string
		dst  *[]httphook.Call
	}{{"online-http", &cfg.OnlineHTTP}, {"offline-http", &cfg.OfflineHTTP}} {
		specs, _ := cfg.flags.GetStringArray(h.flag)
		for _, spec := range specs {
			c, err := httphook.Parse(spec)
			if err != nil {
				return fmt.Errorf("%s: %v", cfg.origin(h.flag), err)
			}
			*h.dst = append(*h.dst, c)
		}
	}
	if len(cfg.OfflineHTTP) > 0 && !cfg.HasRegistry() && len(cfg.Ports) == 0 && !cfg.flags.Changed("drain-quiet") {
		return errors.New("--offline-http drains until the app's port is quiet: add --port, e.g. --port 8080, or set --drain-quiet 0 for a fixed drain of --drain")
	}
	return nil
}

// finishKubernetes checks --health-addr, --termination-log and the thread
// dump against the resolved timeline.
func finishKubernetes(cfg *parsing) error {
	if cfg.HealthAddr != "" {
		if !validHostPort(cfg.HealthAddr) {
			return fmt.Errorf("%s %q: want HOST:PORT with a port from 1 to 65535, e.g. 0.0.0.0:8558", cfg.origin("health-addr"), cfg.HealthAddr)
		}
	}
	cfg.TerminationLog = termlog.Resolve(cfg.TerminationLog, cfg.src["termination-log"] != "default")
	if err := termlog.Check(cfg.TerminationLog); err != nil {
		return fmt.Errorf("%s: %v", cfg.origin("termination-log"), err)
	}
	dumpSig, dumpBefore := cfg.src["dump-signal"] != "default", cfg.src["dump-before"] != "default"
	switch {
	case dumpSig && !dumpBefore:
		return errors.New("--dump-signal needs --dump-before, how long before the kill to send it, e.g. --dump-before 3s")
	case dumpBefore && !dumpSig:
		return errors.New("--dump-before needs --dump-signal, e.g. --dump-signal QUIT for a JVM thread dump")
	case !dumpSig:
		return nil
	}
	if !dumpTrigger(cfg.DumpSignal) {
		return fmt.Errorf("%s %s cannot trigger a thread dump (it would stop, kill or be ignored by the app): use QUIT (a JVM), USR1, USR2 or a real-time signal",
			cfg.origin("dump-signal"), strings.TrimPrefix(signals.Name(cfg.DumpSignal), "SIG"))
	}
	if !cfg.Timeline.Kills() {
		return errors.New("--dump-signal needs a deadline to dump before: set --grace-period to the pod's terminationGracePeriodSeconds")
	}
	// Within the app's stop time, so the drain is over: the dump is of the
	// stop that hangs.
	if cfg.DumpBefore <= 0 || cfg.DumpBefore >= cfg.Timeline.StopTimeout {
		return fmt.Errorf("--dump-before %s: want more than 0 and less than the app's stop time (stop-timeout %s), e.g. 3s",
			cfg.DumpBefore, cfg.Timeline.StopTimeout)
	}
	return nil
}

// checkStopOn refuses a --stop-on signal gracefulinit cannot take as a
// stop request: one it cannot catch (KILL, STOP) or its own (CHLD, faults).
func checkStopOn(cfg *parsing) error {
	for _, sig := range cfg.StopOn {
		if !slices.Contains(signals.Catchable(), sig) || !signals.Forwarded(sig) {
			return fmt.Errorf("%s %s: gracefulinit cannot take it as a stop request (it cannot be caught, or it is gracefulinit's own): use TERM, or the image's STOPSIGNAL such as INT or QUIT",
				cfg.origin("stop-on"), strings.TrimPrefix(signals.Name(sig), "SIG"))
		}
	}
	return nil
}

// dumpTrigger reports whether sig can ask an app for a thread dump: one an
// app catches to dump and go on. KILL and STOP cannot be caught; TERM, INT
// and HUP stop a JVM; CHLD, CONT, WINCH and URG are ignored by default and
// the job-control and fault signals stop or crash it.
func dumpTrigger(sig syscall.Signal) bool {
	switch {
	case sig == syscall.SIGQUIT, sig == syscall.SIGUSR1, sig == syscall.SIGUSR2:
		return true
	case sig >= 35 && sig <= 64: // SIGRTMIN..SIGRTMAX as glibc and musl leave them to programs
		return true
	}
	return false
}

// finishDrainPeers reads --drain-ignore, HOST_IP and --drain-cache-max.
func finishDrainPeers(cfg *parsing, lookup func(string) (string, bool)) error {
	ignore, _ := cfg.flags.GetStringSlice("drain-ignore")
	for _, v := range ignore {
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%s lists an empty entry: remove the extra comma", cfg.origin("drain-ignore"))
		}
		p, err := parsePrefix(v)
		if err != nil {
			return fmt.Errorf("%s %q: want a CIDR like 10.0.0.0/8 or an IP address", cfg.origin("drain-ignore"), v)
		}
		cfg.DrainIgnore = append(cfg.DrainIgnore, p)
	}
	if v, ok := lookup("HOST_IP"); ok && v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("HOST_IP=%q: want the node's IP address (set it from the downward API: fieldRef status.hostIP)", v)
		}
		cfg.HostIP = a.Unmap()
		cfg.DrainIgnore = append(cfg.DrainIgnore, netip.PrefixFrom(cfg.HostIP, cfg.HostIP.BitLen()))
	}
	if cfg.DrainQuiet == 0 {
		if cfg.flags.Changed("drain-cache-max") {
			return fmt.Errorf("%s only applies with --drain-quiet: add --drain-quiet or remove %[1]s", cfg.origin("drain-cache-max"))
		}
		if len(ignore) > 0 {
			return fmt.Errorf("%s only applies with --drain-quiet: add --drain-quiet or remove %[1]s", cfg.origin("drain-ignore"))
		}
		// After the timeline: a registry or an --offline-http step turns
		// the quiet drain on by itself.
		if len(cfg.DrainIPs) > 0 {
			return fmt.Errorf("%s only applies with --drain-quiet: add --drain-quiet or remove %[1]s", cfg.origin("drain-ip"))
		}
		if cfg.flags.Changed("drain-per-caller") {
			return fmt.Errorf("%s only applies with --drain-quiet: add --drain-quiet or remove %[1]s", cfg.origin("drain-per-caller"))
		}
		return nil
	}
	if !cfg.flags.Changed("drain-cache-max") {
		// The longest a consumer keeps calling after the offline, each
		// backend's own figure; an --offline-http step's consumers are
		// taken to be Spring Cloud LoadBalancer's, as Nacos's are.
		if len(cfg.OfflineHTTP) > 0 {
			cfg.DrainCacheMax = nacos.DrainCacheMax
		}
		for _, r := range cfg.Registries {
			switch r {
			case "nacos":
				cfg.DrainCacheMax = max(cfg.DrainCacheMax, nacos.DrainCacheMax)
			case "eureka":
				cfg.DrainCacheMax = max(cfg.DrainCacheMax, eureka.DrainCacheMax)
			}
		}
	}
	return nil
}

// parsePrefix reads a CIDR, or an IP as a prefix of its full length.
func parsePrefix(v string) (netip.Prefix, error) {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// Callers are compared in their IPv4 form.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func finishRegistries(cfg *parsing, lookup func(string) (string, bool)) error {
	seen := map[string]bool{}
	for _, r := range cfg.Registries {
		switch r {
		case "nacos", "eureka":
		default:
			return fmt.Errorf("%s %q: use nacos, eureka or both (comma list)", cfg.origin("registry"), r)
		}
		if seen[r] {
			return fmt.Errorf("%s lists %s twice", cfg.origin("registry"), r)
		}
		seen[r] = true
	}
	mark := seen["nacos"] && cfg.Nacos.Mode != "register" || seen["eureka"] && cfg.Eureka.Mode != "register"
	if cfg.flags.Changed("registry-hold") && !mark {
		// It would do nothing, silently.
		return fmt.Errorf("%s only applies with a registry in mark mode (the app registers itself): remove it", cfg.origin("registry-hold"))
	}
	if cfg.flags.Changed("registry-hold-env") && (!mark || !cfg.RegistryHold) {
		return fmt.Errorf("%s only applies with the hold (a registry in mark mode, --registry-hold on): remove it", cfg.origin("registry-hold-env"))
	}
	if !cfg.HasRegistry() {
		return nil
	}
	if len(cfg.Ports) == 0 {
		return errors.New("--registry needs the app's port: add --port, e.g. --port 8080")
	}
	if cfg.IP == "" {
		if v, ok := lookup("POD_IP"); ok && v != "" {
			cfg.IP = v
		} else {
			cfg.IP = firstNonLoopback()
		}
	}
	if net.ParseIP(cfg.IP) == nil {
		return fmt.Errorf("%s %q: want an IP address, or set POD_IP from the downward API", cfg.origin("ip"), cfg.IP)
	}
	if seen["nacos"] {
		if err := finishNacos(cfg); err != nil {
			return err
		}
	}
	if seen["eureka"] {
		if err := finishEureka(cfg); err != nil {
			return err
		}
	}
	return nil
}

// finishNacos gives the Nacos options the instance's identity and has the
// backend resolve them (defaults, checks, normalised addresses), with
// errors that name the flag or variable.
func finishNacos(cfg *parsing) error {
	n := cfg.Nacos
	n.Service, n.IP, n.Port, n.Timeout, n.EnvPrefix = cfg.Service, cfg.IP, cfg.Port(), cfg.RegistryTimeout, EnvPrefix
	n, err := n.Resolve(cfg.origin)
	if err != nil {
		return err
	}
	cfg.Nacos = n
	return nil
}

// finishEureka does the same for Eureka; the heartbeat's range is the
// flag's (0 there is a value set, not the backend's "default").
func finishEureka(cfg *parsing) error {
	if cfg.Eureka.Heartbeat <= 0 {
		return fmt.Errorf("%s must be positive, e.g. 30s", cfg.origin("eureka-heartbeat"))
	}
	e := cfg.Eureka
	e.Service, e.IP, e.Port, e.Timeout = cfg.Service, cfg.IP, cfg.Port(), cfg.RegistryTimeout
	e, err := e.Resolve(cfg.origin)
	if err != nil {
		return err
	}
	cfg.Eureka = e
	return nil
}

// Sources says where each flag's value came from: "flag", "env NAME" or
// "default". Parse returns it beside the Config, for --check and errors.
type Sources map[string]string

// Origin names where a flag's value came from, for errors: the flag, or
// the variable when the environment set it.
func (s Sources) Origin(flag string) string {
	if v, ok := strings.CutPrefix(s[flag], "env "); ok {
		return v
	}
	return "--" + flag
}

// SecretsOnCommandLine names the flags given on the command line whose
// value is or holds a secret (a password, URL userinfo, a credential in a
// hook's URL or body): ps shows gracefulinit's command line to every
// process that can see it, while a variable or a file stays private.
func SecretsOnCommandLine(cfg *Config, src Sources) []string {
	var out []string
	cfg.Flags().VisitAll(func(f *pflag.Flag) {
		if src[f.Name] != "flag" {
			return
		}
		v := f.Value.String()
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), "\n")
		}
		if strings.HasSuffix(f.Name, "-password") && v != "" || redact.Text(v, redact.Secrets(v)...) != v {
			out = append(out, "--"+f.Name)
		}
	})
	return out
}

// parsing is a Config being parsed, with where its values came from.
type parsing struct {
	*Config
	src Sources
}

func (p *parsing) origin(flag string) string { return p.src.Origin(flag) }

// validHostPort reports whether s is HOST:PORT with a port from 1 to 65535
// and a host without spaces or control characters (which no address holds,
// and which would forge a line where the address is printed).
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && validPort(port, false) && !strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// validPort reports whether p is a port from 1 to 65535; url.Parse and
// net.SplitHostPort accept any digits. An empty p passes when optional.
func validPort(p string, optional bool) bool {
	if p == "" {
		return optional
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

func firstNonLoopback() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}
