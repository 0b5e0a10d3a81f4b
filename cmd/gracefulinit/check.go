package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/pflag"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/health"
	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry/httphook"
	"github.com/gracefulinit/gracefulinit/internal/signals"
)

// check prints the resolved configuration with secrets redacted, checks the
// timeline fits the grace period and that each registry answers, and
// returns non-zero when something is wrong. It never starts the command.
func check(cfg *config.Config, src config.Sources, w io.Writer, appEnv []string) int {
	problems := 0
	fmt.Fprintln(w, "configuration (value, and where it came from):")
	cfg.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "check" || f.Name == "version" {
			return
		}
		fmt.Fprintf(w, "  --%-28s %-40s (%s)\n", f.Name, printable(resolved(cfg, f)), src[f.Name])
	})
	if unknown := config.UnknownEnv(os.Environ()); len(unknown) > 0 {
		// Not a problem (never a refusal), but --check is where a typo shows.
		fmt.Fprintf(w, "  ignored, they set nothing (misspelt, or an action flag, read from the command line only): %s\n", strings.Join(unknown, ", "))
	}
	if flags := config.SecretsOnCommandLine(cfg, src); len(flags) > 0 {
		fmt.Fprintf(w, "  %s: %s\n", secretsOnCommandLine, strings.Join(flags, ", "))
	}
	if len(cfg.Command) > 0 {
		fmt.Fprintf(w, "  command: %s\n", printable(redact.Text(strings.Join(cfg.Command, " "), cfg.Nacos.Password, cfg.Eureka.Password)))
	}

	// Parse has validated the timeline: a configuration that does not fit
	// never gets here.
	fmt.Fprintln(w, "\ntimeline after the stop signal:")
	for _, l := range cfg.Timeline.Describe(stopSignalName(cfg)) {
		fmt.Fprintf(w, "  %s\n", l)
		if strings.HasPrefix(l, "0s: drain until") {
			explainPeers(cfg, w)
		}
	}
	if cfg.DumpSignal != 0 {
		at := cfg.Timeline.Grace - cfg.Timeline.KillMargin - cfg.DumpBefore
		fmt.Fprintf(w, "  %s: %s to the app once, if it still runs (a thread dump of the stop that hangs; --dump-before %s)\n",
			at, signals.Name(cfg.DumpSignal), cfg.DumpBefore)
	}
	if cfg.Timeline.Kills() {
		fmt.Fprintln(w, "  ok: fits the grace period")
	}
	fmt.Fprintln(w, "\nsignals gracefulinit receives:")
	for _, l := range describeSignals(cfg) {
		fmt.Fprintf(w, "  %s\n", l)
	}

	hold := holdLine(cfg)
	if len(cfg.OnlineHTTP)+len(cfg.OfflineHTTP)+len(cfg.WarmupHTTP) > 0 || cfg.HealthAddr != "" || cfg.TerminationLog != "" || hold != "" {
		fmt.Fprintln(w, "\nlifecycle:")
		if hold != "" {
			fmt.Fprintf(w, "  %s\n", hold)
		}
		if len(appEnv) > 0 {
			fmt.Fprintf(w, "  the app is told to register itself out of rotation (--registry-hold-env), its environment gets: %s\n", printable(strings.Join(appEnv, " ")))
		}
		if len(cfg.WarmupHTTP) > 0 {
			fmt.Fprintf(w, "  warm-up (once ready, before online): %d requests, %d at a time, at most %s, in turn over:\n",
				cfg.WarmupRequests, cfg.WarmupConcurrency, cfg.WarmupTimeout)
			for _, c := range cfg.WarmupHTTP {
				fmt.Fprintf(w, "    %s\n", printable(c.String()))
			}
		}
		for _, c := range cfg.OnlineHTTP {
			fmt.Fprintf(w, "  online (once ready): %s\n", printable(c.Display()))
		}
		for _, c := range cfg.OfflineHTTP {
			fmt.Fprintf(w, "  offline (at the stop signal): %s\n", printable(c.Display()))
		}
		if cfg.HealthAddr != "" {
			warmed := ""
			if len(cfg.WarmupHTTP) > 0 {
				warmed = ", warmed up"
			}
			fmt.Fprintf(w, "  health: http://%s/ready (200 once ready%s and online, 503 from the stop signal), /live\n", printable(cfg.HealthAddr), warmed)
		}
		if cfg.TerminationLog != "" {
			fmt.Fprintf(w, "  shutdown summary written to %s\n", printable(cfg.TerminationLog))
		}
	}

	problems += checkHealthAddr(cfg, w)
	problems += probeRegistries(cfg, w)
	if problems > 0 {
		fmt.Fprintf(w, "\n%d problem(s) found\n", problems)
		return 1
	}
	fmt.Fprintln(w, "\nall checks passed")
	return 0
}

