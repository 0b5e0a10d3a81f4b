package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/proctree"
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
	// All runs at once: they wait, they do not compute.
	var runs []*testbin.Proc
	for range 10 {
		runs = append(runs, testbin.Start(t, testbin.Options{PID1: true}, registerArgs(h, "sleep", "2")...))
	}
	for i, p := range runs {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
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

// helperCopies counts the running copies (zombies aside) of the script
// helper at path: processes whose first or second argument is path
// (sh runs it as "/bin/sh path").
func helperCopies(path string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if args[0] != path && (len(args) < 2 || args[1] != path) {
			continue
		}
		if st := proctree.State(pid); st != "" && st != "Z" {
			n++
		}
	}
	return n
}

// answerLoop answers every request of the protocol with success.
const answerLoop = `while read req; do id=$(echo "$req" | sed 's/.*"id":\([0-9]*\).*/\1/'); echo "{\"reply\":$id}"; done`

// TestHelperLeakedCopies is issue 20's second repro: a helper that breaks
// its stdout but runs on (a line over the protocol's 1 MiB bound, or
// stdout closed) was declared dead and never killed: copies piled up at
// every restart (5 to 6 after 12 s), and outside PID 1 they outlived
// gracefulinit. Now it is killed, reaped, then restarted: one copy at a
// time, none after gracefulinit exits, inside and outside PID 1. The same
// holds for a helper that closes its stderr and runs on.
func TestHelperLeakedCopies(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, body, killedFor string }{
		{"stdout line over 1 MiB", `read cfg
head -c 1100000 /dev/zero | tr '\0' x
echo
while :; do sleep 1; done`, "line over"},
		{"stdout closed", `read cfg
exec >&-
while :; do sleep 1; done`, "closed its stdout"},
		{"stderr closed", `read cfg
exec 2>&-
while :; do sleep 1; done`, "closed its stderr"},
	}
	// All at once, sampled together: they wait, they do not compute.
	type run struct {
		name, helper, killedFor string
		p                       *testbin.Proc
		most                    int // copies seen at once
	}
	var runs []*run
	for _, tc := range cases {
		for _, pid1 := range []bool{true, false} {
			h := scriptHelper(t, tc.body)
			runs = append(runs, &run{name: fmt.Sprintf("%s/pid1=%v", tc.name, pid1), helper: h, killedFor: tc.killedFor,
				p: testbin.Start(t, testbin.Options{PID1: pid1}, registerArgs(h, "sleep", "5")...)})
		}
	}
	for running := true; running; time.Sleep(100 * time.Millisecond) {
		running = false
		for _, r := range runs {
			if !r.p.Exited() {
				running = true
				r.most = max(r.most, helperCopies(r.helper))
			}
		}
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			p := r.p
			if code := p.Wait(time.Second); code != 0 {
				t.Errorf("exit code %d, want 0 (the app, sleep 5, untouched)", code)
			}
			if r.most > 1 {
				t.Errorf("%d copies of the helper ran at once, want at most 1", r.most)
			}
			var deaths []string
			for _, l := range p.Logs() {
				if l.Str("msg") == "nacos helper died; restarting it" {
					deaths = append(deaths, l.Str("reason"))
				}
			}
			if len(deaths) < 2 {
				t.Fatalf("%d deaths logged in 5 s, want the helper restarted at least twice\nstderr:\n%s", len(deaths), p.Stderr)
			}
			for _, d := range deaths {
				if !strings.Contains(d, "killed by signal 9") || !strings.Contains(d, r.killedFor) {
					t.Errorf("death reason %q: want the SIGKILL gracefulinit sent and why (%q)", d, r.killedFor)
				}
			}
			if !testbin.WaitFor(context.Background(), 3*time.Second, func() bool { return helperCopies(r.helper) == 0 }) {
				t.Errorf("%d copies of the helper outlived gracefulinit", helperCopies(r.helper))
			}
		})
	}
}

