package config

import (
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// Action flags are never read from the environment: GRACEFULINIT_VERSION
// pinned a download (as tini's README does with TINI_VERSION) and stopped
// the app from running; _CHECK, _LICENSE and _VERSION=1 exited 0 without it.
func TestActionFlagsNotFromEnv(t *testing.T) {
	for _, kv := range [][]string{
		{"GRACEFULINIT_VERSION", "v1.0.0"}, {"GRACEFULINIT_VERSION", "1"}, {"GRACEFULINIT_LICENSE", "1"},
		{"GRACEFULINIT_CHECK", "1"}, {"GRACEFULINIT_CHECK", "true"}, {"GRACEFULINIT_HELP", "1"},
	} {
		cfg, err := Parse([]string{"--", "app"}, env(kv...), io.Discard)
		if err != nil || cfg.Version || cfg.License || cfg.Check || len(cfg.Command) != 1 {
			t.Errorf("%s=%s: %+v, %v; want the app run, the variable ignored", kv[0], kv[1], cfg, err)
		}
	}
	// The command line still works.
	if cfg, err := Parse([]string{"--version"}, env(), io.Discard); err != nil || !cfg.Version {
		t.Fatalf("--version: %v %v", cfg, err)
	}
}

// Lists of addresses and CIDRs take commas and newlines (a YAML block
// scalar); a newline kept only the first entry, silently.
func TestEnvListsTakeNewlines(t *testing.T) {
	base := []string{"--registry", "nacos", "--service", "s", "--port", "8080", "--ip", "10.0.0.1", "--drain-quiet", "3s"}
	for _, tc := range []struct {
		name, variable, value string
		check                 func(*Config) bool
	}{
		{"drain-ignore newline", "GRACEFULINIT_DRAIN_IGNORE", "10.0.0.0/8\n192.168.0.0/16", func(c *Config) bool {
			return len(c.DrainIgnore) == 2 && c.DrainIgnore[1] == netip.MustParsePrefix("192.168.0.0/16")
		}},
		{"drain-ignore block scalar", "GRACEFULINIT_DRAIN_IGNORE", "10.0.0.0/8\r\n  172.16.0.0/12,192.168.0.0/16\n\n", func(c *Config) bool { return len(c.DrainIgnore) == 3 }},
		{"drain-ignore commas", "GRACEFULINIT_DRAIN_IGNORE", "10.0.0.0/8,192.168.0.0/16", func(c *Config) bool { return len(c.DrainIgnore) == 2 }},
		{"nacos-addr newline", "GRACEFULINIT_NACOS_ADDR", "http://n1:8848\nhttp://n2:8848\n", func(c *Config) bool {
			return len(c.Nacos.Addrs) == 2 && c.Nacos.Addrs[1] == "http://n2:8848"
		}},
		{"ports newline", "GRACEFULINIT_PORT", "8080\n8081", func(c *Config) bool { return len(c.Ports) == 2 && c.Ports[1] == 8081 }},
		{"drain-ip newline", "GRACEFULINIT_DRAIN_IP", "10.0.0.1\n10.0.0.2", func(c *Config) bool { return len(c.DrainIPs) == 2 }},
		{"metadata newline", "GRACEFULINIT_NACOS_METADATA", "a=1\nb=2", func(c *Config) bool { return len(c.Nacos.Metadata) == 2 }},
		{"scalar trailing newline", "GRACEFULINIT_SERVICE", "orders\n", func(c *Config) bool { return c.Service == "orders" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, base...), "--nacos-addr", "http://n:8848", "--", "app")
			if tc.variable == "GRACEFULINIT_NACOS_ADDR" || tc.variable == "GRACEFULINIT_PORT" || tc.variable == "GRACEFULINIT_SERVICE" {
				args = dropFlag(args, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(tc.variable, EnvPrefix), "_", "-")))
			}
			cfg, err := Parse(args, env(tc.variable, tc.value), io.Discard)
			if err != nil || !tc.check(cfg) {
				t.Fatalf("%s=%q: %+v, %v", tc.variable, tc.value, cfg, err)
			}
		})
	}
}

