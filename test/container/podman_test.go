package container_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// podman runs the podman CLI against the private configuration written by
// scripts/podman-setup.sh, never the machine's own /etc/containers state.
type podman struct {
	env []string
}

// setupPodman installs podman (and the image's test tools) if needed and
// returns a client bound to the private config. The store lives in the cache
// so the JRE base image survives between runs.
func setupPodman(t *testing.T) *podman {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repo.CacheDir(), "podman")
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "podman-setup.sh"), "--test-deps", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("podman-setup.sh: %v\n%s", err, stderr.String())
	}
	p := &podman{env: os.Environ()}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		kv, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		// The script quotes with printf %q; our paths need no quoting, and
		// a quoted one would be a path we did not choose.
		if strings.ContainsAny(kv, `'"\ `) {
			t.Fatalf("podman-setup.sh printed a quoted value, not supported here: %s", kv)
		}
		p.env = append(p.env, kv)
	}
	if len(p.env) != len(os.Environ())+2 {
		t.Fatalf("podman-setup.sh printed no CONTAINERS_CONF/CONTAINERS_STORAGE_CONF:\n%s", out)
	}
	// Buildah keeps RUN --mount=type=cache directories under $TMPDIR
	// (default /var/tmp): keep them with the rest of the private state.
	p.env = append(p.env, "TMPDIR="+filepath.Join(dir, "tmp"))
	return p
}

// run runs podman with args, bounded by timeout, and returns stdout and
// stderr separately: podman's own warnings (e.g. that stop resorted to
// SIGKILL) go to stderr.
func (p *podman) run(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = p.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

// must is run for calls that cannot fail in a working setup.
func (p *podman) must(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, _, err := p.run(timeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// container is one podman container under test, removed at cleanup.
type container struct {
	p    *podman
	name string
	id   string
}

// runOpts describe a podman run. entrypoint, when set, replaces the image's
// (and with it the image's CMD).
type runOpts struct {
	env        []string
	entrypoint []string
	cmd        []string
	volumes    []string // podman -v HOST:CONTAINER
}

func (p *podman) start(t *testing.T, image string, o runOpts) *container {
	t.Helper()
	name := "gi-test-" + randomSuffix(t)
	args := []string{"run", "-d", "--name", name, "--network", "none"}
	for _, e := range o.env {
		args = append(args, "-e", e)
	}
	for _, v := range o.volumes {
		args = append(args, "-v", v)
	}
	if o.entrypoint != nil {
		// podman takes a JSON array here for an exec-form entrypoint.
		ep, err := json.Marshal(o.entrypoint)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--entrypoint", string(ep))
	}
	args = append(args, image)
	args = append(args, o.cmd...)
	out, _, err := p.run(time.Minute, args...)
	c := &container{p: p, name: name, id: strings.TrimSpace(out)}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _, _ := p.run(30*time.Second, "logs", name)
			t.Logf("podman logs %s:\n%s", name, logs)
		}
		if _, _, err := p.run(time.Minute, "rm", "-f", "-t", "0", name); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logs returns the container's stdout and stderr, interleaved as podman
// stored them.
func (c *container) logs(t *testing.T) string {
	t.Helper()
	out, errOut, err := c.p.run(30*time.Second, "logs", c.name)
	if err != nil {
		t.Fatal(err)
	}
	return out + errOut
}

// waitLog waits until a line containing substr appears in the logs.
func (c *container) waitLog(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	var line, logs string
	found := poll.Within(context.Background(), timeout, 200*time.Millisecond, func() bool {
		logs = c.logs(t)
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, substr) {
				line = l
				return true
			}
		}
		return false
	})
	if !found {
		t.Fatalf("no %q in the logs of %s after %s:\n%s", substr, c.name, timeout, logs)
	}
	return line
}

// stop runs podman stop -t secs and reports when it started, how long it
// took and podman's stderr.
func (c *container) stop(t *testing.T, secs int) (start time.Time, took time.Duration, stderr string) {
	t.Helper()
	start = time.Now()
	_, stderr, err := c.p.run(time.Duration(secs+60)*time.Second, "stop", "-t", strconv.Itoa(secs), c.name)
	took = time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	return start, took, stderr
}

func (c *container) inspect(t *testing.T, format string) string {
	t.Helper()
	return strings.TrimSpace(c.p.must(t, 30*time.Second, "inspect", "--format", format, c.name))
}

// proc is one row of podman top.
type proc struct {
	pid, ppid, hpid int
	state, comm     string
}

// top lists the processes in the container: pid in its namespace, host pid,
// state letter (Z for zombies) and command name.
func (c *container) top(t *testing.T) []proc {
	t.Helper()
	out := c.p.must(t, 30*time.Second, "top", c.name, "pid", "ppid", "hpid", "state", "comm")
	var procs []proc
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 5 {
			continue
		}
		var p proc
		var err error
		if p.pid, err = strconv.Atoi(f[0]); err != nil {
			t.Fatalf("podman top line %q: %v", line, err)
		}
		p.ppid, _ = strconv.Atoi(f[1])
		p.hpid, _ = strconv.Atoi(f[2])
		p.state, p.comm = f[3], strings.Join(f[4:], " ")
		procs = append(procs, p)
	}
	return procs
}

// assertGone checks the container exited and none of the host processes
// seen in it earlier still exist (a reused pid is told apart by its cgroup,
// which names the container id).
func (c *container) assertGone(t *testing.T, seen []proc) {
	t.Helper()
	if st := c.inspect(t, "{{.State.Status}}"); st != "exited" {
		t.Errorf("container state %q, want exited", st)
	}
	for _, p := range seen {
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.hpid))
		if err == nil && strings.Contains(string(cg), c.id) {
			t.Errorf("process %d (%s, host pid %d) outlived its container", p.pid, p.comm, p.hpid)
		}
	}
	// Any other process still in the container's cgroup escaped the list.
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && strings.Contains(string(cg), c.id) {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			t.Errorf("host process %s (%s) is still in the exited container's cgroup", e.Name(), strings.TrimSpace(string(comm)))
		}
	}
}