// TestHelperLongStderrLine is issue 20's third repro: a stderr line over
// 64 KiB made PID 1 close the helper's stderr, and the helper died of
// SIGPIPE at its next write, at every restart. Now the line is cut and
// the pipe read on.
func TestHelperLongStderrLine(t *testing.T) {
	t.Parallel()
	h := scriptHelper(t, `read cfg
head -c 100000 /dev/zero | tr '\0' e >&2
echo >&2
sleep 0.3
echo "helper still alive after its long line" >&2
`+answerLoop)
	p := testbin.Start(t, testbin.Options{PID1: true}, registerArgs(h, "sleep", "2")...)
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	var alive, cut, warned bool
	for _, l := range p.Logs() {
		switch {
		case strings.HasPrefix(l.Str("msg"), "nacos helper: a line of its stderr is over the limit") && l.Str("level") == "WARN":
			warned = true
		case l.Str("msg") == "nacos helper died; restarting it":
			t.Errorf("the helper died: %s", l.Str("reason"))
		case l.Str("msg") == "nacos helper stderr" && l.Str("line") == "helper still alive after its long line":
			alive = true
		case l.Str("msg") == "nacos helper stderr" && l["cut"] == true:
			cut = true
			if n := len(l.Str("line")); n > 8<<10 {
				t.Errorf("a cut stderr line relayed with %d bytes", n)
			}
		}
	}
	if !alive || !cut || !warned {
		t.Errorf("relayed: the long line cut %v, the next line %v, a WARN about the cut %v; want all\nstderr:\n%s", cut, alive, warned, p.Stderr)
	}
}

// TestHelperLogFlood is issue 20's fourth repro: a helper writing 100 MB
// of log records had every one relayed (2.08 M lines, 96% of a core).
// Now records beyond the rate are dropped and counted, and a line says
// how many; the app is untouched.
func TestHelperLogFlood(t *testing.T) {
	t.Parallel()
	h := scriptHelper(t, `read cfg
yes '{"level":"INFO","msg":"flood","registry":"nacos","n":12345}' | head -c 100000000
`+answerLoop)
	start := time.Now()
	p := testbin.Start(t, testbin.Options{PID1: true}, registerArgs(h, "sleep", "3")...)
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0 (the app, sleep 3, untouched)", code)
	}
	took := time.Since(start)
	relayed, dropped := 0, 0.0
	for _, l := range p.Logs() {
		switch l.Str("msg") {
		case "flood":
			relayed++
		case "nacos helper: log lines dropped over the relay's limit":
			dropped += l.Num("dropped")
		}
	}
	limit := int(helperLimits.recordBurst + helperLimits.recordRate*took.Seconds())
	t.Logf("relayed %d records, dropped %.0f, in %v", relayed, dropped, took.Round(time.Millisecond))
	if relayed == 0 || relayed > limit {
		t.Errorf("relayed %d flood records, want 1 to %d (burst %v + %v/s for %v)", relayed, limit, helperLimits.recordBurst, helperLimits.recordRate, took.Round(time.Millisecond))
	}
	if dropped < 1000 {
		t.Errorf("the drop report counts %.0f records, want the flood's (thousands)", dropped)
	}
}

// TestHelperLogRedacted is issue 20's fourth repro, second part: a helper
// record holding the Nacos password was printed as is.
func TestHelperLogRedacted(t *testing.T) {
	t.Parallel()
	const pw = "s3cr3t-pw"
	h := scriptHelper(t, `read cfg
echo '{"level":"WARN","msg":"login refused for `+pw+`","password":"`+pw+`","url":"http://nacos:`+pw+`@10.0.0.1:8848/nacos","detail":{"query":"password=`+pw+`"}}'
`+answerLoop)
	p := testbin.Start(t, testbin.Options{PID1: true, Env: []string{"GRACEFULINIT_NACOS_USERNAME=nacos", "GRACEFULINIT_NACOS_PASSWORD=" + pw}}, registerArgs(h, "sleep", "1")...)
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if strings.Contains(p.Stderr.String(), pw) {
		t.Errorf("the password reached gracefulinit's log:\n%s", p.Stderr)
	}
	found := false
	for _, l := range p.Logs() {
		if strings.HasPrefix(l.Str("msg"), "login refused for ") {
			found = true
		}
	}
	if !found {
		t.Errorf("the helper's record was not relayed at all:\n%s", p.Stderr)
	}
}

