package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestHelperPath: register mode finds its helper or says, in one line,
// what to copy where; mark mode never looks for it.
func TestHelperPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "gracefulinit-nacos")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name, mode, helper string
		wantErr            []string // substrings of the one-line error; nil: no error
	}{
		{"found", "register", exe, nil},
		{"missing", "register", missing, []string{missing, "no such file", "copy gracefulinit-nacos", "--nacos-helper"}},
		{"not executable", "register", plain, []string{plain, "chmod +x"}},
		{"a directory", "register", dir, []string{dir, "not an executable file"}},
		{"mark mode ignores it", "mark", missing, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Options{
				Service: "svc", IP: "10.0.0.1", Port: 8080,
				Addrs: []string{"http://127.0.0.1:8848"}, Mode: tt.mode, Weight: 1, Helper: tt.helper,
			}
			_, err := New(*cfg, nil)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted a register mode without a usable helper")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestHelperEnvDropsOwnSettings(t *testing.T) {
	got := helperEnv([]string{"PATH=/bin", "GRACEFULINIT_NACOS_PASSWORD=x", "nacos_remote_client_rpc_tls_enable=true", "GRACEFULINIT_GRACE_PERIOD=30s"}, "GRACEFULINIT_")
	want := []string{"PATH=/bin", "nacos_remote_client_rpc_tls_enable=true"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("helperEnv = %v, want %v", got, want)
	}
}

// fakeHelper writes a shell script that speaks the helper's side of the
// pipe protocol; onRequest runs for each request line with $id set.
func fakeHelper(t *testing.T, onRequest string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gracefulinit-nacos")
	script := `#!/bin/sh
read cfg || exit 2
case "$cfg" in *'"password":"s3cr3t-pw"'*) ;; *) echo "no password in config" >&2; exit 4 ;; esac
[ -z "$GRACEFULINIT_NACOS_PASSWORD" ] || { echo "gracefulinit's settings leaked into my environment" >&2; exit 5; }
echo 'garbage that is not JSON'
echo '{"level":"WARN","msg":"hello from the helper","registry":"nacos","k":"v"}'
while read req; do
  id=$(echo "$req" | sed 's/.*"id":\([0-9]*\).*/\1/')
  ` + onRequest + `
done
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func helperConfig(helper string) *Options {
	return &Options{
		Service: "svc", IP: "10.0.0.1", Port: 8080, Timeout: 2 * time.Second,
		Addrs: []string{"http://127.0.0.1:8848"}, Mode: "register", Weight: 1,
		Username: "gi", Password: "s3cr3t-pw", Helper: helper, EnvPrefix: "GRACEFULINIT_",
	}
}

// TestHelperClientProtocol drives PID 1's side against a scripted helper:
// the password travels in the configuration line and not the environment,
// replies are matched by id (a stray one is ignored), garbage is skipped,
// the helper's records are logged as ours, and Close lets it exit.
func TestHelperClientProtocol(t *testing.T) {
	t.Setenv("GRACEFULINIT_NACOS_PASSWORD", "s3cr3t-pw")
	h := fakeHelper(t, `echo '{"reply":999}'; echo "{\"reply\":$id}"`)
	var buf testbin.SafeBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := New(*helperConfig(h), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, step := range []struct {
		name string
		call func(context.Context) error
	}{{"online", r.Online}, {"offline", r.Offline}, {"close", r.Close}} {
		if err := step.call(ctx); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
	}
	var hello, garbage map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("our log line is not JSON: %q", line)
		}
		switch m["msg"] {
		case "hello from the helper":
			hello = m
		case "nacos helper: unparsed output":
			garbage = m
		case "nacos helper died; restarting it":
			t.Errorf("a helper closed on request was logged as dead: %v", m)
		}
	}
	if hello == nil || hello["level"] != "WARN" || hello["k"] != "v" || hello["registry"] != "nacos" {
		t.Errorf("the helper's record was not logged as ours (level, attributes): %v\n%s", hello, buf.String())
	}
	if garbage == nil || garbage["level"] != "DEBUG" || garbage["line"] != "garbage that is not JSON" {
		t.Errorf("the garbage line was not skipped with a debug record: %v\n%s", garbage, buf.String())
	}
}

// TestHelperClientDeath: a helper that dies on a request fails that call
// at once, and its death is logged once with the crash line from stderr,
// secrets scrubbed.
func TestHelperClientDeath(t *testing.T) {
	h := fakeHelper(t, `echo 'panic: boom s3cr3t-pw' >&2; echo '  goroutine 1 [running]:' >&2; exit 2`)
	var buf testbin.SafeBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	r, err := New(*helperConfig(h), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.Online(ctx); !errors.Is(err, errHelperDied) {
		t.Fatalf("Online: %v, want %v", err, errHelperDied)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Online took %v to see the helper die", took)
	}
	// No reaper runs in this test process: the status is not collected,
	// and the reason still names the crash.
	poll.Within(context.Background(), 8*time.Second, 50*time.Millisecond, func() bool { return strings.Contains(buf.String(), "nacos helper died") })
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	out := buf.String()
	if n := strings.Count(out, `"msg":"nacos helper died; restarting it"`); n < 1 {
		t.Fatalf("no death line:\n%s", out)
	}
	if !strings.Contains(out, `"reason":"exit status not collected: panic: boom`) {
		t.Errorf("reason lacks the crash line (the panic's, not the last):\n%s", out)
	}
	if strings.Contains(out, "s3cr3t-pw") {
		t.Errorf("the password reached the log:\n%s", out)
	}
}

// scriptHelper writes a fake gracefulinit-nacos: a shell script that
// answers --version as a helper of this test's gracefulinit build does
// (testbin builds without -X: "dev") and otherwise runs body.
func scriptHelper(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gracefulinit-nacos")
	script := "#!/bin/sh\ncase \"$1\" in --version) echo 'gracefulinit-nacos dev (commit )'; exit 0;; esac\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// registerArgs are gracefulinit's flags for register mode with helper,
// against a Nacos address nothing listens on: the helper is what is
// tested, not the registration.
func registerArgs(helper string, app ...string) []string {
	return append([]string{"--log-format", "json", "-v", "--registry", "nacos", "--nacos-mode", "register",
		"--nacos-addr", "http://127.0.0.1:1", "--service", "s", "--ip", "127.0.0.1", "--port", "9",
		"--nacos-helper", helper, "--"}, app...)
}

// TestHelperSIGPIPENotForwarded is issue 20's first repro: a helper that
// dies at start (as the SDK's log.Fatalf on a bad TLS setting makes it)
// turns gracefulinit's write of its configuration into a SIGPIPE raised in
// gracefulinit. Forwarded, it killed the app (exit 141) in about half the
// runs; the app must survive every run.
func TestHelperSIGPIPENotForwarded(t *testing.T) {
	t.Parallel()
	h := scriptHelper(t, `echo "gracefulinit-nacos: TLS setting refused" >&2; exit 3`)
	for i := range 10 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			p := testbin.Start(t, testbin.Options{PID1: true}, registerArgs(h, "sleep", "2")...)
			code := p.Wait(30 * time.Second)
			for _, l := range p.Logs() {
				if l.Str("signal") == "SIGPIPE" {
					t.Errorf("gracefulinit handled a SIGPIPE as a signal for the app: %v", l)
				}
			}
			if code != 0 {
				t.Fatalf("exit code %d, want 0 (the app, sleep 2, untouched)\nstderr:\n%s", code, p.Stderr)
			}
		})
	}
}
