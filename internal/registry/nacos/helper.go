package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/spawn"
)

// Restart back-off of a helper that died: it doubles up to the maximum and
// starts again from the minimum once a helper stayed up for helperStable.
const (
	helperRestartMin = 250 * time.Millisecond
	helperRestartMax = 30 * time.Second
	helperStable     = 30 * time.Second
)

var errHelperDied = errors.New("nacos helper died before answering")

// helper is register mode as PID 1 runs it: nacos-sdk-go lives in the
// gracefulinit-nacos process, so a panic in the SDK's own goroutines or its
// log.Fatalf ends that process and never PID 1. A manager goroutine starts
// the helper, logs each death once with its reason, restarts it with
// back-off and registers again when the instance should be online. An
// ephemeral registration lives on the helper's gRPC connection, so a dead
// helper has nothing registered: Offline then has nothing to do, and the
// stop sequence never waits for a restart.
type helper struct {
	path string
	cfg  HelperConfig
	env  []string
	log  *slog.Logger
	// callTimeout bounds the manager's own re-registration attempts.
	callTimeout time.Duration

	starts int    // helpers started so far; only the manager touches it
	relay  *relay // its log records and stderr lines, for every run

	mu      sync.Mutex
	cur     *helperProc   // the live helper; nil while (re)starting
	curSet  chan struct{} // closed and replaced whenever cur changes
	want    bool          // the instance should be registered
	started bool          // the manager runs (first Online)
	closed  bool          // Close ran: no more restarts
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the manager returns
}

// helperPath is where register mode finds its helper: --nacos-helper, or
// gracefulinit-nacos in gracefulinit's own directory. It fails with one
// line saying what to copy where when the file is missing.
func helperPath(o Options) (string, error) {
	path := o.Helper
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("nacos: register mode cannot locate its helper %s: %v; set --nacos-helper", HelperName, err)
		}
		path = filepath.Join(filepath.Dir(exe), HelperName)
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("nacos: --nacos-mode register needs its helper %s (%v): copy %s from the release or image next to gracefulinit, or set --nacos-helper", path, err, HelperName)
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("nacos: --nacos-mode register needs its helper %s, which is not an executable file: chmod +x it or set --nacos-helper", path)
	}
	return path, nil
}

// newRegister builds register mode from o, which has its defaults.
func newRegister(o Options, servers []server, log *slog.Logger) (registry.Registry, error) {
	path, err := helperPath(o)
	if err != nil {
		return nil, err
	}
	hc := HelperConfig{
		Namespace: o.Namespace, Group: o.Group, Service: o.Service, Cluster: o.Cluster,
		IP: o.IP, Port: o.Port,
		Weight:    o.Weight,
		Metadata:  o.Metadata,
		Username:  o.Username,
		Password:  o.Password,
		CacheDir:  o.CacheDir,
		TimeoutMs: o.Timeout.Milliseconds(),
		Debug:     log.Enabled(context.Background(), slog.LevelDebug),
	}
	for _, s := range servers {
		hc.Servers = append(hc.Servers, HelperServer{Scheme: s.base.Scheme, Host: s.host, Port: s.port, ContextPath: s.contextPath})
	}
	if err := checkHelperVersion(path, o.Version); err != nil {
		return nil, err
	}
	return &helper{
		path:        path,
		relay:       newRelay(log, o.Password),
		cfg:         hc,
		env:         helperEnv(os.Environ(), o.EnvPrefix),
		log:         log,
		callTimeout: o.Timeout,
		curSet:      make(chan struct{}),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}, nil
}

// helperEnv is gracefulinit's environment without its own settings: the
// helper gets its configuration over the pipe, and the SDK still sees
// the variables it reads itself (nacos_remote_client_rpc_tls_*, ...).
func helperEnv(env []string, prefix string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if prefix == "" || !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

func (h *helper) Name() string { return "nacos" }

// Online starts the helper on first use and asks it to register.
func (h *helper) Online(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("nacos: registry closed")
	}
	// Set before the call: a helper that dies right after answering is
	// restarted into a registration, not left empty.
	h.want = true
	if !h.started {
		h.started = true
		go h.manage()
	}
	h.mu.Unlock()
	p, err := h.live(ctx)
	if err != nil {
		return err
	}
	return p.call(ctx, "online")
}

