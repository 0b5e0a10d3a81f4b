package javaapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

var listeningRE = regexp.MustCompile(`javaapp listening on (\S+):(\d+)$`)

// startApp runs the example app with extra environment and flags, and waits
// until it logged its bound port.
func startApp(ctx context.Context, t *testing.T, env []string, args ...string) (*javatest.Proc, int) {
	t.Helper()
	cmd, err := javatest.Command(context.Background(), javatest.ExampleAppJar(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), env...)
	p := javatest.StartProc(t, cmd)
	line, err := p.WaitMatch(ctx, "the listening line", listeningRE.MatchString)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(listeningRE.FindStringSubmatch(line)[2])
	return p, port
}

func waitLog(ctx context.Context, t *testing.T, p *javatest.Proc, substr string) {
	t.Helper()
	if _, err := p.WaitLineContaining(ctx, substr); err != nil {
		t.Fatal(err)
	}
}

// requireLogOrder fails unless lines containing each substring appear in
// this order in the app's output.
func requireLogOrder(t *testing.T, p *javatest.Proc, substrs ...string) {
	t.Helper()
	lines := p.Lines()
	i := 0
	for _, s := range substrs {
		for i < len(lines) && !strings.Contains(lines[i], s) {
			i++
		}
		if i == len(lines) {
			t.Fatalf("no log line containing %q in order %q:\n%s", s, substrs, strings.Join(lines, "\n"))
		}
		i++
	}
}

type reply struct {
	code   int
	body   string
	header http.Header
	close  bool // the server asked to close the connection (Go strips that header)
}

func get(ctx context.Context, client *http.Client, u string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, strings.TrimSpace(string(b)), resp.Header, resp.Close}, err
}

func mustGet(ctx context.Context, t *testing.T, u string, wantCode int, wantBody string) reply {
	t.Helper()
	r, err := get(ctx, http.DefaultClient, u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if r.code != wantCode || !strings.Contains(r.body, wantBody) {
		t.Fatalf("GET %s = %d %q; want %d containing %q", u, r.code, r.body, wantCode, wantBody)
	}
	return r
}

func exitCode(ctx context.Context, t *testing.T, p *javatest.Proc) int {
	t.Helper()
	code, err := p.Exit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// eventually polls check every 200 ms until it returns nil or ctx ends.
func eventually(ctx context.Context, what string, check func() error) error {
	var last error
	if poll.Until(ctx, 200*time.Millisecond, func() bool { last = check(); return last == nil }) {
		return nil
	}
	return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), last)
}

// The app binds only when started (like Spring Boot), serves, and on SIGTERM
// turns DOWN, closes its listener, finishes the in-flight request and exits 143.
func TestStartServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	port := freeport.Must(t, "127.0.0.1")
	cmd, err := javatest.Command(context.Background(), javatest.ExampleAppJar(t),
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--start-delay", "1.5", "--shutdown-timeout", "10")
	if err != nil {
		t.Fatal(err)
	}
	p := javatest.StartProc(t, cmd)
	waitLog(ctx, t, p, "javaapp starting")
	sawStarting := time.Now()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The port opens 1.5 s after main began; the "starting" line comes right
	// at the beginning, so an answer within 1 s of it is a premature bind.
	if r, err := get(ctx, http.DefaultClient, base+"/actuator/health"); err == nil && time.Since(sawStarting) < time.Second {
		t.Fatalf("health answered %d %q before the start delay passed", r.code, r.body)
	}
	waitLog(ctx, t, p, "javaapp started in")

	mustGet(ctx, t, base+"/actuator/health", 200, `{"status":"UP"}`)
	mustGet(ctx, t, base+"/actuator/health/readiness", 200, `"UP"`)
	mustGet(ctx, t, base+"/actuator/health/liveness", 200, `"UP"`)
	mustGet(ctx, t, base+"/actuator/info", 200, `"javaapp"`)
	mustGet(ctx, t, base+"/nope", 404, `"Not Found"`)
	r := mustGet(ctx, t, base+"/", 200, fmt.Sprintf("hello from javaapp 127.0.0.1:%d #1", port))
	if got := r.header.Get("X-Instance"); got != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Fatalf("X-Instance = %q", got)
	}

	// An idle kept-alive connection, to be reused after shutdown began.
	keep := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	if r, err := get(ctx, keep, base+"/"); err != nil || r.code != 200 {
		t.Fatalf("keep-alive GET: %v %v", r, err)
	}

	slow := make(chan error, 1)
	slowStart := time.Now()
	go func() {
		r, err := get(ctx, &http.Client{Transport: &http.Transport{}}, base+"/?ms=2500")
		if err == nil && (r.code != 200 || !strings.HasPrefix(r.body, "hello from")) {
			err = fmt.Errorf("slow request answered %d %q", r.code, r.body)
		}
		slow <- err
	}()
	time.Sleep(500 * time.Millisecond) // let the slow request arrive
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(ctx, t, p, "graceful shutdown: stop accepting connections, waiting for 1 active request(s)")

	// New connections are refused once shutdown began.
	if err := eventually(ctx, "listener closed", func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return errors.New("still accepting")
	}); err != nil {
		t.Fatal(err)
	}
	// A request on an already open connection is still served, with
	// Connection: close, and reports the app DOWN.
	if r, err := get(ctx, keep, base+"/actuator/health"); err != nil {
		t.Logf("kept-alive connection after shutdown began: %v", err)
	} else if r.code != 503 || !strings.Contains(r.body, "DOWN") || !r.close {
		t.Fatalf("kept-alive request after shutdown began = %d %q %v; want 503 DOWN, Connection: close", r.code, r.body, r.header)
	}

	if err := <-slow; err != nil {
		t.Fatalf("in-flight request was not finished: %v", err)
	}
	if d := time.Since(slowStart); d < 2500*time.Millisecond {
		t.Fatalf("slow request took %v, want >= 2.5s", d)
	}
	if code := exitCode(ctx, t, p); code != 143 {
		t.Fatalf("exit code %d, want 143", code)
	}
	requireLogOrder(t, p, "starting", "listening", "started in", "shutdown requested: health DOWN",
		"waiting for 1 active", "graceful shutdown complete", "stopped: served")
}

