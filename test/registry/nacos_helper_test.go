package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// helperDiedMsg is gracefulinit's one line for each death of its Nacos helper.
const helperDiedMsg = "nacos helper died; restarting it"

// helperPID is the pid (test's namespace) of the gracefulinit-nacos
// process below gracefulinit, 0 if there is none.
func helperPID(p *testbin.Proc) int {
	for _, pid := range procfs.Descendants(p.Cmd.Process.Pid) {
		if filepath.Base(proctree.Exe(pid)) == "gracefulinit-nacos" {
			return pid
		}
	}
	return 0
}

// waitHelper waits for a helper process other than not and returns its pid.
func waitHelper(t *testing.T, p *testbin.Proc, not int, timeout time.Duration) int {
	t.Helper()
	var pid int
	if !testbin.WaitFor(context.Background(), timeout, func() bool {
		pid = helperPID(p)
		return pid != 0 && pid != not
	}) {
		t.Fatalf("no gracefulinit-nacos process (other than %d) within %v\nstderr:\n%s", not, timeout, p.Stderr)
	}
	return pid
}

// TestNacosHelperKilled: the Nacos SDK runs in the helper process; when it
// is SIGKILLed, PID 1 logs its death once with the reason, restarts it and
// the instance is registered again; at SIGTERM a dead or hung helper costs
// nothing: the stop keeps its schedule and the app's exit code comes through.
func TestNacosHelperKilled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, s *registrytest.Server, p *pod)
	}{
		{"while the app runs", func(t *testing.T, s *registrytest.Server, p *pod) {
			old := waitHelper(t, p.p, 0, visible)
			if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			died := p.waitLog(helperDiedMsg, "nacos", visible)
			if r := died.Str("reason"); !strings.Contains(r, "killed by signal 9") {
				t.Errorf("death reason %q, want the SIGKILL named", r)
			}
			p.waitLog("nacos instance registered again after a helper restart", "nacos", visible+5*time.Second)
			standin.WaitNacosHost(t, s, p.spec.service, p.ip, p.port, "registered again", visible, standin.NacosInRotation)
			if now := waitHelper(t, p.p, old, visible); now == old {
				t.Fatalf("helper pid %d unchanged", now)
			}
			if n := len(p.findLogs(helperDiedMsg, "nacos")); n != 1 {
				t.Errorf("%d death lines for one death, want 1", n)
			}
			p.term()
			if sum := p.checkStopOnSchedule(); sum.Offline != "ok" {
				t.Errorf("summary: offline %q, want ok", sum.Offline)
			}
			standin.WaitNacosHost(t, s, p.spec.service, p.ip, p.port, "gone after exit", visible, standin.NacosAbsent)
		}},
		{"at SIGTERM", func(t *testing.T, s *registrytest.Server, p *pod) {
			helper := waitHelper(t, p.p, 0, visible)
			p.term()
			if err := syscall.Kill(helper, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			p.checkStopOnSchedule()
			standin.WaitNacosHost(t, s, p.spec.service, p.ip, p.port, "gone after exit", visible, standin.NacosAbsent)
		}},
		{"hung at SIGTERM", func(t *testing.T, s *registrytest.Server, p *pod) {
			// SIGSTOP: alive, connected, answering nothing. The offline
			// step fails, the stop keeps its schedule, and the helper that
			// does not exit when closed is killed, its registration with it.
			helper := waitHelper(t, p.p, 0, visible)
			if err := syscall.Kill(helper, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			p.term()
			if sum := p.checkStopOnSchedule(); !strings.HasPrefix(sum.Offline, "failed") {
				t.Errorf("summary: offline %q, want failed (the helper never answered)", sum.Offline)
			}
			standin.WaitNacosHost(t, s, p.spec.service, p.ip, p.port, "gone after exit", visible, standin.NacosAbsent)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := registrytest.StartPolaris(t)
			service := "helper-" + strings.ReplaceAll(tc.name, " ", "-")
			init := nacosInit(s, service, "--nacos-mode", "register", "--nacos-cache-dir", t.TempDir())
			p := startPod(t, podSpec{service: service, init: init, drain: 3 * time.Second, grace: 15 * time.Second})
			p.waitHealthy()
			p.waitLog("registry online", "nacos", visible)
			standin.WaitNacosHost(t, s, service, p.ip, p.port, "registered by gracefulinit", visible, standin.NacosInRotation)
			tc.run(t, s, p)
		})
	}
}

// TestNacosHelperCrashes: what crashes nacos-sdk-go (a login answer without
// tokenTtl or with a numeric token, TLS settings naming unreadable files)
// ends only the helper. PID 1 logs each death with its reason, keeps
// restarting the helper, and on SIGTERM stops on schedule with the app's
// own exit code. The login answers come from httptest: no real server
// sends them.
func TestNacosHelperCrashes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		login  string   // the login endpoint's answer; "" refuses with 404
		auth   bool     // log in with --nacos-username/--nacos-password
		env    []string // for gracefulinit, and so for the SDK
		reason string   // in the death line
	}{
		{name: "login without tokenTtl", login: `{"accessToken":"tok"}`, auth: true, reason: "panic: interface conversion"},
		{name: "numeric accessToken", login: `{"accessToken":12345,"tokenTtl":18000}`, auth: true, reason: "panic: interface conversion"},
		{name: "TLS cert unreadable", env: []string{
			"nacos_remote_client_rpc_tls_enable=true",
			"nacos_remote_client_rpc_tls_certChainFile=/nonexistent/cert.pem",
			"nacos_remote_client_rpc_tls_certPrivateKey=/nonexistent/key.pem",
		}, reason: "load cert fail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if tc.login != "" && strings.HasSuffix(r.URL.Path, "/auth/users/login") {
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, tc.login)
					return
				}
				http.NotFound(w, r)
			}))
			t.Cleanup(srv.Close)
			const grace = 10 * time.Second
			args := []string{
				"--log-format", "json", "--registry", "nacos", "--nacos-mode", "register",
				"--nacos-addr", srv.URL, "--service", "crash-svc", "--ip", "127.0.0.1", "--port", "18080",
				"--nacos-cache-dir", t.TempDir(), "--registry-timeout", "2s",
				"--grace-period", secs(grace), "--stop-timeout", "3s", "--drain", "1s", "--drain-quiet", "0",
			}
			if tc.auth {
				args = append(args, "--nacos-username", "gi", "--nacos-password", "s3cr3t-pw")
			}
			// The app's own exit code, 7, must come through.
			args = append(args, "--", "sh", "-c", `trap 'exit 7' TERM; while :; do sleep 0.1; done`)
			p := testbin.Start(t, testbin.Options{PID1: true, Env: tc.env, Dir: t.TempDir()}, args...)

			var deaths []testbin.LogRecord
			if !testbin.WaitFor(context.Background(), 20*time.Second, func() bool {
				deaths = nil
				for _, l := range p.Logs() {
					if l.Str("msg") == helperDiedMsg {
						deaths = append(deaths, l)
					}
				}
				return len(deaths) >= 2 || p.Exited()
			}) || p.Exited() {
				t.Fatalf("want two helper deaths and PID 1 running; exited %v\nstderr:\n%s", p.Exited(), p.Stderr)
			}
			for _, d := range deaths {
				if r := d.Str("reason"); !strings.Contains(r, tc.reason) || !strings.Contains(r, "exit status") {
					t.Errorf("death reason %q, want the exit status and %q", r, tc.reason)
				}
			}
			if strings.Contains(p.Stderr.String(), "s3cr3t-pw") {
				t.Errorf("the password reached the log\nstderr:\n%s", p.Stderr)
			}
			// The crash trace itself stays out of PID 1's log above debug.
			if strings.Contains(p.Stderr.String(), "goroutine ") {
				t.Errorf("the helper's stack trace reached the log\nstderr:\n%s", p.Stderr)
			}

			term := p.Signal(syscall.SIGTERM)
			code := p.Wait(grace + 5*time.Second)
			took := time.Since(term)
			if code != 7 {
				t.Fatalf("exit code %d, want the app's 7\nstderr:\n%s", code, p.Stderr)
			}
			if took > grace {
				t.Errorf("shutdown took %v, beyond the grace period %v", took, grace)
			}
			var sums []testbin.LogRecord
			for _, l := range p.Logs() {
				if l.Str("msg") == "shutdown summary" {
					sums = append(sums, l)
				}
			}
			if len(sums) != 1 {
				t.Fatalf("%d shutdown summaries, want 1\nstderr:\n%s", len(sums), p.Stderr)
			}
			sum, err := testbin.ParseSummary(sums[0])
			if err != nil {
				t.Error(err)
			}
			if sum.ChildCode != 7 || sum.ExitCode != 7 || sum.Killed {
				t.Errorf("summary: child %d exit %d killed %v, want 7, 7, false", sum.ChildCode, sum.ExitCode, sum.Killed)
			}
			t.Logf("%d helper deaths, first: %s; stopped %v after SIGTERM", len(deaths), deaths[0].Str("reason"), took.Round(time.Millisecond))
		})
	}
}

