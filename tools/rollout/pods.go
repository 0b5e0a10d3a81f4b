package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/pidns"
)

// Pod is one instance: an init (tini or gracefulinit) with the Java app as
// its child, bound to its own loopback address like a pod's IP.
type Pod struct {
	Name    string
	IP      string
	Variant string
	cmd     *exec.Cmd
	done    chan struct{}
	log     *os.File

	mu        sync.Mutex
	StartedAt time.Time
	ReadyAt   time.Time
	TermAt    time.Time
	ExitAt    time.Time
	ExitCode  int
}

// podSpec is everything needed to start one pod.
type podSpec struct {
	cfg       Config
	variant   string // tini, fixed, quiet, global, gi, gi-look, today
	registry  string // nacos, nacos-grpc, eureka
	service   string
	ip        string
	jar       string
	javaArgs  []string
	regAddr   string // what the app registers with (direct)
	initAddr  string // what gracefulinit talks to (direct, or through the slow proxy)
	logDir    string
	ignoreSig bool
	hostIP    string // mix mode: HOST_IP for gracefulinit, the prober's address, as the kubelet's node address
	init      string // the gracefulinit binary (today's rule or this build)
	warmup    bool   // init has --warmup-http
}

// healthAddr is where gracefulinit serves /ready in the consumer-class
// presets, the pod's readiness probe; "" for tini and the older variants.
func (s podSpec) healthAddr() string {
	if s.cfg.HealthPort == 0 || s.variant == "tini" {
		return ""
	}
	return net.JoinHostPort(s.ip, strconv.Itoa(s.cfg.HealthPort))
}

// grace is the pod's terminationGracePeriodSeconds: room for the fixed
// drain, the stop timeout and the kill margin, plus the headroom an
// operator who knows the registry can be slow or restarting would give.
func (s podSpec) grace() time.Duration {
	g := s.fixedDrain() + s.cfg.StopTimeout + 2*time.Second
	if s.cfg.Mix {
		// Room for the per-caller drain to wait for the rarest caller
		// after its cache let go of the pod.
		g += rareWait(s.cfg.Consumers, s.cfg.Instances)
	}
	switch s.cfg.Fault {
	case "registry-slow":
		g += 4 * s.cfg.SlowDelay // a read and a write, each answered late, twice over
	case "registry-restart":
		g += restartDowntime + 5*time.Second
	}
	return g
}

func (s podSpec) fixedDrain() time.Duration {
	d := s.cfg.CacheTTL + s.cfg.Propagation
	if s.registry == "eureka" {
		d += s.cfg.EurekaRefresh
	}
	return d
}

func (s podSpec) command() []string {
	app := append([]string{"java"}, s.javaArgs...)
	app = append(app, "-jar", s.jar,
		"--bind", s.ip, "--ip", s.ip, "--port", strconv.Itoa(s.cfg.Port),
		"--service", s.service,
		"--start-delay", fmt.Sprintf("%.3f", s.cfg.AppStart.Seconds()),
		"--latency-ms", strconv.Itoa(int(s.cfg.Latency/time.Millisecond)),
		"--shutdown-timeout", "5")
	if s.ignoreSig {
		app = append(app, "--ignore-term")
	}
	if s.cfg.StartSide {
		// Registers at once, answers 503 until --start-delay has passed,
		// then its first request pays a lazy initialisation, and the JIT
		// is cold for the request work.
		app = append(app, "--register-early", "--lazy-init-ms", strconv.Itoa(int(s.cfg.LazyInit/time.Millisecond)),
			"--work", strconv.Itoa(s.cfg.Work))
	}
	if s.cfg.GRPCPort > 0 {
		app = append(app, "--grpc-port", strconv.Itoa(s.cfg.GRPCPort))
	}
	switch s.registry {
	case "nacos":
		app = append(app, "--nacos", s.regAddr, "--nacos-beat", "2")
	case nacosGRPC:
		// The harness registers the app over gRPC (grpcRegistration).
	case "eureka":
		app = append(app, "--eureka", s.regAddr, "--app", s.service, "--instance-id", s.instanceID(), "--eureka-heartbeat", "2")
	}
	if s.variant == "tini" {
		return append([]string{s.cfg.Tini, "-s", "--"}, app...)
	}
	reg := s.registry
	if reg == nacosGRPC {
		reg = "nacos"
	}
	gi := []string{cmp.Or(s.init, s.cfg.Init),
		"--registry", reg, "--service", s.service, "--ip", s.ip, "--port", strconv.Itoa(s.cfg.Port),
		"--ready-http", fmt.Sprintf("http://%s:%d/actuator/health", s.ip, s.cfg.Port), "--ready-interval", "200ms",
		"--grace-period", s.grace().String(), "--stop-timeout", s.cfg.StopTimeout.String(),
		"--registry-timeout", "5s", "-e", "143"}
	switch s.registry {
	case "nacos", nacosGRPC:
		gi = append(gi, "--nacos-addr", s.initAddr)
	case "eureka":
		gi = append(gi, "--eureka-url", s.initAddr, "--eureka-instance-id", s.instanceID())
	}
	if s.cfg.GRPCPort > 0 {
		gi = append(gi, "--port", strconv.Itoa(s.cfg.GRPCPort))
	}
	switch s.variant {
	case "gi", "today", "gi-look":
		// Default flags: the per-caller drain with its defaults. Pods
		// share the port on one machine, so the watcher is told which
		// address is this pod's; /ready is the rollout's readiness probe.
		gi = append(gi, "--drain-ip", s.ip)
		if s.variant == "gi-look" {
			// The app is not told to register itself out of rotation:
			// the hold's look alone, as for an app that ignores the
			// variables.
			gi = append(gi, "--registry-hold-env=false")
		}
		if s.cfg.DrainCacheMax > 0 {
			gi = append(gi, "--drain-cache-max", s.cfg.DrainCacheMax.String())
		}
		if a := s.healthAddr(); a != "" {
			gi = append(gi, "--health-addr", a)
		}
		if s.warmup {
			gi = append(gi, "--warmup-http", fmt.Sprintf("GET http://%s:%d/", s.ip, s.cfg.Port))
		}
	case "fixed":
		gi = append(gi, "--drain", s.fixedDrain().String(), "--drain-quiet", "0")
	case "quiet", "global":
		// No --drain: with a registry the ceiling is the whole drain
		// budget, gracefulinit's default, so a slow registry or a slow
		// consumer lengthens the drain instead of failing requests. Pods
		// share the port on one machine, so the watcher is told which
		// address is this pod's.
		gi = append(gi, "--drain-quiet", s.cfg.Quiet.String(), "--drain-ip", s.ip)
		if s.variant == "global" {
			// The rule before per-caller drains, for comparison.
			gi = append(gi, "--drain-per-caller=false")
		}
	}
	return append(append(gi, "--"), app...)
}

