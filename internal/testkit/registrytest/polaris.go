// Package registrytest runs a real Polaris server (Nacos HTTP v1 + gRPC and
// Eureka protocols) for tests and test harnesses. No Java Nacos or Eureka
// server can be installed offline; Polaris v1.18.1 builds from the Go module
// proxy and speaks both protocols (see /work/shared/reference/test-bed.md).
//
// Tests call StartPolaris; programs that are not tests (the rollout harness)
// call FindPolaris and Launch.
package registrytest

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// PolarisVersion is the only Polaris version the module proxy serves.
const PolarisVersion = "v1.18.1"

// GRPCOffset is the fixed distance between the Nacos HTTP port and the Nacos
// gRPC port; nacos-sdk-go derives the gRPC port the same way.
const GRPCOffset = 1000

// configTemplate is a copy of testdata/registry/polaris.yaml.tmpl, embedded so
// Launch works from any working directory; TestTemplateInSync keeps the two equal.
//
//go:embed polaris.yaml.tmpl
var configTemplate string

// Server is one running (or stopped) Polaris process.
type Server struct {
	NacosAddr  string // "http://127.0.0.1:P"
	NacosPort  int    // HTTP port; gRPC is NacosPort+GRPCOffset
	EurekaURL  string // "http://127.0.0.1:E/eureka"
	EurekaPort int
	Dir        string // working dir: config, boltdb state, logs

	binary string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Launch writes the config for the given ports into dir (created if needed),
// starts binary there and returns once both the Nacos and the Eureka APIs
// answer, or an error (the process is killed) when ctx ends first or the
// process exits. The caller must Stop the server. The process gets SIGKILL if
// the calling program dies, so a crashed harness leaves no server behind.
func Launch(ctx context.Context, binary, dir string, nacosPort, eurekaPort int) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := strings.NewReplacer(
		"__NACOS_PORT__", strconv.Itoa(nacosPort),
		"__EUREKA_PORT__", strconv.Itoa(eurekaPort),
	).Replace(configTemplate)
	if err := os.WriteFile(filepath.Join(dir, "polaris.yaml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s := &Server{
		NacosAddr:  fmt.Sprintf("http://127.0.0.1:%d", nacosPort),
		NacosPort:  nacosPort,
		EurekaURL:  fmt.Sprintf("http://127.0.0.1:%d/eureka", eurekaPort),
		EurekaPort: eurekaPort,
		Dir:        dir,
		binary:     binary,
	}
	if err := s.Relaunch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Relaunch starts the server again on the same ports and dir (its state
// survives) after Stop, and waits until it answers like Launch.
func (s *Server) Relaunch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("registrytest: polaris is already running")
	}
	out, err := os.OpenFile(filepath.Join(s.Dir, "polaris.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child keeps its own descriptor
	cmd := exec.Command(s.binary, "start", "-c", "polaris.yaml")
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("registrytest: start polaris: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(ctx, cmd.Process.Pid, done); err != nil {
		s.killLocked()
		return fmt.Errorf("registrytest: polaris on nacos :%d eureka :%d in %s: %w", s.NacosPort, s.EurekaPort, s.Dir, err)
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, pid int, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	probes := []string{
		s.NacosAddr + "/nacos/v1/ns/instance/list?serviceName=registrytest-probe",
		s.EurekaURL + "/apps",
	}
	grpcAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.NacosPort+GRPCOffset))
	var last error
	for {
		last = nil
		for _, u := range probes {
			if err := probe(ctx, client, u); err != nil {
				last = err
				break
			}
		}
		if last == nil {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", grpcAddr)
			if err == nil {
				c.Close()
				// Answers prove little if another process holds a port
				// (Polaris logs the bind error and exits 0 a moment later).
				last = ownsListeners(pid, s.NacosPort, s.NacosPort+GRPCOffset, s.EurekaPort)
				if last == nil {
					return nil
				}
			} else {
				last = err
			}
		}
		select {
		case <-done:
			return fmt.Errorf("exited before it answered (see %s): last probe: %v", filepath.Join(s.Dir, "polaris.out"), last)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w; last probe: %v", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ownsListeners checks through /proc that process pid holds the listening
// sockets on 127.0.0.1 for all ports.
func ownsListeners(pid int, ports ...int) error {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return err
	}
	owned := map[int]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
			owned[int(p)] = true
		}
	}
	for _, p := range ports {
		if !owned[p] {
			return fmt.Errorf("port %d is not held by polaris (pid %d): taken by another process?", p, pid)
		}
	}
	return nil
}

func probe(ctx context.Context, client *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// Stop kills the server with SIGKILL and waits for it, to simulate a server
// that is suddenly down. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		// Reaped already: its group id may be someone else's now.
	default:
		// The whole group, in case a future version forks helpers.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Running reports whether the server process is started and not yet exited.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Start starts a stopped server again on the same ports and dir, the way a
// registry comes back after an outage; t.Fatal if it does not come up.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.Relaunch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Logs returns the tail (up to max bytes each) of the server's stdout and log
// files, for failure reports.
func (s *Server) Logs(max int) string {
	var b bytes.Buffer
	files := []string{filepath.Join(s.Dir, "polaris.out")}
	more, _ := filepath.Glob(filepath.Join(s.Dir, "log", "*.log"))
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > max {
			data = data[len(data)-max:]
		}
		fmt.Fprintf(&b, "==== %s ====\n%s\n", f, data)
	}
	return b.String()
}

// StartPolaris starts a fresh Polaris on free loopback ports in a temp dir and
// registers cleanup (SIGKILL; server logs are printed if the test failed).
func StartPolaris(t testing.TB) *Server {
	t.Helper()
	bin := PolarisBinary(t)
	dir := t.TempDir()
	var lastErr error
	// Ports are free when picked but can be taken before Polaris binds them
	// (other packages' tests run in parallel): try a few sets.
	for attempt := 0; attempt < 5; attempt++ {
		nacos, eureka, err := FreePorts()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		s, err := Launch(ctx, bin, filepath.Join(dir, fmt.Sprintf("polaris-%d", attempt)), nacos, eureka)
		cancel()
		if err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("polaris logs (%s):\n%s", s.Dir, s.Logs(8<<10))
				}
			})
			return s
		}
		lastErr = err
	}
	t.Fatalf("polaris did not start: %v", lastErr)
	return nil
}