// dropFlag removes --name VALUE from args.
func dropFlag(args []string, name string) []string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--"+name {
			return append(append([]string{}, args[:i]...), args[i+2:]...)
		}
	}
	return args
}

// Hook variables stay one call per line: a body holds commas.
func TestEnvHooksOnePerLine(t *testing.T) {
	v := "POST http://127.0.0.1:8080/a {\"a\":1,\"b\":2}\nGET http://127.0.0.1:8080/b\n"
	cfg, err := Parse([]string{"--port", "8080", "--", "app"}, env("GRACEFULINIT_OFFLINE_HTTP", v), io.Discard)
	if err != nil || len(cfg.OfflineHTTP) != 2 || cfg.OfflineHTTP[0].Body != `{"a":1,"b":2}` {
		t.Fatalf("%+v, %v", cfg, err)
	}
}

// A control character in a value is refused with one line naming the
// variable and the fix, never echoing the value (it could forge a log line).
func TestEnvControlCharactersRefused(t *testing.T) {
	for _, tc := range []struct{ variable, value, want string }{
		{"GRACEFULINIT_SERVICE", "orders\nlevel=INFO msg=forged", "GRACEFULINIT_SERVICE holds a line break"},
		{"GRACEFULINIT_SERVICE", "ord\x1b[2Kers", "GRACEFULINIT_SERVICE holds a control character (U+001B)"},
		{"GRACEFULINIT_GRACE_PERIOD", "30s\r\n10s", "GRACEFULINIT_GRACE_PERIOD holds a line break"},
		{"GRACEFULINIT_DRAIN_IGNORE", "10.0.0.0/8\n192.168.\x000.0/16", "GRACEFULINIT_DRAIN_IGNORE holds a control character (U+0000)"},
		{"GRACEFULINIT_OFFLINE_HTTP", "GET http://127.0.0.1:8080/x\x07", "GRACEFULINIT_OFFLINE_HTTP holds a control character (U+0007)"},
		{"GRACEFULINIT_NACOS_PASSWORD", "S3CRET\x1bPW", "GRACEFULINIT_NACOS_PASSWORD holds a control character"},
		{"GRACEFULINIT_VERBOSE", "2\n3", "GRACEFULINIT_VERBOSE holds a line break"},
	} {
		args := []string{"--registry", "nacos", "--nacos-addr", "http://n:8848", "--nacos-username", "u", "--service", "s", "--port", "8080", "--ip", "10.0.0.1", "--", "app"}
		_, err := Parse(dropFlag(args, "service"), env("GRACEFULINIT_SERVICE", "s", tc.variable, tc.value), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.ContainsAny(err.Error(), "\n\r\x1b\x00\x07") ||
			strings.Contains(err.Error(), "forged") || strings.Contains(err.Error(), "S3CRET") {
			t.Errorf("%s=%q: %v; want one line with %q, without the value", tc.variable, tc.value, err, tc.want)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{
		"GRACEFULINIT_VERSION=v1.0.0", "GRACEFULINIT_DRAN=3s", "GRACEFULINIT_DRAIN=3s", "GRACEFULINIT_OFFLINE_HTTP=x",
		"PATH=/bin", "TINI_VERSION=v0.19.0", "GRACEFULINIT_CHECK=1", "GRACEFULINIT_X\nforged=1", "GRACEFULINIT_DRAN=4s",
	})
	want := []string{`"GRACEFULINIT_X\nforged"`, "GRACEFULINIT_CHECK", "GRACEFULINIT_DRAN", "GRACEFULINIT_VERSION"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("UnknownEnv = %q, want %q", got, want)
	}
	// Every flag but the actions is known.
	var all []string
	FlagSet(&Config{}, io.Discard).VisitAll(func(f *pflag.Flag) { all = append(all, EnvName(f.Name)+"=1") })
	if got := UnknownEnv(all); strings.Join(got, ",") != "GRACEFULINIT_CHECK,GRACEFULINIT_LICENSE,GRACEFULINIT_VERSION" {
		t.Fatalf("UnknownEnv of every flag's variable = %q", got)
	}
}