func TestShutdownTimeoutAbandonsRequests(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, port := startApp(ctx, t, nil, "--bind", "127.0.0.1", "--port", "0", "--shutdown-timeout", "1")
	waitLog(ctx, t, p, "started in")
	slow := make(chan error, 1)
	go func() {
		_, err := get(ctx, &http.Client{Transport: &http.Transport{}}, fmt.Sprintf("http://127.0.0.1:%d/?ms=20000", port))
		slow <- err
	}()
	time.Sleep(500 * time.Millisecond)
	sent := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(ctx, t, p); code != 143 {
		t.Fatalf("exit code %d, want 143", code)
	}
	if d := time.Since(sent); d < time.Second || d > 8*time.Second {
		t.Fatalf("exit %v after SIGTERM; want about the 1 s shutdown timeout", d)
	}
	if err := <-slow; err == nil {
		t.Fatal("the abandoned request got a response")
	}
	requireLogOrder(t, p, "waiting for 1 active", "graceful shutdown aborted with 1 active request(s)", "stopped")
}

func TestEarlyBindIsDownWhileStarting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, port := startApp(ctx, t, nil, "--bind", "127.0.0.1", "--port", "0", "--early-bind", "--start-delay", "30")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	mustGet(ctx, t, base+"/actuator/health", 503, `{"status":"DOWN"}`)
	mustGet(ctx, t, base+"/actuator/health/readiness", 503, "OUT_OF_SERVICE")
	mustGet(ctx, t, base+"/actuator/health/liveness", 200, "UP")
	mustGet(ctx, t, base+"/", 503, "Service Unavailable")
	// SIGTERM while starting still exits promptly through the shutdown hook.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(ctx, t, p); code != 143 {
		t.Fatalf("exit code %d, want 143", code)
	}
}

