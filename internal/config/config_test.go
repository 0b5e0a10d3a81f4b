package config

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string // substring of the one-line error
	}{
		{"no command", nil, nil, "no command given"},
		{"negative budget", []string{"--grace-period", "5s", "--stop-timeout", "10s", "--", "x"}, nil, "grace-period 5s - kill-margin 1s - stop-timeout 10s = -6s"},
		{"drain over budget", []string{"--drain", "25s", "--stop-timeout", "10s", "--", "x"}, nil, "--drain 25s exceeds the drain budget"},
		{"drain leaves no stop time", []string{"--grace-period", "6s", "--drain", "5s", "--", "x"}, nil, "--drain leaves the app no time to stop"},
		{"timeline names the variable", []string{"--grace-period", "6s", "--", "x"}, []string{"GRACEFULINIT_DRAIN", "5s"}, "GRACEFULINIT_DRAIN leaves the app no time to stop"},
		{"quiet without port", []string{"--drain-quiet", "1s", "--", "x"}, nil, "--drain-quiet needs the app's ports"},
		{"min without quiet", []string{"--drain-min", "1s", "--", "x"}, nil, "--drain-min only applies with --drain-quiet"},
		{"bad duration", []string{"--drain", "soon", "--", "x"}, nil, "invalid duration \"soon\""},
		{"bad signal", []string{"--stop-signal", "FOO", "--", "x"}, nil, "unknown signal \"FOO\""},
		{"bad remap", []string{"-e", "300", "--", "x"}, nil, "--remap-exit 300"},
		{"bad env value", []string{"--", "x"}, []string{"GRACEFULINIT_GRACE_PERIOD", "forever"}, "GRACEFULINIT_GRACE_PERIOD=\"forever\""},
		{"registry without port", []string{"--registry", "nacos", "--nacos-addr", "n:8848", "--service", "s", "--", "x"}, nil, "--registry needs the app's port"},
		{"unknown registry", []string{"--registry", "zk", "--port", "1", "--", "x"}, nil, "--registry \"zk\""},
		{"nacos offline in env", []string{"--registry", "nacos", "--nacos-addr", "n:8848", "--service", "s", "--port", "1", "--ip", "10.0.0.1", "--", "x"}, []string{"GRACEFULINIT_NACOS_OFFLINE", "all"}, "GRACEFULINIT_NACOS_OFFLINE \"all\": use both, weight or disable"},
		{"nacos addr in env", []string{"--registry", "nacos", "--service", "s", "--port", "1", "--ip", "10.0.0.1", "--", "x"}, []string{"GRACEFULINIT_NACOS_ADDR", "http://n:0"}, "GRACEFULINIT_NACOS_ADDR \"http://n:0\": want a URL"},
		{"eureka url in env", []string{"--registry", "eureka", "--service", "s", "--port", "1", "--ip", "10.0.0.1", "--", "x"}, []string{"GRACEFULINIT_EUREKA_URL", "ftp://e/eureka"}, "GRACEFULINIT_EUREKA_URL \"ftp://e/eureka\": want a URL"},
		{"eureka mode", []string{"--registry", "eureka", "--eureka-url", "http://e/eureka", "--eureka-mode", "both", "--service", "s", "--port", "1", "--ip", "10.0.0.1", "--", "x"}, nil, "--eureka-mode \"both\": use mark or register"},
		{"nacos password without user", []string{"--registry", "nacos", "--nacos-addr", "n:8848", "--nacos-password", "pw", "--service", "s", "--port", "1", "--ip", "10.0.0.1", "--", "x"}, nil, "without --nacos-username"},
		{"nacos without addr", []string{"--registry", "nacos", "--port", "1", "--ip", "10.0.0.1", "--service", "s", "--", "x"}, nil, "needs --nacos-addr"},
		{"nacos without service", []string{"--registry", "nacos", "--port", "1", "--ip", "10.0.0.1", "--nacos-addr", "n", "--", "x"}, nil, "needs --service"},
		{"eureka bad url", []string{"--registry", "eureka", "--port", "1", "--ip", "10.0.0.1", "--service", "s", "--eureka-url", "eureka:8761", "--", "x"}, nil, "--eureka-url"},
		{"bad ip", []string{"--registry", "eureka", "--port", "1", "--ip", "pod", "--", "x"}, nil, "--ip \"pod\""},
		{"password and file", []string{"--nacos-password", "a", "--nacos-password-file", "testdata/password", "--", "x"}, nil, "keep only the file"},
		{"cache-max without quiet", []string{"--drain-cache-max", "10s", "--", "x"}, nil, "--drain-cache-max only applies with --drain-quiet"},
		{"ignore without quiet", []string{"--drain-ignore", "10.0.0.0/8", "--", "x"}, nil, "--drain-ignore only applies with --drain-quiet"},
		{"per-caller without quiet", []string{"--drain-per-caller=false", "--", "x"}, nil, "--drain-per-caller only applies with --drain-quiet"},
		{"bad ignore", []string{"--drain-quiet", "1s", "--port", "1", "--drain-ignore", "10.0.0/8", "--", "x"}, nil, "--drain-ignore \"10.0.0/8\""},
		{"bad HOST_IP", []string{"--drain-quiet", "1s", "--port", "1", "--", "x"}, []string{"HOST_IP", "node-1"}, "HOST_IP=\"node-1\""},
		{"newline in a value", []string{"--nacos-metadata", "a\nb", "--", "x"}, nil, `a\nb must be formatted as key=value`},
		{"missing password file", []string{"--nacos-password-file", "testdata/nope", "--", "x"}, nil, "--nacos-password-file testdata/nope: cannot read it"},
		{"bad hook method", []string{"--offline-http", "FETCH http://h/", "--port", "1", "--", "x"}, nil, "--offline-http: method \"FETCH\""},
		{"hook without URL", []string{"--online-http", "GET", "--", "x"}, nil, "--online-http: no URL"},
		{"bad hook in env", []string{"--port", "1", "--", "x"}, []string{"GRACEFULINIT_OFFLINE_HTTP", "GET http://h/\nGET ftp://h/"}, "GRACEFULINIT_OFFLINE_HTTP: URL \"ftp://h/\""},
		{"offline hook without port", []string{"--offline-http", "GET http://127.0.0.1:22222/offline", "--", "x"}, nil, "--offline-http drains until the app's port is quiet: add --port"},
		{"drain-ip with a fixed drain", []string{"--drain", "3s", "--drain-ip", "127.0.0.1", "--grace-period", "30s", "--", "x"}, nil, "--drain-ip only applies with --drain-quiet"},
		{"bad health addr", []string{"--health-addr", "8558", "--", "x"}, nil, "--health-addr \"8558\": want HOST:PORT"},
		{"health addr with a line break", []string{"--health-addr", "a\nlevel=ERROR msg=forged:8558", "--", "x"}, nil, "--health-addr \"a\\nlevel=ERROR msg=forged:8558\": want HOST:PORT"},
		{"ready-tcp with a line break", []string{"--ready-tcp", "a\rb:8080", "--", "x"}, nil, "--ready-tcp \"a\\rb:8080\": want HOST:PORT"},
		{"dump signal alone", []string{"--dump-signal", "QUIT", "--grace-period", "30s", "--", "x"}, nil, "--dump-signal needs --dump-before"},
		{"dump before alone", []string{"--dump-before", "3s", "--grace-period", "30s", "--", "x"}, nil, "--dump-before needs --dump-signal"},
		{"dump in tini mode", []string{"--dump-signal", "QUIT", "--dump-before", "3s", "--", "x"}, nil, "--dump-signal needs a deadline"},
		{"dump before past the stop time", []string{"--dump-signal", "QUIT", "--dump-before", "10s", "--grace-period", "30s", "--", "x"}, nil, "--dump-before 10s: want more than 0 and less than the app's stop time (stop-timeout 10s)"},
		{"bad dump signal", []string{"--dump-signal", "DUMP", "--dump-before", "3s", "--grace-period", "30s", "--", "x"}, nil, "unknown signal \"DUMP\""},
		{"dump signal KILL", []string{"--dump-signal", "KILL", "--dump-before", "3s", "--grace-period", "30s", "--", "x"}, nil, "--dump-signal KILL cannot trigger a thread dump"},
		{"dump signal STOP", []string{"--dump-signal", "STOP", "--dump-before", "3s", "--grace-period", "30s", "--", "x"}, nil, "--dump-signal STOP cannot trigger a thread dump"},
		{"dump signal TERM", []string{"--dump-signal", "TERM", "--dump-before", "3s", "--grace-period", "30s", "--", "x"}, nil, "--dump-signal TERM cannot trigger a thread dump"},
		{"dump signal CHLD", []string{"--dump-signal", "17", "--dump-before", "3s", "--grace-period", "30s", "--", "x"}, nil, "--dump-signal CHLD cannot trigger a thread dump"},
		{"dump signal CONT in env", []string{"--dump-before", "3s", "--grace-period", "30s", "--", "x"}, []string{"GRACEFULINIT_DUMP_SIGNAL", "CONT"}, "GRACEFULINIT_DUMP_SIGNAL CONT cannot trigger a thread dump"},
		{"stop-on KILL", []string{"--stop-on", "KILL", "--", "x"}, nil, "--stop-on KILL: gracefulinit cannot take it as a stop request"},
		{"stop-on CHLD", []string{"--stop-on", "CHLD", "--", "x"}, nil, "--stop-on CHLD: gracefulinit cannot take it"},
		{"stop-on unknown", []string{"--stop-on", "TERM,NOPE", "--", "x"}, nil, "unknown signal \"NOPE\""},
		{"bool flag not a bool", []string{"--registry-hold=maybe", "--", "x"}, nil, `invalid argument "maybe" for "--registry-hold" flag: want true or false`},
		{"bool variable not a bool", []string{"--", "x"}, []string{"GRACEFULINIT_SUBREAPER", "yes"}, `GRACEFULINIT_SUBREAPER="yes": want true or false`},
		{"hold without a registry", []string{"--registry-hold=false", "--", "x"}, nil, "--registry-hold only applies with a registry in mark mode (the app registers itself): remove it"},
		{"hold in register mode", []string{"--registry", "nacos", "--nacos-mode", "register", "--nacos-addr", "http://n:8848", "--service", "s", "--port", "1", "--ip", "10.0.0.1", "--", "x"}, []string{"GRACEFULINIT_REGISTRY_HOLD", "false"}, "GRACEFULINIT_REGISTRY_HOLD only applies with a registry in mark mode"},
		{"hold env without a registry", []string{"--registry-hold-env=false", "--", "x"}, nil, "--registry-hold-env only applies with the hold (a registry in mark mode, --registry-hold on): remove it"},
		{"hold env with the hold off", []string{"--registry", "eureka", "--eureka-url", "http://e:8761/eureka", "--service", "s", "--port", "1", "--ip", "10.0.0.1", "--registry-hold=false", "--", "x"}, []string{"GRACEFULINIT_REGISTRY_HOLD_ENV", "true"}, "GRACEFULINIT_REGISTRY_HOLD_ENV only applies with the hold"},
		{"log level in env", []string{"--", "x"}, []string{"GRACEFULINIT_LOG_LEVEL", "loud"}, "GRACEFULINIT_LOG_LEVEL \"loud\": use debug"},
		{"registry in env", []string{"--", "x"}, []string{"GRACEFULINIT_REGISTRY", "zk"}, "GRACEFULINIT_REGISTRY \"zk\": use nacos, eureka"},
		{"remap-exit in env", []string{"--", "x"}, []string{"GRACEFULINIT_REMAP_EXIT", "300"}, "GRACEFULINIT_REMAP_EXIT 300: exit codes run from 0 to 255"},
		{"ready interval in env", []string{"--ready-tcp", "127.0.0.1:1", "--", "x"}, []string{"GRACEFULINIT_READY_INTERVAL", "0"}, "GRACEFULINIT_READY_INTERVAL must be positive"},
		{"empty drain-ignore entry in env", []string{"--grace-period", "30s", "--drain-quiet", "2s", "--port", "1", "--", "x"}, []string{"GRACEFULINIT_DRAIN_IGNORE", "10.0.0.0/8,"}, "GRACEFULINIT_DRAIN_IGNORE lists an empty entry: remove the extra comma"},
		{"bad drain-ignore in env", []string{"--grace-period", "30s", "--drain-quiet", "2s", "--port", "1", "--", "x"}, []string{"GRACEFULINIT_DRAIN_IGNORE", "10.0.0.0/8\nten"}, "GRACEFULINIT_DRAIN_IGNORE \"ten\": want a CIDR"},
		{"drain-ignore in env without a quiet drain", []string{"--", "x"}, []string{"GRACEFULINIT_DRAIN_IGNORE", "10.0.0.0/8"}, "GRACEFULINIT_DRAIN_IGNORE only applies with --drain-quiet: add --drain-quiet or remove GRACEFULINIT_DRAIN_IGNORE"},
		{"drain-cache-max in env without a quiet drain", []string{"--", "x"}, []string{"GRACEFULINIT_DRAIN_CACHE_MAX", "30s"}, "GRACEFULINIT_DRAIN_CACHE_MAX only applies with --drain-quiet: add --drain-quiet or remove GRACEFULINIT_DRAIN_CACHE_MAX"},
		{"drain-min in env without a quiet drain", []string{"--grace-period", "30s", "--drain", "5s", "--", "x"}, []string{"GRACEFULINIT_DRAIN_MIN", "1s"}, "GRACEFULINIT_DRAIN_MIN only applies with --drain-quiet"},
		{"symlinked termination log", []string{"--termination-log", "testdata/termination-log-link", "--", "x"}, nil, "--termination-log: termination log testdata/termination-log-link is a symbolic link"},
		{"offline hook and --drain without port", []string{"--offline-http", "GET http://127.0.0.1:22222/offline", "--drain", "5s", "--", "x"}, nil, "or set --drain-quiet 0 for a fixed drain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.args, env(tt.env...), io.Discard)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want error containing %q", tt.args, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, tt.want)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	cfg, src, err := ParseSources([]string{"-g", "-e", "143", "-e", "130", "--stop-signal", "quit", "--grace-period", "40", "--drain", "5s", "--", "java", "-jar", "a.jar"},
		env("GRACEFULINIT_GRACE_PERIOD", "99s", "GRACEFULINIT_KILL_MARGIN", "2s", "TINI_SUBREAPER", ""), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"command", strings.Join(cfg.Command, " "), "java -jar a.jar"},
		{"pgroup", cfg.PGroup, true},
		{"remap", len(cfg.RemapExit), 2},
		{"stop signal", cfg.StopSignal, syscall.SIGQUIT},
		{"flag beats env", cfg.GracePeriod, 40 * time.Second},
		{"env applies", cfg.KillMargin, 2 * time.Second},
		{"tini env", cfg.Subreaper, true},
		{"tini source", src["subreaper"], "env TINI_SUBREAPER"},
		{"flag source", src["grace-period"], "flag"},
		{"env source", src["kill-margin"], "env GRACEFULINIT_KILL_MARGIN"},
		{"default source", src["stop-timeout"], "default"},
		{"budget", cfg.DrainBudget(), 28 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLifecycleValues(t *testing.T) {
	cfg, err := Parse([]string{
		"--offline-http", "GET http://127.0.0.1:22222/offline",
		"--offline-http", `POST http://127.0.0.1:8080/actuator/service-registry {"status":"OUT_OF_SERVICE"}`,
		"--health-addr", "0.0.0.0:8558", "--termination-log", "/tmp/tl",
		"--dump-signal", "QUIT", "--dump-before", "3s", "--port", "8080", "--grace-period", "30s",
		// The offline hook turns the quiet drain on, so --drain-ip applies.
		"--drain-ip", "127.0.0.1", "--", "x"},
		env("GRACEFULINIT_ONLINE_HTTP", "GET http://127.0.0.1:22222/online\n\n  POST http://127.0.0.1:8080/actuator/service-registry {\"status\":\"UP\"}\n"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"offline hooks", len(cfg.OfflineHTTP), 2},
		{"offline body with a space-free JSON", cfg.OfflineHTTP[1].Body, `{"status":"OUT_OF_SERVICE"}`},
		{"online hooks, one per line", len(cfg.OnlineHTTP), 2},
		{"online body", cfg.OnlineHTTP[1].Body, `{"status":"UP"}`},
		{"offline turns on the traffic-aware drain", cfg.DrainQuiet, 2 * time.Second},
		{"drain-ip kept", len(cfg.DrainIPs), 1},
		{"cache-max for HTTP consumers", cfg.DrainCacheMax, 40 * time.Second},
		{"health", cfg.HealthAddr, "0.0.0.0:8558"},
		{"termination log set", cfg.TerminationLog, "/tmp/tl"},
		{"dump", cfg.DumpSignal, syscall.SIGQUIT},
		{"dump before", cfg.DumpBefore, 3 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	off, err := Parse([]string{"--termination-log", "", "--", "x"}, env(), io.Discard)
	if err != nil || off.TerminationLog != "" {
		t.Fatalf("--termination-log '': %q, %v; want disabled", off.TerminationLog, err)
	}
}

// The timeline is resolved once, with defaults shrunk to fit what was set,
// and written back for --check; without any timeline flag it is tini mode.
func TestTimelineResolved(t *testing.T) {
	tests := []struct {
		name              string
		args, env         []string
		kills             bool
		stop, drain, kill time.Duration
	}{
		{"tini mode", nil, nil, false, 10 * time.Second, 0, 0},
		{"docker's 10s", []string{"--grace-period", "10s"}, nil, true, 9 * time.Second, 0, time.Second},
		{"grace from env is set too", nil, []string{"GRACEFULINIT_GRACE_PERIOD", "20"}, true, 10 * time.Second, 0, time.Second},
		{"drain yields stop-timeout", []string{"--grace-period", "20s", "--drain", "12s"}, nil, true, 7 * time.Second, 12 * time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(append(tt.args, "--", "x"), env(tt.env...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Timeline.Kills() != tt.kills || cfg.StopTimeout != tt.stop || cfg.Drain != tt.drain || cfg.Timeline.KillMargin != tt.kill {
				t.Fatalf("kills %v stop-timeout %v drain %v kill-margin %v; want %v %v %v %v",
					cfg.Timeline.Kills(), cfg.StopTimeout, cfg.Drain, cfg.Timeline.KillMargin, tt.kills, tt.stop, tt.drain, tt.kill)
			}
		})
	}
}

// With a registry and no drain flags the drain watches traffic, using the
// whole budget as its ceiling.
func TestRegistryDrainDefault(t *testing.T) {
	cfg, err := Parse([]string{"--registry", "nacos", "--nacos-addr", "nacos:8848/", "--service", "svc", "--port", "8080", "--", "x"},
		env("POD_IP", "10.1.2.3"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Drain != cfg.DrainBudget() || cfg.DrainQuiet == 0 {
		t.Fatalf("drain %v quiet %v, want the budget %v and a quiet window", cfg.Drain, cfg.DrainQuiet, cfg.DrainBudget())
	}
	if cfg.IP != "10.1.2.3" || cfg.Nacos.Addrs[0] != "http://nacos:8848" {
		t.Fatalf("ip %q addr %q", cfg.IP, cfg.Nacos.Addrs[0])
	}
}

// The per-peer drain's settings: cache-max defaults by registry, ignored
// callers from --drain-ignore and HOST_IP.
func TestDrainPeerSettings(t *testing.T) {
	nacos := []string{"--registry", "nacos", "--nacos-addr", "n:8848", "--service", "s", "--port", "8080", "--ip", "10.0.0.5"}
	eureka := []string{"--registry", "eureka", "--eureka-url", "http://e:8761/eureka", "--service", "s", "--port", "8080", "--ip", "10.0.0.5"}
	tests := []struct {
		name     string
		args     []string
		env      []string
		cacheMax time.Duration
		ignore   string
	}{
		{"nacos", nacos, nil, 40 * time.Second, ""},
		{"eureka", eureka, nil, 95 * time.Second, ""},
		{"both", []string{"--registry", "nacos,eureka", "--nacos-addr", "n", "--eureka-url", "http://e/eureka", "--service", "s", "--port", "1", "--ip", "10.0.0.5"}, nil, 95 * time.Second, ""},
		{"no registry", []string{"--drain-quiet", "2s", "--port", "1"}, nil, 0, ""},
		{"set", append(slices.Clone(nacos), "--drain-cache-max", "20s"), nil, 20 * time.Second, ""},
		{"ignore and HOST_IP", append(slices.Clone(nacos), "--drain-ignore", "10.9.0.0/16,192.168.1.7", "--drain-ignore", "::ffff:10.8.0.0/112"), []string{"HOST_IP", "172.16.0.3"}, 40 * time.Second,
			"10.9.0.0/16 192.168.1.7/32 10.8.0.0/16 172.16.0.3/32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(append(tt.args, "--", "x"), env(tt.env...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DrainCacheMax != tt.cacheMax {
				t.Errorf("cache-max %v, want %v", cfg.DrainCacheMax, tt.cacheMax)
			}
			var got []string
			for _, p := range cfg.DrainIgnore {
				got = append(got, p.String())
			}
			if g := strings.Join(got, " "); g != tt.ignore {
				t.Errorf("ignored %q, want %q", g, tt.ignore)
			}
		})
	}
}

func TestEurekaCredentialsFromURL(t *testing.T) {
	cfg, err := Parse([]string{"--registry", "eureka", "--eureka-url", "http://user:pw@eureka:8761/eureka/", "--service", "orders", "--port", "8080", "--ip", "10.0.0.9", "--", "x"},
		env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Eureka
	if e.URLs[0] != "http://eureka:8761/eureka" || e.Username != "user" || e.Password != "pw" {
		t.Fatalf("url %q user %q: userinfo must move out of the URL", e.URLs[0], e.Username)
	}
	// The instance id's default (hostname:orders:8080) is the Eureka
	// backend's, applied when the configuration resolves its options
	// (cmd/gracefulinit TestEurekaInstanceIDDefault).
	if host, err := os.Hostname(); err == nil && (e.App != "ORDERS" || e.InstanceID != host+":orders:8080") {
		t.Fatalf("app %q id %q", e.App, e.InstanceID)
	}
}

func TestPasswordFile(t *testing.T) {
	cfg, err := Parse([]string{"--nacos-password-file", "testdata/password", "--", "x"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Nacos.Password != "s3cret" {
		t.Fatalf("password %q, want the file's first line without newline", cfg.Nacos.Password)
	}
}

func TestDurationForms(t *testing.T) {
	for in, want := range map[string]time.Duration{"30": 30 * time.Second, "1.5": 1500 * time.Millisecond, "1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond} {
		var d durationValue
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	var d durationValue
	if d.Set("-1s") == nil {
		t.Error("negative durations must be rejected")
	}
}

// Each value alone must be finite and in range before anything starts:
// 1e10 seconds, NaN and Inf used to wrap to negative durations, and ports
// above 65535 were taken as written. The error names the flag, or the
// variable when the environment gave the value.
func TestRangeChecks(t *testing.T) {
	nacos := []string{"--registry", "nacos", "--nacos-addr", "http://nacos:8848", "--service", "s", "--port", "8080", "--ip", "10.0.0.1"}
	eureka := []string{"--registry", "eureka", "--service", "s", "--port", "8080", "--ip", "10.0.0.1"}
	warm := []string{"--warmup-http", "GET http://127.0.0.1:8080/items", "--ready-tcp", "127.0.0.1:8080"}
	cat := func(a ...[]string) []string {
		var out []string
		for _, x := range a {
			out = append(out, x...)
		}
		return append(out, "--", "x")
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string // substrings of the one-line error
	}{
		{"kill margin past a year", cat([]string{"--kill-margin", "1e10"}), nil, []string{`"--kill-margin"`, "longer than a year"}},
		{"kill margin NaN", cat([]string{"--kill-margin", "NaN"}), nil, []string{`"--kill-margin"`, "not a duration"}},
		{"kill margin Inf", cat([]string{"--kill-margin", "Inf"}), nil, []string{`"--kill-margin"`, "not a duration"}},
		{"kill margin -Inf", cat([]string{"--kill-margin", "-Inf"}), nil, []string{`"--kill-margin"`, "not a duration"}},
		{"kill margin beyond float", cat([]string{"--kill-margin", "1e400"}), nil, []string{`"--kill-margin"`, "not a duration"}},
		{"kill margin below 1ns", cat([]string{"--kill-margin", "1e-12"}), nil, []string{`"--kill-margin"`, "shorter than a nanosecond"}},
		{"two wrapped values that cancel", cat([]string{"--kill-margin", "1e10", "--stop-timeout", "1e10"}), nil, []string{`"--kill-margin"`, "longer than a year"}},
		{"env kill margin", cat(), []string{"GRACEFULINIT_KILL_MARGIN", "1e10"}, []string{"GRACEFULINIT_KILL_MARGIN", "longer than a year"}},
		{"env kill margin NaN", cat(), []string{"GRACEFULINIT_KILL_MARGIN", "NaN"}, []string{"GRACEFULINIT_KILL_MARGIN", "not a duration"}},
		{"grace period at the int64 edge", cat([]string{"--grace-period", "9223372036s"}), nil, []string{`"--grace-period"`, "longer than a year"}},
		{"grace period in seconds past a year", cat([]string{"--grace-period", "31536001"}), nil, []string{`"--grace-period"`, "longer than a year"}},
		{"drain quiet NaN", cat([]string{"--drain-quiet", "NaN", "--port", "1"}), nil, []string{`"--drain-quiet"`, "not a duration"}},
		{"drain min 1e10", cat([]string{"--drain-quiet", "1s", "--drain-min", "1e10", "--port", "1"}), nil, []string{`"--drain-min"`, "longer than a year"}},
		{"ready timeout Inf", cat([]string{"--ready-timeout", "Inf"}), nil, []string{`"--ready-timeout"`, "not a duration"}},
		{"eureka heartbeat NaN", cat([]string{"--eureka-heartbeat", "NaN"}), nil, []string{`"--eureka-heartbeat"`, "not a duration"}},
		{"registry timeout 0", cat([]string{"--registry-timeout", "0"}), nil, []string{"--registry-timeout must be positive"}},
		{"nacos weight NaN", cat(nacos, []string{"--nacos-weight", "NaN"}), nil, []string{`"--nacos-weight"`, "from 0.01 to 10000"}},
		{"nacos weight Inf", cat(nacos, []string{"--nacos-weight", "Inf"}), nil, []string{`"--nacos-weight"`, "from 0.01 to 10000"}},
		{"nacos weight above Nacos's max", cat(nacos, []string{"--nacos-weight", "20000"}), nil, []string{`"--nacos-weight"`, "from 0.01 to 10000"}},
		{"nacos weight that draws no traffic", cat(nacos, []string{"--nacos-weight", "1e-300"}), nil, []string{`"--nacos-weight"`, "from 0.01 to 10000"}},
		{"empty nacos address in the list", cat([]string{"--registry", "nacos", "--nacos-addr", "http://n:8848,", "--service", "s", "--port", "8080", "--ip", "10.0.0.1"}), nil, []string{"--nacos-addr lists an empty address"}},
		{"empty eureka URL in the list", cat(eureka, []string{"--eureka-url", ",http://e:8761/eureka"}), nil, []string{"--eureka-url lists an empty URL"}},
		{"nacos weight 0", cat(nacos, []string{"--nacos-weight", "0"}), nil, []string{`"--nacos-weight"`, "from 0.01"}},
		{"env nacos weight NaN", cat(nacos), []string{"GRACEFULINIT_NACOS_WEIGHT", "NaN"}, []string{"GRACEFULINIT_NACOS_WEIGHT", "from 0.01"}},
		{"eureka url port 99999", cat(eureka, []string{"--eureka-url", "http://eureka:99999/eureka"}), nil, []string{"--eureka-url", "ports run from 1 to 65535"}},
		{"env eureka url port 99999", cat(eureka), []string{"GRACEFULINIT_EUREKA_URL", "http://eureka:99999/eureka"}, []string{"GRACEFULINIT_EUREKA_URL", "ports run from 1 to 65535"}},
		{"nacos addr port 0", cat([]string{"--registry", "nacos", "--nacos-addr", "nacos:0", "--service", "s", "--port", "8080", "--ip", "10.0.0.1"}), nil, []string{"--nacos-addr", "ports run from 1 to 65535"}},
		{"nacos addr port 99999", cat([]string{"--registry", "nacos", "--nacos-addr", "http://nacos:99999", "--service", "s", "--port", "8080", "--ip", "10.0.0.1"}), nil, []string{"--nacos-addr", "ports run from 1 to 65535"}},
		{"ready http port 99999", cat([]string{"--ready-http", "http://127.0.0.1:99999/health"}), nil, []string{"--ready-http", "ports run from 1 to 65535"}},
		{"ready tcp port 99999", cat([]string{"--ready-tcp", "127.0.0.1:99999"}), nil, []string{"--ready-tcp", "port from 1 to 65535"}},
		{"env port", cat(), []string{"GRACEFULINIT_PORT", "70000"}, []string{"GRACEFULINIT_PORT 70000", "ports run from 1 to 65535"}},
		{"env verbosity", cat(), []string{"GRACEFULINIT_VERBOSE", "-1"}, []string{"GRACEFULINIT_VERBOSE", "from 0 to 3"}},
		{"flag verbosity", cat([]string{"--verbose=-2"}), nil, []string{"--verbose -2", "from 0 to 3"}},
		{"warm-up count 0", cat(warm, []string{"--warmup-requests", "0"}), nil, []string{`"--warmup-requests"`, "from 1 to 1000000"}},
		{"warm-up count negative", cat(warm, []string{"--warmup-requests", "-5"}), nil, []string{`"--warmup-requests"`, "from 1 to 1000000"}},
		{"warm-up count overflow", cat(warm, []string{"--warmup-requests", "99999999999999999999"}), nil, []string{`"--warmup-requests"`, "from 1 to 1000000"}},
		{"warm-up count not a number", cat(warm, []string{"--warmup-requests", "1e3"}), nil, []string{`"--warmup-requests"`, "whole number"}},
		{"warm-up concurrency 0", cat(warm, []string{"--warmup-concurrency", "0"}), nil, []string{`"--warmup-concurrency"`, "from 1 to 256"}},
		{"warm-up concurrency too high", cat(warm, []string{"--warmup-concurrency", "257"}), nil, []string{`"--warmup-concurrency"`, "from 1 to 256"}},
		{"env warm-up count", cat(warm), []string{"GRACEFULINIT_WARMUP_REQUESTS", "-1"}, []string{"GRACEFULINIT_WARMUP_REQUESTS", "from 1 to"}},
		{"warm-up timeout NaN", cat(warm, []string{"--warmup-timeout", "NaN"}), nil, []string{`"--warmup-timeout"`, "not a duration"}},
		{"warm-up timeout Inf", cat(warm, []string{"--warmup-timeout", "Inf"}), nil, []string{`"--warmup-timeout"`, "not a duration"}},
		{"warm-up timeout negative", cat(warm, []string{"--warmup-timeout", "-1s"}), nil, []string{`"--warmup-timeout"`, "negative"}},
		{"warm-up timeout 0", cat(warm, []string{"--warmup-timeout", "0"}), nil, []string{"--warmup-timeout must be positive"}},
		{"warm-up bad method", cat([]string{"--warmup-http", "FETCH http://127.0.0.1:8080/"}), nil, []string{"--warmup-http: method \"FETCH\""}},
		{"warm-up bad URL", cat([]string{"--warmup-http", "GET 127.0.0.1:8080/"}), nil, []string{"--warmup-http: URL"}},
		{"warm-up URL port 0", cat([]string{"--warmup-http", "GET http://127.0.0.1:0/"}), nil, []string{"--warmup-http: URL", "ports run from 1 to 65535"}},
		{"warm-up to another host", cat([]string{"--ready-tcp", "127.0.0.1:8080", "--warmup-http", "GET http://my-service:8080/items"}), nil, []string{"--warmup-http: URL http://my-service:8080/items is not this machine's", "use 127.0.0.1"}},
		{"warm-up to another address", cat([]string{"--ready-tcp", "127.0.0.1:8080", "--warmup-http", "GET http://192.0.2.10:8080/"}), nil, []string{"--warmup-http: URL http://192.0.2.10:8080/ is not this machine's"}},
		{"warm-up elsewhere in env", cat([]string{"--ready-tcp", "127.0.0.1:8080"}), []string{"GRACEFULINIT_WARMUP_HTTP", "GET http://127.0.0.1:8080/a\nGET http://example.com/b"}, []string{"GRACEFULINIT_WARMUP_HTTP: URL http://example.com/b is not this machine's"}},
		{"warm-up without a readiness probe", cat([]string{"--warmup-http", "GET http://127.0.0.1:8080/"}), nil, []string{"--warmup-http needs a readiness probe"}},
		{"warm-up bad line in env", cat(), []string{"GRACEFULINIT_WARMUP_HTTP", "GET http://127.0.0.1:8080/a\nGET ftp://h/"}, []string{"GRACEFULINIT_WARMUP_HTTP: URL \"ftp://h/\""}},
		{"warm-up count without requests", cat([]string{"--warmup-requests", "10"}), nil, []string{"--warmup-requests only applies with --warmup-http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.args, env(tt.env...), io.Discard)
			if err == nil {
				t.Fatalf("Parse(%q, env %q) succeeded, want an error containing %q", tt.args, tt.env, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q: want one line containing %q", err, w)
				}
			}
		})
	}
}

// The edges themselves stay accepted; a verbosity above 3 means 3 (it used
// to loop once per unit: a billion from GRACEFULINIT_VERBOSE took seconds).
func TestRangeEdges(t *testing.T) {
	cfg, err := Parse([]string{"--grace-period", "8760h", "--ready-timeout", "31536000", "--kill-margin", "0",
		"--registry", "nacos", "--nacos-addr", "nacos:65535", "--service", "s", "--port", "65535", "--ip", "10.0.0.1", "--nacos-weight", "10000", "--", "x"},
		env("GRACEFULINIT_VERBOSE", "1000000000"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GracePeriod != MaxDuration || cfg.ReadyTimeout != MaxDuration || cfg.Nacos.Weight != MaxWeight || cfg.Verbosity != 3 {
		t.Fatalf("grace %v ready-timeout %v weight %v verbosity %d", cfg.GracePeriod, cfg.ReadyTimeout, cfg.Nacos.Weight, cfg.Verbosity)
	}
}

// A password in a URL never comes back in an error, whether the URL parses
// or not, whether it came from a flag or a variable, and also through
// pflag's own "invalid argument" errors (its CSV reader refuses quotes).
func TestErrorsDoNotEchoPasswords(t *testing.T) {
	nacos := func(addr string) []string {
		return []string{"--registry", "nacos", "--nacos-addr", addr, "--service", "s", "--port", "8080", "--ip", "10.0.0.1", "--", "x"}
	}
	eureka := func(u string) []string {
		return []string{"--registry", "eureka", "--eureka-url", u, "--service", "s", "--port", "8080", "--ip", "10.0.0.1", "--", "x"}
	}
	base := []string{"--registry", "nacos", "--service", "s", "--port", "8080", "--ip", "10.0.0.1", "--", "x"}
	tests := []struct {
		name   string
		args   []string
		env    []string
		secret string
		want   string
	}{
		{"bad escape", nacos("http://alice:S3CRETPW@h:1/%zz"), nil, "S3CRETPW", "--nacos-addr"},
		{"bad escape in a list", nacos("http://h:1,http://alice:S3CRETPW@h:1/%zz"), nil, "S3CRETPW", "--nacos-addr"},
		{"space in the password", nacos("http://alice:S3CRET PW@h:1"), nil, "S3CRET PW", "--nacos-addr"},
		{"bad port", nacos("http://alice:S3CRETPW@h:99999"), nil, "S3CRETPW", "--nacos-addr"},
		{"quote: pflag's CSV error", nacos(`http://alice:S3"CRETPW@h:1`), nil, `S3"CRETPW`, `"--nacos-addr"`},
		{"eureka bad escape", eureka("http://alice:S3CRETPW@h:1/%zz"), nil, "S3CRETPW", "--eureka-url"},
		{"ready-http", []string{"--ready-http", "http://alice:S3CRETPW@h:99999/health", "--", "x"}, nil, "S3CRETPW", "--ready-http"},
		{"env bad escape", base, []string{"GRACEFULINIT_NACOS_ADDR", "http://alice:S3CRETPW@h:1/%zz"}, "S3CRETPW", "GRACEFULINIT_NACOS_ADDR"},
		{"env space", base, []string{"GRACEFULINIT_NACOS_ADDR", "http://alice:S3CRET PW@h:1"}, "S3CRET PW", "GRACEFULINIT_NACOS_ADDR"},
		{"env quote: CSV error", base, []string{"GRACEFULINIT_NACOS_ADDR", `http://alice:S3"CRETPW@h:1,http://h:2`}, `S3"CRETPW`, "GRACEFULINIT_NACOS_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.args, env(tt.env...), io.Discard)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.args)
			}
			msg := err.Error()
			quoted := strings.Trim(strconv.Quote(tt.secret), `"`)
			if strings.Contains(msg, tt.secret) || strings.Contains(msg, quoted) || strings.Contains(msg, "S3CRET") {
				t.Fatalf("error leaks the password: %s", msg)
			}
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line naming %s", msg, tt.want)
			}
		})
	}
}

// Password files: regular files of at most 64 KiB, one trailing newline
// trimmed, never empty. A FIFO used to block start-up forever (and SIGTERM
// with it), /dev/zero ran PID 1 out of memory, a 100 MB file was read whole
// and an empty file gave an empty password.
func TestPasswordFileRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if f, err := os.Create(big); err != nil {
		t.Fatal(err)
	} else {
		// Sparse: 100 MB long, no disk used, and reading it would cost 100 MB.
		if err := f.Truncate(100 << 20); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	tests := []struct {
		name string
		path string
		env  bool   // give the path through GRACEFULINIT_EUREKA_PASSWORD_FILE
		want string // the password, or with bad set a substring of the error
		bad  bool
	}{
		{"one newline trimmed", write("nl", "pw\n"), false, "pw", false},
		{"CRLF trimmed", write("crlf", "pw\r\n"), false, "pw", false},
		{"only one newline trimmed", write("nl2", "pw\n\n"), false, "pw\n", false},
		{"spaces kept", write("sp", " pw \n"), false, " pw ", false},
		{"no newline", write("nonl", "pw"), false, "pw", false},
		{"at the limit", write("limit", strings.Repeat("a", MaxSecretFile)), false, strings.Repeat("a", MaxSecretFile), false},
		{"empty", write("empty", ""), false, "--eureka-password-file " + dir + "/empty: empty", true},
		{"just a newline", write("justnl", "\n"), false, "empty", true},
		{"over the limit", write("over", strings.Repeat("a", MaxSecretFile+1)), false, "more than a password file may hold (64 KiB; it has 65537 bytes)", true},
		{"100 MB", big, false, "more than a password file may hold (64 KiB; it has 104857600 bytes)", true},
		{"fifo", fifo, false, "not a regular file (a named pipe)", true},
		{"fifo from env", fifo, true, "GRACEFULINIT_EUREKA_PASSWORD_FILE " + fifo + ": not a regular file (a named pipe)", true},
		{"/dev/zero", "/dev/zero", false, "not a regular file (a character device)", true},
		{"directory", dir, false, "not a regular file (a directory)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--eureka-password-file", tt.path, "--", "x"}
			var e []string
			if tt.env {
				args, e = []string{"--", "x"}, []string{"GRACEFULINIT_EUREKA_PASSWORD_FILE", tt.path}
			}
			type result struct {
				cfg *Config
				err error
			}
			done := make(chan result, 1)
			// What Parse allocates anyway (the flag set), so the bound
			// below is on reading the file alone.
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _ = Parse([]string{"--", "x"}, env(), io.Discard)
			runtime.ReadMemStats(&after)
			base := after.TotalAlloc - before.TotalAlloc
			runtime.ReadMemStats(&before)
			go func() {
				cfg, err := Parse(args, env(e...), io.Discard)
				done <- result{cfg, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Parse blocked on the password file")
			}
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > base+4*MaxSecretFile {
				t.Errorf("Parse allocated %d bytes reading the file, %d without it", grew, base)
			}
			if tt.bad {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.want) || strings.Contains(r.err.Error(), "\n") {
					t.Fatalf("error %v: want one line containing %q", r.err, tt.want)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.cfg.Eureka.Password != tt.want {
				t.Fatalf("password %q, want %q", r.cfg.Eureka.Password, tt.want)
			}
		})
	}
}

// TestWarmupValues: the flags, and one request per line of the variable.
func TestWarmupValues(t *testing.T) {
	cfg, err := Parse([]string{"--ready-tcp", "127.0.0.1:8080", "--", "x"}, env("GRACEFULINIT_WARMUP_HTTP", "GET http://127.0.0.1:8080/a\n\nPOST http://127.0.0.1:8080/b {\"q\": [1, 2]}\n"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.WarmupHTTP) != 2 || cfg.WarmupHTTP[1].Method != "POST" || cfg.WarmupHTTP[1].Body != `{"q": [1, 2]}` {
		t.Fatalf("warm-up calls %+v", cfg.WarmupHTTP)
	}
	if cfg.WarmupRequests != 64 || cfg.WarmupConcurrency != 4 || cfg.WarmupTimeout != time.Minute {
		t.Fatalf("defaults: requests %d concurrency %d timeout %v, want 64 4 1m", cfg.WarmupRequests, cfg.WarmupConcurrency, cfg.WarmupTimeout)
	}
	cfg, err = Parse([]string{"--ready-http", "http://127.0.0.1:8080/", "--warmup-http", "GET http://127.0.0.1:8080/", "--warmup-requests", "1000000", "--warmup-concurrency", "256", "--warmup-timeout", "90", "--", "x"}, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WarmupRequests != 1000000 || cfg.WarmupConcurrency != 256 || cfg.WarmupTimeout != 90*time.Second {
		t.Fatalf("requests %d concurrency %d timeout %v", cfg.WarmupRequests, cfg.WarmupConcurrency, cfg.WarmupTimeout)
	}
}

// TestStopOn: --stop-on is repeatable (or a comma list, as the variable
// gives it) and replaces the default TERM; --stop-signal defaults to none
// of its own, so the app gets the signal that started the sequence.
func TestStopOn(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []syscall.Signal
	}{
		{"default", nil, nil, []syscall.Signal{syscall.SIGTERM}},
		{"STOPSIGNAL INT", []string{"--stop-on", "INT"}, nil, []syscall.Signal{syscall.SIGINT}},
		{"repeated", []string{"--stop-on", "SIGINT", "--stop-on", "15"}, nil, []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}},
		{"variable, comma list", nil, []string{"GRACEFULINIT_STOP_ON", "quit,term"}, []syscall.Signal{syscall.SIGQUIT, syscall.SIGTERM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(append(tc.args, "--", "x"), env(tc.env...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.StopOn, tc.want) || cfg.StopSignal != 0 {
				t.Fatalf("stop on %v, stop signal %v; want %v and none", cfg.StopOn, cfg.StopSignal, tc.want)
			}
		})
	}
}

// TestDrainCeilingWithRegistry: with a registry or an offline hook, --drain
// is the ceiling of the traffic-aware drain; --drain-quiet 0 asks for a
// fixed drain by name.
func TestDrainCeilingWithRegistry(t *testing.T) {
	nacos := []string{"--registry", "nacos", "--nacos-addr", "http://n:8848", "--service", "s", "--ip", "10.0.0.1", "--port", "8080"}
	hook := []string{"--offline-http", "GET http://127.0.0.1:22222/offline", "--port", "8080"}
	for _, tc := range []struct {
		name         string
		args         []string
		drain, quiet time.Duration
	}{
		{"registry --drain 15s", append(slices.Clone(nacos), "--drain", "15s"), 15 * time.Second, 2 * time.Second},
		{"hook --drain 15s", append(slices.Clone(hook), "--drain", "15s"), 15 * time.Second, 2 * time.Second},
		{"registry --drain 15s --drain-quiet 0", append(slices.Clone(nacos), "--drain", "15s", "--drain-quiet", "0"), 15 * time.Second, 0},
		{"registry --drain-min 3s", append(slices.Clone(nacos), "--drain-min", "3s"), 19 * time.Second, 2 * time.Second},
		{"no registry --drain 15s: fixed", []string{"--drain", "15s"}, 15 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(append(tc.args, "--", "x"), env(), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Timeline.Drain != tc.drain || cfg.Timeline.DrainQuiet != tc.quiet || cfg.DrainQuiet != tc.quiet {
				t.Fatalf("drain %v quiet %v (config %v); want %v %v", cfg.Timeline.Drain, cfg.Timeline.DrainQuiet, cfg.DrainQuiet, tc.drain, tc.quiet)
			}
		})
	}
}

// TestSecretsOnCommandLine: a password or credential given as a flag is in
// gracefulinit's command line, which ps shows to every process of the
// container (and the node's, for a root user); its variable or file is not.
func TestSecretsOnCommandLine(t *testing.T) {
	nacos := []string{"--registry", "nacos", "--service", "s", "--port", "8080", "--ip", "10.0.0.1"}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"password flag", append(nacos, "--nacos-addr", "http://n:8848", "--nacos-username", "u", "--nacos-password", "pw1234"), nil, []string{"--nacos-password"}},
		{"userinfo in the address", append(nacos, "--nacos-addr", "http://u:pw1234@n:8848"), nil, []string{"--nacos-addr"}},
		{"hook body", []string{"--offline-http", `POST http://127.0.0.1:1/x {"token":"tok1234"}`, "--port", "1"}, nil, []string{"--offline-http"}},
		{"password in the variable", append(nacos, "--nacos-addr", "http://n:8848", "--nacos-username", "u"), []string{"GRACEFULINIT_NACOS_PASSWORD", "pw1234"}, nil},
		{"none", append(nacos, "--nacos-addr", "http://n:8848"), nil, nil},
	} {
		cfg, src, err := ParseSources(append(tc.args, "--", "x"), env(tc.env...), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := SecretsOnCommandLine(cfg, src); !slices.Equal(got, tc.want) {
			t.Errorf("%s: SecretsOnCommandLine = %q, want %q", tc.name, got, tc.want)
		}
	}
}