// Offline asks the live helper to deregister. No helper, no registration:
// it ended with the dead helper's connection.
func (h *helper) Offline(ctx context.Context) error {
	h.mu.Lock()
	h.want = false
	p, started := h.cur, h.started
	h.mu.Unlock()
	switch {
	case !started:
		h.log.Info("nacos instance was never registered: nothing to deregister", "instance", h.cfg.InstanceString())
		return nil
	case p == nil:
		h.log.Info("nacos helper not running: its registration ended with its connection", "instance", h.cfg.InstanceString())
		return nil
	}
	err := p.call(ctx, "offline")
	if errors.Is(err, errHelperDied) {
		return nil // gone with its registration
	}
	return err
}

// Close deregisters and closes the SDK client, lets the helper exit, and
// stops restarting it. A helper that does not exit within ctx is killed:
// its connection, and any registration on it, go with it.
func (h *helper) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed, h.want = true, false
	p, started := h.cur, h.started
	close(h.stop)
	h.mu.Unlock()
	if !started {
		return nil
	}
	// The helper gets ctx but a margin, so that killing it and the
	// relay's last lines still happen within ctx.
	hctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 4*helperCloseMargin {
		hctx, cancel = context.WithDeadline(ctx, dl.Add(-helperCloseMargin))
	}
	defer cancel()
	var err error
	if p != nil {
		err = p.call(hctx, "close")
		if errors.Is(err, errHelperDied) {
			err = nil
		}
		p.in.Close()
		// Its pipes close when it exits. Its status is not waited for:
		// the reaper has stopped by now, and a killed helper is done.
		select {
		case <-p.ended:
		case <-hctx.Done():
			h.log.Warn("nacos helper did not exit in time: killing it", "pid", p.pid)
			p.kill("it did not exit when closed")
		}
	}
	select {
	case <-h.done:
	case <-hctx.Done():
	}
	h.relay.close(ctx)
	return err
}

// helperCloseMargin is what Close keeps of its bound for itself once the
// helper had its share: killing it and relaying the last lines.
const helperCloseMargin = 250 * time.Millisecond

// live waits for a running helper.
func (h *helper) live(ctx context.Context) (*helperProc, error) {
	for {
		h.mu.Lock()
		p, changed, closed := h.cur, h.curSet, h.closed
		h.mu.Unlock()
		if closed {
			return nil, errors.New("nacos: registry closed")
		}
		if p != nil {
			return p, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("nacos helper not running (restarting): %w", ctx.Err())
		}
	}
}

func (h *helper) setCur(p *helperProc) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p != nil && h.closed {
		return false
	}
	h.cur = p
	close(h.curSet)
	h.curSet = make(chan struct{})
	return true
}

func (h *helper) wanted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.want && !h.closed
}

// manage owns the helper's lifecycle: start, re-register, watch, restart.
// It recovers its own panics into a logged stop: registry code in PID 1
// must never take PID 1 down.
func (h *helper) manage() {
	defer close(h.done)
	if err := registry.Recover("the nacos helper manager", func() error { h.manageRuns(); return nil }); err != nil {
		h.log.Error("nacos helper manager stopped by a panic", "error", err)
	}
}

// manageRuns starts the helper and restarts it when it dies, through the
// one back-off loop (registry.Backoff): the delay doubles up to
// helperRestartMax while runs end early, and a run that lasted
// helperStable ends the series, so the next death waits the least again.
func (h *helper) manageRuns() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	b := registry.Backoff{First: helperRestartMin, Limit: helperRestartMax}
	for ctx.Err() == nil {
		_, err := b.Do(ctx, func(context.Context) error { return h.runOnce() },
			func(err error) bool { return errors.Is(err, errHelperStopped) },
			func(_ int, wait time.Duration, err error) {
				var died *helperDeath
				if errors.As(err, &died) {
					h.log.Warn("nacos helper died; restarting it", "reason", died.reason, "restart_in", wait)
					return
				}
				h.log.Warn("nacos helper could not start", "helper", h.path, "error", err, "retry_in", wait)
			})
		if err != nil {
			return // Close: it takes it from here
		}
	}
}

// errHelperStopped ends the restarts: Close ran.
var errHelperStopped = errors.New("the nacos helper was closed")

// helperDeath is a run of the helper that ended on its own.
type helperDeath struct{ reason string }

func (d *helperDeath) Error() string { return "nacos helper died: " + d.reason }

