package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

func lookupIn(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Values that wrapped to negative durations made --check print a SIGKILL
// at -2562047h and "all checks passed"; now they are refused with one line
// naming the flag or variable, and nothing else is printed.
func TestCheckRefusesOutOfRange(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"flags", []string{"--check", "--kill-margin", "1e10", "--stop-timeout", "1e10"}, nil, `"--kill-margin"`},
		{"env", []string{"--check"}, []string{"GRACEFULINIT_KILL_MARGIN", "NaN", "GRACEFULINIT_STOP_TIMEOUT", "NaN"}, "GRACEFULINIT_KILL_MARGIN"},
		{"env Inf", []string{"--check"}, []string{"GRACEFULINIT_KILL_MARGIN", "Inf"}, "GRACEFULINIT_KILL_MARGIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, lookupIn(tt.env...), &out, &errb)
			all := out.String() + errb.String()
			if code == 0 || strings.Contains(all, "all checks passed") || strings.Contains(all, "-2562047h") {
				t.Fatalf("exit %d, output:\n%s", code, all)
			}
			first, _, _ := strings.Cut(errb.String(), "\n")
			if !strings.Contains(first, tt.want) || out.Len() != 0 {
				t.Fatalf("want one error line naming %s and nothing on stdout; got stderr %q stdout %q", tt.want, errb.String(), out.String())
			}
		})
	}
}

// --check prints every flag's value and probes every address: a password in
// any element of a URL list must not appear, nor one in the command line.
func TestCheckRedactsPasswords(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"--check", "--registry", "nacos,eureka", "--service", "s", "--port", "8080", "--ip", "10.0.0.1",
		"--nacos-addr", "http://alice:S3CRETPW1@127.0.0.1:1,http://bob:S3CRETPW2@127.0.0.1:2",
		"--eureka-url", "http://carol:S3CRETPW3@127.0.0.1:3/eureka",
		"--", "java", "-Dspring.datasource.password=S3CRETPW4", "-jar", "app.jar"}
	code := run(args, lookupIn("GRACEFULINIT_NACOS_PASSWORD", "S3CRETPW5", "GRACEFULINIT_NACOS_USERNAME", "n"), &out, &errb)
	all := out.String() + errb.String()
	if code == 0 || !strings.Contains(all, "PROBLEM") {
		t.Fatalf("exit %d: want the unreachable registries reported:\n%s", code, all)
	}
	if strings.Contains(all, "S3CRET") {
		t.Fatalf("a password leaked:\n%s", all)
	}
	if !strings.Contains(all, "alice:xxxxx@127.0.0.1:1") || !strings.Contains(all, "bob:xxxxx@127.0.0.1:2") {
		t.Fatalf("want each address shown with its password masked:\n%s", all)
	}
}