// describeSignals says what each signal a container runtime or an
// operator commonly sends does: the --stop-on ones start the stop
// sequence, the others reach the app at once.
func describeSignals(cfg *config.Config) []string {
	var out []string
	for _, sig := range cfg.StopOn {
		stop := signals.Name(sig)
		if cfg.StopSignal != 0 {
			stop = signals.Name(cfg.StopSignal)
		}
		switch {
		case !cfg.Timeline.Kills():
			out = append(out, fmt.Sprintf("%s: %s to the app at once (tini mode: no offline, no drain, no deadline)", signals.Name(sig), stop))
		case cfg.HasOffline() && cfg.Timeline.Drain > 0:
			out = append(out, fmt.Sprintf("%s: starts the stop sequence: offline, drain, then %s to the app; a second --stop-on signal ends the drain", signals.Name(sig), stop))
		case cfg.HasOffline():
			out = append(out, fmt.Sprintf("%s: starts the stop sequence: offline, then %s to the app", signals.Name(sig), stop))
		case cfg.Timeline.Drain > 0:
			out = append(out, fmt.Sprintf("%s: starts the stop sequence: drain, then %s to the app; a second --stop-on signal ends the drain", signals.Name(sig), stop))
		default:
			out = append(out, fmt.Sprintf("%s: starts the stop sequence: %s to the app, SIGKILL at the kill point", signals.Name(sig), stop))
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		if !slices.Contains(cfg.StopOn, sig) {
			out = append(out, fmt.Sprintf("%s: forwarded to the app at once (not a --stop-on signal)", signals.Name(sig)))
		}
	}
	return append(out, "SIGCHLD and the fault signals: not forwarded (gracefulinit's own)")
}

// printable is s as is, or Go-quoted when it holds a control character: a
// raw newline from a value (a flag; variables holding one are refused)
// would forge a line of --check's output.
func printable(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

// checkHealthAddr binds --health-addr as start-up will, so a taken
// address is a problem here rather than a start that fails.
func checkHealthAddr(cfg *config.Config, w io.Writer) int {
	if cfg.HealthAddr == "" {
		return 0
	}
	inUse, err := health.Check(cfg.HealthAddr)
	switch {
	case err != nil:
		fmt.Fprintf(w, "  PROBLEM: %v\n", err)
		return 1
	case inUse:
		fmt.Fprintf(w, "  ok: health address %s is served by a running gracefulinit (it answers /live)\n", printable(cfg.HealthAddr))
	default:
		fmt.Fprintf(w, "  ok: health address %s is free\n", printable(cfg.HealthAddr))
	}
	return 0
}

// probeRegistries asks every registry server whether it answers where its
// backend will call, prints one line each, and returns the problems found.
func probeRegistries(cfg *config.Config, w io.Writer) int {
	if !cfg.HasRegistry() {
		return 0
	}
	fmt.Fprintln(w, "\nregistries:")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RegistryTimeout)
	defer cancel()
	problems := 0
	for _, name := range cfg.Registries {
		for _, res := range probers[name](cfg, ctx) {
			if res.Err != nil {
				fmt.Fprintf(w, "  PROBLEM: %s %s: %v\n", name, redact.URL(res.Server), res.Err)
				problems++
			} else {
				fmt.Fprintf(w, "  ok: %s %s answers\n", name, redact.URL(res.Server))
			}
		}
	}
	return problems
}

// explainPeers prints the per-caller rule with the configured numbers.
func explainPeers(cfg *config.Config, w io.Writer) {
	if cfg.DrainPerCaller {
		fmt.Fprintf(w, "    per caller (remote address): done once quiet for max(%s, 2 x its longest gap between calls in the last 5 min);\n", cfg.DrainQuiet)
		fmt.Fprintf(w, "    e.g. a caller every 3s is waited for %s after its last call, a busy one for %s\n", max(cfg.DrainQuiet, 6*time.Second), cfg.DrainQuiet)
		fmt.Fprintf(w, "    a caller that closes all its connections after the offline (let go) is done %s later; keepalive frames are not calls\n", max(cfg.DrainQuiet, time.Second))
		if cfg.DrainCacheMax > 0 {
			fmt.Fprintf(w, "    a caller seen too briefly to know its gap (short history) is waited for until %s after the offline\n", cfg.DrainCacheMax)
		}
	} else {
		fmt.Fprintf(w, "    --drain-per-caller=false: every caller is done %s after its last call, whatever its habit (a caller with longer gaps can lose requests)\n", cfg.DrainQuiet)
	}
	fmt.Fprintf(w, "    the drain ends when every caller is done, not before %s, never after %s\n", max(cfg.DrainQuiet, cfg.DrainMin), cfg.Drain)
	switch {
	case cfg.DrainCacheMax <= 0:
		fmt.Fprintln(w, "    no --drain-cache-max: a caller that never stops (a prober, a scraper) holds the drain to its ceiling")
	case cfg.DrainCacheMax >= cfg.Drain:
		fmt.Fprintf(w, "    --drain-cache-max %s is not shorter than the drain's ceiling %s: a caller that never stops holds the drain to the ceiling\n", cfg.DrainCacheMax, cfg.Drain)
	default:
		fmt.Fprintf(w, "    callers still calling %s after the offline took effect are not waited for (not registry consumers)\n", cfg.DrainCacheMax)
	}
	if len(cfg.DrainIgnore) == 0 {
		fmt.Fprintln(w, "    no caller ignored: set HOST_IP (fieldRef status.hostIP) so that kubelet probes on the app's port are left out")
		return
	}
	var ign []string
	for _, p := range cfg.DrainIgnore {
		ign = append(ign, p.String())
	}
	src := ""
	if cfg.HostIP.IsValid() {
		src = fmt.Sprintf(" (%s from HOST_IP)", cfg.HostIP)
	}
	fmt.Fprintf(w, "    left out: %s%s\n", strings.Join(ign, ", "), src)
}

// resolved is the value gracefulinit will use, which for derived settings
// (drain defaults, IP, instance id) differs from the flag's own value.
func resolved(cfg *config.Config, f *pflag.Flag) string {
	if strings.Contains(f.Name, "password") {
		if f.Name == "nacos-password" && cfg.Nacos.Password != "" || f.Name == "eureka-password" && cfg.Eureka.Password != "" {
			return "(set, redacted)"
		}
		if strings.HasSuffix(f.Name, "-file") && f.Value.String() != "" {
			return f.Value.String()
		}
		return "(unset)"
	}
	switch f.Name {
	case "online-http", "offline-http", "warmup-http":
		// The flag's own value is CSV-quoted, which hides a JSON body's
		// "password" from the redactor: print the parsed calls.
		calls := map[string][]httphook.Call{"online-http": cfg.OnlineHTTP, "offline-http": cfg.OfflineHTTP, "warmup-http": cfg.WarmupHTTP}[f.Name]
		var out []string
		for _, c := range calls {
			out = append(out, c.Display())
		}
		return strings.Join(out, " | ")
	case "drain":
		return cfg.Drain.String()
	case "drain-quiet":
		return cfg.DrainQuiet.String()
	case "drain-cache-max":
		return cfg.DrainCacheMax.String()
	case "drain-ignore":
		var ign []string
		for _, p := range cfg.DrainIgnore {
			ign = append(ign, p.String())
		}
		return strings.Join(ign, ",")
	case "ip":
		return cfg.IP
	case "eureka-instance-id":
		return cfg.Eureka.InstanceID
	case "eureka-app":
		return cfg.Eureka.App
	case "eureka-url":
		return strings.Join(cfg.Eureka.URLs, ",")
	case "nacos-metadata", "eureka-metadata":
		m := cfg.Nacos.Metadata
		if f.Name == "eureka-metadata" {
			m = cfg.Eureka.Metadata
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k+"="+m[k])
		}
		sort.Strings(keys)
		return strings.Join(keys, ",")
	}
	return redact.URL(f.Value.String())
}

// holdLine says what the hold does while the app starts ("": nothing to
// hold: no registry in mark mode).
func holdLine(cfg *config.Config) string {
	var marks []string
	for _, name := range cfg.Registries {
		if (name == "nacos" && cfg.Nacos.Mode != "register") || (name == "eureka" && cfg.Eureka.Mode != "register") {
			marks = append(marks, name)
		}
	}
	switch {
	case len(marks) == 0:
		return ""
	case !cfg.RegistryHold:
		return "hold: off (--registry-hold=false): the app's own registration is in rotation as soon as it registers"
	}
	until := "ready"
	if len(cfg.WarmupHTTP) > 0 {
		until = "ready and warmed up"
	}
	return fmt.Sprintf("hold (%s, from the app's start until it is %s): the app's own registration is kept out of rotation, then put online",
		strings.Join(marks, ", "), until)
}