// runOnce starts one run of the helper and waits until it is gone (killed
// if need be and reaped: the next one starts only then). It returns nil
// when the run lasted helperStable, a *helperDeath when it ended sooner,
// the start's error, or errHelperStopped once Close ran.
func (h *helper) runOnce() error {
	p, err := h.startProc()
	if err != nil {
		return err
	}
	if !h.setCur(p) {
		p.in.Close() // Close ran meanwhile: the helper exits on EOF
		return errHelperStopped
	}
	up := time.Now()
	h.log.Debug("nacos helper started", "pid", p.pid)
	if p.gen > 1 {
		h.reregister(p) // the first start serves Online's own call
	}
	select {
	case <-p.gone:
	case <-h.stop:
		return errHelperStopped // Close takes it from here
	}
	h.setCur(nil)
	select {
	case <-h.stop:
		return errHelperStopped // a helper that exits because Close asked is no news
	default:
	}
	if time.Since(up) > helperStable {
		h.log.Warn("nacos helper died; restarting it", "reason", p.reason(h.cfg.Password), "restart_in", time.Duration(0))
		return nil
	}
	return &helperDeath{reason: p.reason(h.cfg.Password)}
}

// reregister puts the instance back after a restart, retrying while it is
// wanted and this helper lives.
func (h *helper) reregister(p *helperProc) {
	// The retries end when this helper dies or Close stops it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.dead:
		case <-h.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	b := registry.Backoff{First: helperRestartMin, Limit: 5 * time.Second, Timeout: h.callTimeout}
	attempts, err := b.Do(ctx, func(ctx context.Context) error {
		if !h.wanted() {
			return errNotWanted
		}
		return p.call(ctx, "online")
	}, func(err error) bool {
		return errors.Is(err, errHelperDied) || errors.Is(err, errNotWanted)
	}, func(attempt int, wait time.Duration, err error) {
		h.log.Warn("nacos registration after a helper restart failed, retrying", "attempt", attempt, "retry_in", wait, "error", err)
	})
	if err == nil {
		h.log.Info("nacos instance registered again after a helper restart", "instance", h.cfg.InstanceString(), "attempts", attempts)
	}
}

// errNotWanted ends reregister's retries: the instance is no longer to be
// online (Offline or Close came first).
var errNotWanted = errors.New("the instance is no longer wanted online")

// startProc starts the next run of the helper.
func (h *helper) startProc() (*helperProc, error) {
	cfg, err := json.Marshal(h.cfg)
	if err != nil {
		return nil, err
	}
	p, err := startHelper(h.path, h.env, cfg, h.starts+1, h.callTimeout, h.log, h.relay)
	if err != nil {
		return nil, err
	}
	h.starts++
	return p, nil
}

// helperVersionWait bounds "gracefulinit-nacos --version".
const helperVersionWait = 5 * time.Second

// checkHelperVersion runs "path --version" and refuses a helper from
// another release than want, gracefulinit's own version, in one line
// naming both: the two files are copied separately, and the pipe protocol
// is promised only within a release. An empty want skips the check (a
// library caller that has no version).
//
// It runs before the supervisor, so nothing else waits for children yet;
// still, its status is left to the reaper, which owns every wait4: the
// version line on the pipe is all that is needed. Until then it is a
// zombie, and a gracefulinit that refuses it exits anyway.
func checkHelperVersion(path, want string) error {
	if want == "" {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("nacos: cannot check the helper %s's version: %v", path, err)
	}
	defer r.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		w.Close()
		return fmt.Errorf("nacos: cannot check the helper %s's version: %v", path, err)
	}
	defer null.Close()
	proc, _, err := spawn.Start(path, []string{path, "--version"}, &os.ProcAttr{
		Files: []*os.File{null, w, null},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	w.Close()
	if err != nil {
		return fmt.Errorf("nacos: cannot run the helper %s --version: %v; copy %s from gracefulinit's release or image", path, err, HelperName)
	}
	_ = r.SetReadDeadline(time.Now().Add(helperVersionWait))
	out, err := io.ReadAll(io.LimitReader(r, 4<<10))
	if err != nil {
		_ = proc.Kill()
		return fmt.Errorf("nacos: the helper %s did not report its version within %v (%v); copy %s from gracefulinit's release or image", path, helperVersionWait, err, HelperName)
	}
	got, err := helperVersion(string(out))
	if err != nil {
		return fmt.Errorf("nacos: the helper %s is not a %s of this release: %v; copy it from gracefulinit %s's release or image", path, HelperName, err, want)
	}
	if got != want {
		return fmt.Errorf("nacos: the helper %s is version %s, gracefulinit is version %s: copy %s from gracefulinit %s's release or image (the two files come together)", path, got, want, HelperName, want)
	}
	return nil
}