// TestNacosHelperMissing: register mode without its helper is refused with
// one line before the app starts.
func TestNacosHelperMissing(t *testing.T) {
	t.Parallel()
	// gracefulinit alone in a directory: nothing beside it.
	alone := filepath.Join(t.TempDir(), "gracefulinit")
	data, err := os.ReadFile(testbin.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "gracefulinit-nacos")
	cases := []struct {
		name   string
		extra  []string
		looked string // the path the error names
	}{
		{"not next to gracefulinit", nil, filepath.Join(filepath.Dir(alone), "gracefulinit-nacos")},
		{"--nacos-helper names a missing file", []string{"--nacos-helper", missing}, missing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			marker := filepath.Join(t.TempDir(), "app-started")
			args := append([]string{
				"--registry", "nacos", "--nacos-mode", "register", "--nacos-addr", "http://127.0.0.1:1",
				"--service", "svc", "--ip", "127.0.0.1", "--port", "18080",
			}, tc.extra...)
			args = append(args, "--", "sh", "-c", "touch "+strconv.Quote(marker)+"; sleep 30")
			p := testbin.Start(t, testbin.Options{PID1: true, Binary: alone}, args...)
			code := p.Wait(10 * time.Second)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero\nstderr:\n%s", p.Stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the app was started")
			}
			lines := strings.Split(strings.TrimSpace(p.Stderr.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d lines on stderr, want one:\n%s", len(lines), p.Stderr)
			}
			for _, want := range []string{tc.looked, "gracefulinit-nacos", "--nacos-helper"} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("error %q lacks %q", lines[0], want)
				}
			}
			t.Logf("exit %d: %s", code, lines[0])
		})
	}
}