func (s podSpec) instanceID() string {
	return fmt.Sprintf("%s:%s:%d", s.ip, s.service, s.cfg.Port)
}

// startPod launches the pod; it is killed with its whole process group by Kill.
func startPod(spec podSpec, name string) (*Pod, error) {
	argv := spec.command()
	logf, err := os.Create(filepath.Join(spec.logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "# %q\n", argv)
	// Each pod gets its own PID namespace with the init as PID 1, as in a
	// container: when the init exits or is killed, the kernel removes the
	// rest of the pod, and the harness never leaks a JVM.
	ns := pidns.Argv(argv...)
	cmd := exec.Command(ns[0], ns[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if spec.hostIP != "" && spec.variant != "tini" {
		cmd.Env = append(os.Environ(), "HOST_IP="+spec.hostIP)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Pod{Name: name, IP: spec.ip, Variant: spec.variant, cmd: cmd, done: make(chan struct{}), log: logf}
	p.StartedAt = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		p.mu.Lock()
		p.ExitAt = time.Now()
		p.ExitCode = cmd.ProcessState.ExitCode()
		p.mu.Unlock()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// WaitHealthy polls the app's health endpoint, or readyURL if set, until
// it answers 200.
func (p *Pod) WaitHealthy(ctx context.Context, port int, readyURL string) error {
	url := cmp.Or(readyURL, fmt.Sprintf("http://%s:%d/actuator/health", p.IP, port))
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				p.mu.Lock()
				p.ReadyAt = time.Now()
				p.mu.Unlock()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never became healthy: %w", p.Name, ctx.Err())
		case <-p.done:
			return fmt.Errorf("%s exited before it became healthy (see its log)", p.Name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Terminate sends SIGTERM to the pod's init (PID 1 inside the pod), as the
// kubelet does.
func (p *Pod) Terminate() {
	pid := p.initPID()
	p.mu.Lock()
	p.TermAt = time.Now()
	p.mu.Unlock()
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
}

// initPID is the pod's PID 1 as seen from the harness: unshare's child.
func (p *Pod) initPID() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	var pid int
	if _, err := fmt.Sscanf(string(b), "%d", &pid); err != nil {
		return 0
	}
	return pid
}

// Wait waits for the pod to exit or ctx to end.
func (p *Pod) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill removes whatever is left of the pod: killing its PID 1 ends the
// namespace.
func (p *Pod) Kill() {
	select {
	case <-p.done:
		return // reaped: its pid and group id may be someone else's now
	default:
	}
	if pid := p.initPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// ShutdownTime is SIGTERM to the init's exit.
func (p *Pod) ShutdownTime() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.TermAt.IsZero() || p.ExitAt.IsZero() {
		return 0
	}
	return p.ExitAt.Sub(p.TermAt)
}