// --check asks each registry address where the backend itself will call:
// below Nacos's context path (the path in --nacos-addr, /nacos without one)
// and below Eureka's service URL. A wrong path is a problem, not "answers".
func TestCheckProbesWhereTheBackendCalls(t *testing.T) {
	t.Parallel()
	pol := registrytest.StartPolaris(t)
	// A Nacos served under another context path (server.servlet.contextPath):
	// Polaris cannot be configured so, this stand-in answers only there.
	var mu sync.Mutex
	var paths []string
	ctxSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/ctx/v1/ns/service/list" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"count":0,"doms":[]}`)
	}))
	t.Cleanup(ctxSrv.Close)
	hostPort := strings.TrimPrefix(pol.NacosAddr, "http://")
	tests := []struct {
		name     string
		registry string
		addr     string
		ok       bool
	}{
		{"nacos URL", "nacos", pol.NacosAddr, true},
		{"nacos host:port", "nacos", hostPort, true},
		{"nacos explicit /nacos", "nacos", pol.NacosAddr + "/nacos/", true},
		{"nacos context path", "nacos", ctxSrv.URL + "/ctx", true},
		{"nacos wrong context path", "nacos", pol.NacosAddr + "/ctx", false},
		{"eureka", "eureka", pol.EurekaURL, true},
		{"eureka trailing slash", "eureka", pol.EurekaURL + "/", true},
		{"eureka wrong path", "eureka", "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(pol.EurekaPort)) + "/wrong", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flag := "--nacos-addr"
			if tt.registry == "eureka" {
				flag = "--eureka-url"
			}
			args := []string{"--check", "--registry", tt.registry, "--service", "s", "--port", "8080", "--ip", "10.0.0.1", flag, tt.addr}
			var out, errb bytes.Buffer
			code := run(args, lookupIn(), &out, &errb)
			all := out.String() + errb.String()
			if got := code == 0 && strings.Contains(all, "ok: "+tt.registry); got != tt.ok {
				t.Fatalf("exit %d, want ok=%v:\n%s", code, tt.ok, all)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(paths, []string{"/ctx/v1/ns/service/list"}) {
		t.Fatalf("the context-path server was asked %q, want only /ctx/v1/ns/service/list", paths)
	}
}

// --check explains the per-caller drain with the configured numbers.
func TestCheckExplainsPerCaller(t *testing.T) {
	base := []string{"--check", "--grace-period", "40s", "--drain-quiet", "2s", "--port", "8080"}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"per caller, HOST_IP", nil, []string{"HOST_IP", "10.0.0.9"}, []string{
			"done once quiet for max(2s, 2 x its longest gap",
			"a caller every 3s is waited for 6s after its last call, a busy one for 2s",
			"closes all its connections after the offline (let go) is done 2s later; keepalive frames are not calls",
			"no --drain-cache-max: a caller that never stops (a prober, a scraper) holds the drain to its ceiling",
			"left out: 10.0.0.9/32 (10.0.0.9 from HOST_IP)",
		}},
		{"cache-max and ignore", []string{"--drain", "20s", "--drain-cache-max", "5s", "--drain-ignore", "10.1.0.0/16"}, nil, []string{
			"never after 20s",
			"short history) is waited for until 5s after the offline",
			"callers still calling 5s after the offline took effect are not waited for",
			"left out: 10.1.0.0/16",
		}},
		{"no caller left out", nil, nil, []string{"no caller ignored: set HOST_IP (fieldRef status.hostIP)"}},
		{"one quiet window", []string{"--drain-per-caller=false"}, nil, []string{"--drain-per-caller=false: every caller is done 2s after its last call"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(append(slices.Clone(base), tt.args...), "--", "x"), lookupIn(tt.env...), &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d:\n%s%s", code, out.String(), errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("--check output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestCheckSignals: --check says what each signal does: a --stop-on signal
// runs the offline and the drain and names the signal the app then gets;
// the others are forwarded at once; tini mode says it has no drain.
func TestCheckSignals(t *testing.T) {
	hook := []string{"--check", "--offline-http", "GET http://127.0.0.1:1/offline", "--port", "8080"}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"STOPSIGNAL INT", append(slices.Clone(hook), "--stop-on", "INT"), []string{
			"SIGINT: starts the stop sequence: offline, drain, then SIGINT to the app; a second --stop-on signal ends the drain",
			"SIGTERM: forwarded to the app at once (not a --stop-on signal)",
		}},
		{"QUIT with --stop-signal TERM", append(slices.Clone(hook), "--stop-on", "QUIT", "--stop-signal", "TERM"), []string{
			"SIGQUIT: starts the stop sequence: offline, drain, then SIGTERM to the app",
			"SIGINT: forwarded to the app at once",
		}},
		{"registry: --drain is the ceiling", append(slices.Clone(hook), "--drain", "15s"), []string{
			"0s: drain until every caller of the app's ports is done (quiet 2s, at least 0s, at most 15s: the --drain ceiling; --drain-quiet 0 for a fixed drain)",
		}},
		{"registry: a fixed drain by name", append(slices.Clone(hook), "--drain", "15s", "--drain-quiet", "0"), []string{
			"0s: fixed drain of 15s (--drain-quiet 0)",
		}},
		{"fixed drain, no hook", []string{"--check", "--drain", "3s"}, []string{
			"SIGTERM: starts the stop sequence: drain, then SIGTERM to the app",
			"0s: fixed drain of 3s (--drain-quiet 0)",
		}},
		{"tini mode", []string{"--check"}, []string{
			"SIGTERM: SIGTERM to the app at once (tini mode: no offline, no drain, no deadline)",
			"SIGINT: forwarded to the app at once",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			run(tc.args, lookupIn(), &out, &errb)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("--check lacks %q:\n%s%s", w, out.String(), errb.String())
				}
			}
		})
	}
}

