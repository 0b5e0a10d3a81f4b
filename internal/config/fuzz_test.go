package config

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/gracefulinit/gracefulinit/internal/redact"
)

// fuzzFlags are the flags whose values FuzzParse feeds: every kind of value
// the parser reads (durations, signals, numbers, lists, URLs, addresses).
var fuzzFlags = []string{
	"grace-period", "kill-margin", "stop-timeout", "drain", "drain-quiet", "drain-min",
	"ready-interval", "ready-timeout", "registry-timeout", "eureka-heartbeat",
	"stop-signal", "pdeathsig", "remap-exit", "port", "drain-ip", "verbose",
	"nacos-weight", "nacos-addr", "eureka-url", "ready-http", "ready-tcp", "ip",
	"registry", "nacos-metadata", "drain-cache-max", "drain-ignore",
}

// FuzzParse gives one flag a fuzzed value, on the command line or through
// its variable, on top of a valid registry configuration. Whatever the
// value: no panic, an error is one line and quotes no URL password, and an
// accepted configuration holds only finite, in-range values.
func FuzzParse(f *testing.F) {
	f.Add(uint8(1), "1e10", false)
	f.Fuzz(func(t *testing.T, which uint8, value string, viaEnv bool) {
		name := fuzzFlags[int(which)%len(fuzzFlags)]
		base := []string{"--registry", "nacos,eureka", "--nacos-addr", "http://n:8848", "--eureka-url", "http://e:8761/eureka",
			"--service", "s", "--port", "8080", "--ip", "10.0.0.1"}
		args := append([]string{}, base...)
		lookup := env()
		if viaEnv {
			lookup = env(EnvName(name), value)
		} else {
			args = append(args, "--"+name+"="+value)
		}
		args = append(args, "--", "x")
		cfg, err := Parse(args, lookup, io.Discard)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Fatalf("error on two lines: %q", msg)
			}
			for _, pw := range redact.Secrets(value) {
				if len(pw) >= redact.MinSecret && strings.Contains(msg, pw) {
					t.Fatalf("error %q quotes the password %q", msg, pw)
				}
			}
			return
		}
		for _, d := range []time.Duration{cfg.GracePeriod, cfg.KillMargin, cfg.StopTimeout, cfg.Drain, cfg.DrainQuiet, cfg.DrainMin, cfg.DrainCacheMax,
			cfg.ReadyInterval, cfg.ReadyTimeout, cfg.RegistryTimeout, cfg.Eureka.Heartbeat} {
			if d < 0 || d > MaxDuration {
				t.Fatalf("--%s=%q accepted with a duration of %v", name, value, d)
			}
		}
		if w := cfg.Nacos.Weight; math.IsNaN(w) || w < MinWeight || w > MaxWeight {
			t.Fatalf("--nacos-weight %q accepted as %v", value, w)
		}
		for _, p := range cfg.Ports {
			if p < 1 || p > 65535 {
				t.Fatalf("port %d accepted", p)
			}
		}
		if cfg.Verbosity < 0 || cfg.Verbosity > 100 {
			t.Fatalf("verbosity %d accepted", cfg.Verbosity)
		}
	})
}

// envFuzzFlags are the variables FuzzEnv sets: lists (split on commas and
// newlines), hooks (one per line), single values, an action flag.
var envFuzzFlags = []string{
	"drain-ignore", "nacos-addr", "eureka-url", "port", "drain-ip", "nacos-metadata", "registry",
	"offline-http", "online-http", "service", "grace-period", "verbose", "health-addr", "nacos-password", "version", "check",
}

// FuzzEnv sets one variable, a flag's or a made-up GRACEFULINIT_ name, on
// top of a valid registry configuration. Whatever the value: no panic, an
// error is one line without a control character, an action flag is never
// read, an accepted value holds no control character anywhere in the
// configuration, and UnknownEnv names the variable printably.
func FuzzEnv(f *testing.F) {
	f.Add(uint8(0), "", "10.0.0.0/8\n192.168.0.0/16")
	f.Fuzz(func(t *testing.T, which uint8, suffix, value string) {
		name := EnvName(envFuzzFlags[int(which)%len(envFuzzFlags)])
		if suffix != "" {
			name = EnvPrefix + suffix
		}
		args := []string{"--registry", "nacos", "--service", "s", "--port", "8080", "--ip", "10.0.0.1", "--drain-quiet", "3s", "--", "x"}
		if name != EnvName("nacos-addr") {
			args = append([]string{"--nacos-addr", "http://n:8848"}, args...)
		}
		cfg, err := Parse(args, env(name, value), io.Discard)
		for _, u := range UnknownEnv([]string{name + "=" + value}) {
			if strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("UnknownEnv names %q raw", u)
			}
		}
		if err != nil {
			if msg := err.Error(); strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("%s=%q: error %q holds a control character", name, value, msg)
			}
			return
		}
		if cfg.Version || cfg.Check || cfg.License {
			t.Fatalf("%s=%q read an action flag", name, value)
		}
		cfg.Flags().VisitAll(func(fl *pflag.Flag) {
			v := fl.Value.String()
			if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				t.Fatalf("%s=%q accepted: --%s holds a control character: %q", name, value, fl.Name, v)
			}
		})
	})
}