// TestHelperVersionMismatch: gracefulinit and gracefulinit-nacos are
// copied separately; register mode refuses, before the app starts, a
// helper from another release with one line naming both versions, and
// runs with one from its own. Real builds stamped as the Makefile does.
func TestHelperVersionMismatch(t *testing.T) {
	t.Parallel()
	init := testbin.BuildVersion(t, "./cmd/gracefulinit ./cmd/gracefulinit-nacos", "v9.1.0")
	same := filepath.Join(filepath.Dir(init), HelperName)
	older := testbin.BuildVersion(t, "./cmd/gracefulinit-nacos", "v9.0.0")
	cases := []struct {
		name, helper string
		want         []string // in the one line; nil: the app runs
	}{
		{"same release", same, nil},
		{"older release", older, []string{older, "version v9.0.0", "gracefulinit is version v9.1.0", "copy gracefulinit-nacos"}},
		{"not a helper", notHelper(t), []string{"not a gracefulinit-nacos", "v9.1.0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			marker := filepath.Join(t.TempDir(), "app-ran")
			args := registerArgs(tc.helper, "touch", marker)
			args = args[3:] // without --log-format json -v: the refusal is the only output
			p := testbin.Start(t, testbin.Options{PID1: true, Binary: init}, args...)
			code := p.Wait(30 * time.Second)
			_, err := os.Stat(marker)
			ran := err == nil
			if tc.want == nil {
				if code != 0 || !ran {
					t.Fatalf("exit code %d, app ran %v: want 0 and the app run\nstderr:\n%s", code, ran, p.Stderr)
				}
				return
			}
			if code == 0 || ran {
				t.Fatalf("exit code %d, app ran %v: want a refusal before the app starts\nstderr:\n%s", code, ran, p.Stderr)
			}
			out := strings.TrimSpace(p.Stderr.String())
			if strings.Contains(out, "\n") {
				t.Errorf("the refusal spans lines:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("refusal %q lacks %q", out, w)
				}
			}
		})
	}
}

// notHelper writes an executable that is no gracefulinit-nacos: it
// answers --version with another program's line.
func notHelper(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gracefulinit-nacos")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho 'BusyBox v1.36.1 multi-call binary'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRelayRateAndDropReport: records beyond the relay's rate are
// dropped, counted, and the count is logged (at close here, every
// dropReport otherwise); the relayed ones are redacted, also where a
// JSON escape spells the password.
func TestRelayRateAndDropReport(t *testing.T) {
	var buf testbin.SafeBuffer
	rl := newRelay(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "s3cr3t-pw")
	start := time.Now()
	const n = 5000
	for i := range n {
		rl.offer(relayRecord, []byte(fmt.Sprintf(`{"level":"INFO","msg":"rec %d s\u0033cr3t-pw","password":"s3cr3t-pw"}`, i)), false)
	}
	took := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl.close(ctx)
	relayed, dropped := 0, 0.0
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		switch msg, _ := m["msg"].(string); {
		case strings.HasPrefix(msg, "rec "):
			relayed++
		case msg == "nacos helper: log lines dropped over the relay's limit":
			dropped += m["dropped"].(float64)
		}
	}
	limit := int(helperLimits.recordBurst + helperLimits.recordRate*took.Seconds() + 1)
	if relayed < 1 || relayed > limit {
		t.Errorf("relayed %d of %d records offered in %v, want 1 to %d", relayed, n, took, limit)
	}
	if relayed+int(dropped) != n {
		t.Errorf("relayed %d + dropped %.0f != %d offered: the count is off", relayed, dropped, n)
	}
	if strings.Contains(buf.String(), "s3cr3t-pw") {
		t.Errorf("the password was relayed:\n%s", buf.String())
	}
}