// TestCheckStartSide: --check says what happens while the app starts: the
// hold in mark mode (not in register mode, not when turned off) and the
// warm-up with its numbers and requests. The registry address refuses, so
// the probe's problem is not this test's.
func TestCheckStartSide(t *testing.T) {
	nacos := []string{"--check", "--registry", "nacos", "--nacos-addr", "http://127.0.0.1:1", "--service", "s", "--port", "8080", "--ip", "10.0.0.1",
		"--ready-http", "http://127.0.0.1:8080/health", "--registry-timeout", "1s"}
	tests := []struct {
		name     string
		args     []string
		want     []string
		wantNone string
	}{
		{"hold and warm-up", []string{"--warmup-http", "GET http://127.0.0.1:8080/items", "--warmup-http", "POST http://127.0.0.1:8080/q {}", "--warmup-requests", "100"}, []string{
			"hold (nacos, from the app's start until it is ready and warmed up): the app's own registration is kept out of rotation, then put online",
			"warm-up (once ready, before online): 100 requests, 4 at a time, at most 1m0s, in turn over:",
			"    GET http://127.0.0.1:8080/items\n    POST http://127.0.0.1:8080/q\n",
			"200 once ready, warmed up and online",
		}, ""},
		{"hold only", nil, []string{"hold (nacos, from the app's start until it is ready): ",
			"the app is told to register itself out of rotation (--registry-hold-env), its environment gets: SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0\n"}, "warm-up"},
		{"hold, not told", []string{"--registry-hold-env=false"}, []string{"hold (nacos, from the app's start until it is ready): "}, "its environment gets"},
		{"hold off", []string{"--registry-hold=false"}, []string{"hold: off (--registry-hold=false)"}, "its environment gets"},
		{"register mode", []string{"--registry", "eureka", "--eureka-url", "http://127.0.0.1:1/eureka", "--eureka-mode", "register"},
			[]string{"hold (nacos, from"}, "eureka, from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append(slices.Clone(nacos), tt.args...)
			if tt.name == "hold and warm-up" {
				args = append(args, "--health-addr", "127.0.0.1:8558")
			}
			run(append(args, "--", "x"), lookupIn(), &out, &errb)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("--check output lacks %q:\n%s%s", w, out.String(), errb.String())
				}
			}
			_, life, _ := strings.Cut(out.String(), "\nlifecycle:")
			life, _, _ = strings.Cut(life, "\n\n")
			if tt.wantNone != "" && strings.Contains(life, tt.wantNone) {
				t.Errorf("--check lifecycle has %q:\n%s", tt.wantNone, out.String())
			}
		})
	}
}

// TestSecretsOnCommandLineWarned: a password given as a flag is in ps's
// view of gracefulinit; start-up warns, --check says so, and neither prints
// the secret. Given in its variable, nothing is said.
func TestSecretsOnCommandLineWarned(t *testing.T) {
	base := []string{"--registry", "nacos", "--nacos-addr", "http://127.0.0.1:1", "--nacos-username", "u", "--service", "s", "--port", "8080", "--ip", "10.0.0.1", "--registry-timeout", "1s"}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want bool
	}{
		{"flag", []string{"--nacos-password", "pw-on-argv"}, nil, true},
		{"variable", nil, []string{"GRACEFULINIT_NACOS_PASSWORD", "pw-on-argv"}, false},
	} {
		var out, errb bytes.Buffer
		args := append(append(append([]string{"--check"}, base...), tc.args...), "--", "x")
		run(args, lookupIn(tc.env...), &out, &errb)
		all := out.String() + errb.String()
		if got := strings.Contains(all, "secrets on gracefulinit's command line") && strings.Contains(all, "--nacos-password"); got != tc.want {
			t.Errorf("%s: warned %v, want %v:\n%s", tc.name, got, tc.want, all)
		}
		if strings.Contains(all, "pw-on-argv") {
			t.Errorf("%s: the password is printed:\n%s", tc.name, all)
		}
	}
}