// Ports are picked below the kernel's ephemeral range (32768 and up by
// default) so outgoing connections cannot grab them between Stop and Start.
const (
	portLow  = 20000
	portHigh = 32767 - GRPCOffset
)

// FreePorts returns a Nacos HTTP port P whose gRPC twin P+1000 is also free,
// and a different free port for Eureka, all on 127.0.0.1 and reserved with
// freeport until the process exits (a Polaris may be stopped and started
// again on the same ports).
func FreePorts() (nacos, eureka int, err error) {
	for i := 0; i < 200; i++ {
		p := portLow + rand.IntN(portHigh-portLow)
		if nacos == 0 {
			if reserve(p) && reserve(p+GRPCOffset) {
				nacos = p
			}
			continue
		}
		if p != nacos && p != nacos+GRPCOffset && reserve(p) {
			return nacos, p, nil
		}
	}
	return 0, 0, errors.New("registrytest: no free loopback ports found")
}

// reserve holds port for the rest of the process if it is free on
// 127.0.0.1 and reservable (see freeport.Reserve).
func reserve(port int) bool {
	release, ok := freeport.Reserve(port)
	if ok && !freeport.Free("127.0.0.1", port) {
		release()
		return false
	}
	return ok
}

// PolarisBinary returns the cached Polaris server binary, building it with
// scripts/build-polaris.sh when missing (a cold build takes about 80 s);
// t.Fatal if that fails.
func PolarisBinary(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin, err := FindPolaris(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// CachedPolarisPath is where scripts/build-polaris.sh puts the binary:
// ${GI_CACHE:-$HOME/.cache/gracefulinit}/polaris-v1.18.1/polaris-server.
func CachedPolarisPath() string {
	cache := os.Getenv("GI_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			home = "/root"
		}
		cache = filepath.Join(home, ".cache", "gracefulinit")
	}
	return filepath.Join(cache, "polaris-"+PolarisVersion, "polaris-server")
}

// FindPolaris returns the cached binary, or runs the repository's
// scripts/build-polaris.sh (see repo.Root) and returns the path it prints.
func FindPolaris(ctx context.Context) (string, error) {
	if p := CachedPolarisPath(); isExecutable(p) {
		return p, nil
	}
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "build-polaris.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("registrytest: scripts/build-polaris.sh: %v\n%s", err, tail(stderr.String(), 4<<10))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	bin := strings.TrimSpace(lines[len(lines)-1])
	if !isExecutable(bin) {
		return "", fmt.Errorf("registrytest: scripts/build-polaris.sh printed %q, not an executable", bin)
	}
	return bin, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
