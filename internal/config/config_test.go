package config

import (
	"io"
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
		{"drain over budget", []string{"--drain", "25s", "--", "x"}, nil, "--drain 25s exceeds the drain budget"},
		{"quiet without port", []string{"--drain-quiet", "1s", "--", "x"}, nil, "--drain-quiet needs the app's ports"},
		{"min without quiet", []string{"--drain-min", "1s", "--", "x"}, nil, "--drain-min only applies with --drain-quiet"},
		{"bad duration", []string{"--drain", "soon", "--", "x"}, nil, "invalid duration \"soon\""},
		{"bad signal", []string{"--stop-signal", "FOO", "--", "x"}, nil, "unknown signal \"FOO\""},
		{"bad remap", []string{"-e", "300", "--", "x"}, nil, "--remap-exit 300"},
		{"bad env value", []string{"--", "x"}, []string{"GRACEFULINIT_GRACE_PERIOD", "forever"}, "GRACEFULINIT_GRACE_PERIOD=\"forever\""},
		{"registry without port", []string{"--registry", "nacos", "--nacos-addr", "n:8848", "--service", "s", "--", "x"}, nil, "--registry needs the app's port"},
		{"unknown registry", []string{"--registry", "zk", "--port", "1", "--", "x"}, nil, "--registry \"zk\""},
		{"nacos without addr", []string{"--registry", "nacos", "--port", "1", "--ip", "10.0.0.1", "--service", "s", "--", "x"}, nil, "needs --nacos-addr"},
		{"nacos without service", []string{"--registry", "nacos", "--port", "1", "--ip", "10.0.0.1", "--nacos-addr", "n", "--", "x"}, nil, "needs --service"},
		{"eureka bad url", []string{"--registry", "eureka", "--port", "1", "--ip", "10.0.0.1", "--service", "s", "--eureka-url", "eureka:8761", "--", "x"}, nil, "--eureka-url"},
		{"bad ip", []string{"--registry", "eureka", "--port", "1", "--ip", "pod", "--", "x"}, nil, "--ip \"pod\""},
		{"password and file", []string{"--nacos-password", "a", "--nacos-password-file", "testdata/password", "--", "x"}, nil, "keep only the file"},
		{"missing password file", []string{"--nacos-password-file", "testdata/nope", "--", "x"}, nil, "cannot read testdata/nope"},
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
	cfg, err := Parse([]string{"-g", "-e", "143", "-e", "130", "--stop-signal", "quit", "--grace-period", "40", "--drain", "5s", "--", "java", "-jar", "a.jar"},
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
		{"tini source", cfg.Source["subreaper"], "env TINI_SUBREAPER"},
		{"budget", cfg.DrainBudget(), 28 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
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
	if e.App != "ORDERS" || !strings.HasSuffix(e.InstanceID, ":orders:8080") {
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

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:p@h:1/x": "http://u:xxxxx@h:1/x",
		"http://h:1/x":     "http://h:1/x",
		"http://u@h":       "http://u@h",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
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