// --register-early opens the port at once and answers 503 until the start
// delay has passed; then the first request to / pays --lazy-init-ms, the
// next ones do not; --work adds CPU work to each, and a large upload is
// read whole on a kept-alive connection.
func TestRegisterEarlyLazyInit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const lazy = 1200 * time.Millisecond
	p, port := startApp(ctx, t, nil, "--bind", "127.0.0.1", "--port", "0", "--register-early", "--start-delay", "2",
		"--lazy-init-ms", strconv.Itoa(int(lazy/time.Millisecond)), "--work", "500")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	mustGet(ctx, t, base+"/", 503, "Service Unavailable")
	waitLog(ctx, t, p, "started in")
	begin := time.Now()
	r := mustGet(ctx, t, base+"/", 200, "hello from")
	if took := time.Since(begin); took < lazy {
		t.Errorf("first request took %v, want at least the %v lazy initialisation", took, lazy)
	}
	if r.header.Get("X-Work") == "" {
		t.Error("no X-Work header: --work did not run")
	}
	begin = time.Now()
	mustGet(ctx, t, base+"/", 200, "hello from")
	if took := time.Since(begin); took >= lazy {
		t.Errorf("second request took %v: the lazy initialisation ran again", took)
	}
	waitLog(ctx, t, p, "lazy initialisation on the first request")
	body := strings.Repeat("x", 512<<10)
	for range 2 {
		resp, err := http.Post(base+"/", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("POST of 512 KiB: %d, close %t; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
	}
}

func TestIgnoreTerm(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, port := startApp(ctx, t, []string{"APP_IGNORE_TERM=true"}, "--bind", "127.0.0.1", "--port", "0")
	waitLog(ctx, t, p, "started in")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(ctx, t, p, "SIGTERM ignored")
	select {
	case <-p.Done():
		t.Fatal("exited on an ignored SIGTERM")
	case <-time.After(500 * time.Millisecond):
	}
	mustGet(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/actuator/health", port), 200, "UP")
	p.Kill()
	if code := exitCode(ctx, t, p); code != 137 {
		t.Fatalf("exit code %d after SIGKILL, want 137", code)
	}
}

// Every flag can come from APP_<FLAG>; a flag on the command line wins.
func TestEnvConfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     []string
		args    []string
		service string
	}{
		{"env only", []string{"APP_BIND=127.0.0.1", "APP_PORT=0", "APP_SERVICE=from-env", "APP_LATENCY_MS=1"}, nil, "from-env"},
		{"flag wins", []string{"APP_BIND=127.0.0.1", "APP_PORT=0", "APP_SERVICE=from-env"}, []string{"--service", "from-flag"}, "from-flag"},
		{"flag=value form", []string{"APP_BIND=127.0.0.1"}, []string{"--port=0", "--service=eq"}, "eq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			p, port := startApp(ctx, t, tt.env, tt.args...)
			waitLog(ctx, t, p, "started in")
			mustGet(ctx, t, fmt.Sprintf("http://127.0.0.1:%d/", port), 200, "hello from "+tt.service+" ")
		})
	}
}

func TestBadFlagsExit2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus", "1"}, "unknown flag --bogus"},
		{"missing value", []string{"--port"}, "--port needs a value"},
		{"not a number", []string{"--start-delay", "soon"}, "--start-delay: want a non-negative number"},
		{"negative", []string{"--shutdown-timeout", "-1"}, "--shutdown-timeout: want a non-negative number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd, err := javatest.Command(ctx, javatest.ExampleAppJar(t), tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tt.want) {
				t.Fatalf("exit %v, output %q; want exit 2 and %q", err, out, tt.want)
			}
		})
	}
}

type nacosHost struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Healthy  bool              `json:"healthy"`
	Enabled  bool              `json:"enabled"`
	Weight   float64           `json:"weight"`
	Metadata map[string]string `json:"metadata"`
}

func nacosHosts(ctx context.Context, s *registrytest.Server, service string) ([]nacosHost, error) {
	q := url.Values{"serviceName": {service}, "healthyOnly": {"false"}}
	r, err := get(ctx, http.DefaultClient, s.NacosAddr+"/nacos/v1/ns/instance/list?"+q.Encode())
	if err != nil {
		return nil, err
	}
	if r.code != 200 {
		return nil, fmt.Errorf("instance list: %d %s", r.code, r.body)
	}
	var list struct {
		Hosts []nacosHost `json:"hosts"`
	}
	err = json.Unmarshal([]byte(r.body), &list)
	return list.Hosts, err
}

func nacosFind(ctx context.Context, s *registrytest.Server, service string, port int) (*nacosHost, error) {
	hosts, err := nacosHosts(ctx, s, service)
	if err != nil {
		return nil, err
	}
	for i, h := range hosts {
		if h.IP == "127.0.0.1" && h.Port == port {
			return &hosts[i], nil
		}
	}
	return nil, nil
}

func eurekaStatus(ctx context.Context, s *registrytest.Server, app, id string) (string, error) {
	r, err := get(ctx, http.DefaultClient, s.EurekaURL+"/apps/"+app+"/"+url.PathEscape(id))
	if err != nil {
		return "", err
	}
	if r.code == 404 {
		return "", nil
	}
	if r.code != 200 {
		return "", fmt.Errorf("GET instance: %d %s", r.code, r.body)
	}
	var v struct {
		Instance struct {
			Status string `json:"status"`
		} `json:"instance"`
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		return "", err
	}
	return v.Instance.Status, nil
}

func do(ctx context.Context, method, u string) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	return nil
}

