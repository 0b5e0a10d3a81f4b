package container_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
)

// testLifecycle runs the Kubernetes-facing features in a real container:
// the health endpoint a readinessProbe polls, the termination message, the
// thread dump before the kill, and HTTP offline/online hooks against the
// test app's Dubbo-QoS-like port, one of them hanging.
func testLifecycle(t *testing.T, p *podman, img images) {
	// podman stop -t 10 and --grace-period 10s: the kill point is at 8 s.
	timeline := []string{"--grace-period=10s", "--kill-margin=2s", "--stop-timeout=5s"}
	const qos = "http://127.0.0.1:22222"

	t.Run("health follows the registry, termination log", func(t *testing.T) {
		t.Parallel()
		tlog := filepath.Join(t.TempDir(), "termination-log")
		if err := os.WriteFile(tlog, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		c := p.start(t, img.app, runOpts{
			entrypoint: slices.Concat([]string{"/gracefulinit"}, timeline, []string{
				"--drain=3s", "--drain-quiet=0", "--health-addr=127.0.0.1:8558", "--ready-http=http://127.0.0.1:8080/",
				"--online-http=GET " + qos + "/online", "--offline-http=GET " + qos + "/offline", "--"}),
			cmd:     jvm("--qos-port=22222", "--qos-online-after-ms=5000"),
			volumes: []string{tlog + ":/dev/termination-log"},
		})
		c.waitLog(t, readyLine, startSlack)
		// Ready, but the "registry" refuses the online step for a while:
		// a readinessProbe must keep the pod out of the Service.
		c.waitLog(t, "qos online GET refused", startSlack)
		if code, body := c.probe(t, "/ready"); code != 503 || body != "starting" {
			t.Fatalf("/ready while the online step is refused: %d %q, want 503 starting", code, body)
		}
		if code, _ := c.probe(t, "/live"); code != 200 {
			t.Errorf("/live = %d, want 200", code)
		}
		if !poll.Within(context.Background(), 30*time.Second, 250*time.Millisecond, func() bool {
			code, _ := c.probe(t, "/ready")
			return code == 200
		}) {
			t.Fatalf("/ready never became 200 after the online step succeeded:\n%s", c.logs(t))
		}
		c.waitLog(t, "qos online GET t=", 5*time.Second)

		// SIGTERM: /ready is 503 at once, while the drain still runs.
		c.p.must(t, 30*time.Second, "kill", "--signal", "TERM", c.name)
		if !poll.Within(context.Background(), 2*time.Second, 100*time.Millisecond, func() bool {
			code, body := c.probe(t, "/ready")
			return code == 503 && body == "stopping"
		}) {
			t.Fatalf("/ready did not turn 503 within the drain after SIGTERM")
		}
		c.waitLog(t, "qos offline GET", 5*time.Second)
		c.wait(t, 30*time.Second)

		b, err := os.ReadFile(tlog)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(b)
		t.Logf("termination message: %s", msg)
		sum := logFields(msg)
		if !strings.Contains(msg, `msg="shutdown summary"`) || sum["offline"] != "ok" || sum["killed"] != "false" ||
			sum["exit_code"] != "0" || len(b) > 4096 || strings.Count(msg, "\n") != 1 {
			t.Errorf("termination message %q: want one line, the summary with offline=ok killed=false exit_code=0", msg)
		}
	})

	t.Run("thread dump before the kill", func(t *testing.T) {
		t.Parallel()
		c := p.start(t, img.app, runOpts{
			entrypoint: slices.Concat([]string{"/gracefulinit"}, timeline, []string{"--dump-signal=QUIT", "--dump-before=3s", "--"}),
			cmd:        jvm("--ignore-term"),
		})
		c.waitLog(t, readyLine, startSlack)
		_, took, stopErr := c.stop(t, 10)
		logs := c.logs(t)
		if !strings.Contains(logs, "Full thread dump") {
			t.Errorf("no thread dump in the app's output:\n%s", logs)
		}
		if strings.Contains(stopErr, podmanKilled) || took >= 10*time.Second {
			t.Errorf("podman had to kill (stop took %s): gracefulinit must exit before the deadline", took)
		}
		sum := logFields(findLine(logs, summaryLine))
		if sum["dumped"] != "true" || sum["killed"] != "true" || sum["exit_code"] != "137" {
			t.Errorf("summary %v: want dumped=true killed=true exit_code=137", sum)
		}
		if got, _ := strconv.Atoi(c.inspect(t, "{{.State.ExitCode}}")); got != 137 {
			t.Errorf("exit code %d, want 137", got)
		}
	})

	t.Run("hanging offline hook", func(t *testing.T) {
		t.Parallel()
		c := p.start(t, img.app, runOpts{
			env: []string{"GRACEFULINIT_REMAP_EXIT="},
			entrypoint: slices.Concat([]string{"/gracefulinit"}, timeline, []string{
				"--drain=2s", "--drain-quiet=0", "--registry-timeout=1s", "--offline-http=GET " + qos + "/hang", "--"}),
			cmd: jvm("--qos-port=22222"),
		})
		c.waitLog(t, readyLine, startSlack)
		_, took, stopErr := c.stop(t, 10)
		logs := c.logs(t)
		if findLine(logs, "qos hang") == "" {
			t.Errorf("the offline hook never reached the app's QoS port")
		}
		sum := logFields(findLine(logs, summaryLine))
		if !strings.HasPrefix(sum["offline"], "failed") || sum["killed"] != "false" || sum["exit_code"] != "143" {
			t.Errorf("summary %v: want offline=failed..., killed=false, the JVM's 143", sum)
		}
		if strings.Contains(stopErr, podmanKilled) || took >= 8*time.Second {
			t.Errorf("stop took %s: a hanging hook must not hold the stop", took)
		}
	})
}

// probe GETs path on the health endpoint, in the container's network
// namespace (--network none: the host cannot reach it otherwise), and
// returns the status and body; 0 and the error when no answer came.
func (c *container) probe(t *testing.T, path string) (int, string) {
	t.Helper()
	pid, err := strconv.Atoi(c.inspect(t, "{{.State.Pid}}"))
	if err != nil || pid <= 0 {
		return 0, fmt.Sprintf("container not running (pid %v)", pid)
	}
	hc := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
				return dialInNetns(pid, network, addr)
			},
		},
	}
	resp, err := hc.Get("http://127.0.0.1:8558" + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// dialInNetns connects from inside pid's network namespace: a thread of
// its own joins it, creates the socket there, and is never reused (a
// goroutine that exits while locked takes its thread with it).
func dialInNetns(pid int, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// wait blocks until the container has exited.
func (c *container) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	c.p.must(t, timeout, "wait", c.name)
}