// The app registers with a real Nacos- and Eureka-protocol server, keeps the
// instance alive with heartbeats past the server's expiry, re-registers when
// the server forgot it, and deregisters on SIGTERM.
func TestRegistriesAgainstPolaris(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	// Polaris drops an instance about 15 s after its last heartbeat.
	const outlive = 20 * time.Second

	type registry struct {
		name       string
		args       func(port int) []string
		present    func(ctx context.Context, port int) error // nil when registered and healthy
		absent     func(ctx context.Context, port int) error // nil when gone
		forget     func(ctx context.Context, port int) error // removes the instance behind the app's back
		registered string
	}
	const nacosSvc, eurekaApp, eurekaID = "javaapp-nacos", "JAVAAPP-EUREKA", "javaapp-test-1"
	registries := []registry{
		{
			name: "nacos",
			args: func(int) []string {
				return []string{"--nacos", s.NacosAddr, "--service", nacosSvc, "--nacos-beat", "1", "--metadata", "version=7"}
			},
			present: func(ctx context.Context, port int) error {
				h, err := nacosFind(ctx, s, "DEFAULT_GROUP@@"+nacosSvc, port)
				switch {
				case err != nil:
					return err
				case h == nil:
					return errors.New("instance not listed")
				case !h.Healthy || !h.Enabled || h.Metadata["version"] != "7":
					return fmt.Errorf("instance listed as %+v", *h)
				}
				return nil
			},
			absent: func(ctx context.Context, port int) error {
				h, err := nacosFind(ctx, s, "DEFAULT_GROUP@@"+nacosSvc, port)
				if err == nil && h != nil {
					return fmt.Errorf("instance still listed: %+v", *h)
				}
				return err
			},
			forget: func(ctx context.Context, port int) error {
				q := url.Values{"serviceName": {"DEFAULT_GROUP@@" + nacosSvc}, "ip": {"127.0.0.1"},
					"port": {strconv.Itoa(port)}, "ephemeral": {"true"}}
				return do(ctx, http.MethodDelete, s.NacosAddr+"/nacos/v1/ns/instance?"+q.Encode())
			},
			registered: "nacos registered DEFAULT_GROUP@@" + nacosSvc,
		},
		{
			name: "eureka",
			args: func(int) []string {
				return []string{"--eureka", s.EurekaURL + "/", "--app", strings.ToLower(eurekaApp), "--instance-id", eurekaID, "--eureka-heartbeat", "1"}
			},
			present: func(ctx context.Context, _ int) error {
				st, err := eurekaStatus(ctx, s, eurekaApp, eurekaID)
				if err == nil && st != "UP" {
					err = fmt.Errorf("status %q, want UP", st)
				}
				return err
			},
			absent: func(ctx context.Context, _ int) error {
				st, err := eurekaStatus(ctx, s, eurekaApp, eurekaID)
				if err == nil && st != "" {
					err = fmt.Errorf("instance still there with status %q", st)
				}
				return err
			},
			forget: func(ctx context.Context, _ int) error {
				return do(ctx, http.MethodDelete, s.EurekaURL+"/apps/"+eurekaApp+"/"+eurekaID)
			},
			registered: "eureka registered " + eurekaApp + "/" + eurekaID + " status=UP",
		},
	}
	for _, reg := range registries {
		t.Run(reg.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			p, port := startApp(ctx, t, nil, append([]string{"--bind", "127.0.0.1", "--port", "0"}, reg.args(0)...)...)
			waitLog(ctx, t, p, reg.registered)
			registeredAt := time.Now()
			waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
			defer waitCancel()
			if err := eventually(waitCtx, "registered", func() error { return reg.present(ctx, port) }); err != nil {
				t.Fatal(err)
			}

			// Removed behind its back, the app notices on a heartbeat and registers again.
			if err := reg.forget(ctx, port); err != nil {
				t.Fatal(err)
			}
			waitLog(ctx, t, p, reg.name+" heartbeat: instance not found")
			reCtx, reCancel := context.WithTimeout(ctx, 15*time.Second)
			defer reCancel()
			if err := eventually(reCtx, "a second registration", func() error {
				n := 0
				for _, l := range p.Lines() {
					if strings.Contains(l, reg.registered) {
						n++
					}
				}
				if n < 2 {
					return fmt.Errorf("%d registration(s) logged", n)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := eventually(reCtx, "registered again", func() error { return reg.present(ctx, port) }); err != nil {
				t.Fatal(err)
			}

			// Heartbeats keep it registered past the server's expiry.
			time.Sleep(time.Until(registeredAt.Add(outlive)))
			if err := reg.present(ctx, port); err != nil {
				t.Fatalf("after %v of heartbeats: %v", outlive, err)
			}

			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			waitLog(ctx, t, p, reg.name+" deregistered")
			if code := exitCode(ctx, t, p); code != 143 {
				t.Fatalf("exit code %d, want 143", code)
			}
			goneCtx, goneCancel := context.WithTimeout(ctx, 10*time.Second)
			defer goneCancel()
			if err := eventually(goneCtx, "deregistered", func() error { return reg.absent(ctx, port) }); err != nil {
				t.Fatal(err)
			}
			requireLogOrder(t, p, reg.registered, "shutdown requested", reg.name+" deregistered", "graceful shutdown complete", "stopped")
		})
	}
}
