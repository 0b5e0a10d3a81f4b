package nacos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/spawn"
)

// Restart back-off of a helper that died: it doubles up to the maximum and
// starts again from the minimum once a helper stayed up for helperStable.
const (
	helperRestartMin = 250 * time.Millisecond
	helperRestartMax = 30 * time.Second
	helperStable     = 30 * time.Second
	// helperStatusWait bounds the wait, after the pipes closed, for the
	// reaper to hand over the exit status (it runs on SIGCHLD, or every second).
	helperStatusWait = 2 * time.Second
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

	starts int // helpers started so far; only the manager touches it

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
	return &helper{
		path:        path,
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
	var err error
	if p != nil {
		err = p.call(ctx, "close")
		if errors.Is(err, errHelperDied) {
			err = nil
		}
		p.in.Close()
		select {
		case <-p.dead:
		case <-ctx.Done():
			h.log.Warn("nacos helper did not exit in time: killing it", "pid", p.p.Pid)
			_ = p.p.Kill()
		}
	}
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	return err
}

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
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("nacos helper manager stopped by a panic", "panic", fmt.Sprint(p))
		}
	}()
	delay := helperRestartMin
	for {
		p, err := h.startProc()
		if err != nil {
			h.log.Warn("nacos helper could not start", "helper", h.path, "error", err, "retry_in", delay)
		} else {
			if !h.setCur(p) {
				p.in.Close() // Close ran meanwhile: the helper exits on EOF
				return
			}
			up := time.Now()
			h.log.Debug("nacos helper started", "pid", p.p.Pid)
			if p.gen > 1 {
				h.reregister(p) // the first start serves Online's own call
			}
			select {
			case <-p.dead:
			case <-h.stop:
				return // Close takes it from here
			}
			h.setCur(nil)
			if time.Since(up) > helperStable {
				delay = helperRestartMin
			}
			select {
			case <-h.stop:
				return // a helper that exits because Close asked is no news
			default:
			}
			h.log.Warn("nacos helper died; restarting it", "reason", p.reason(h.cfg.Password), "restart_in", delay)
		}
		select {
		case <-h.stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, helperRestartMax)
	}
}

// reregister puts the instance back after a restart, retrying while it is
// wanted and this helper lives.
func (h *helper) reregister(p *helperProc) {
	delay := helperRestartMin
	for attempt := 1; h.wanted(); attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), h.callTimeout)
		err := p.call(ctx, "online")
		cancel()
		if err == nil {
			h.log.Info("nacos instance registered again after a helper restart", "instance", h.cfg.InstanceString(), "attempts", attempt)
			return
		}
		if errors.Is(err, errHelperDied) {
			return
		}
		h.log.Warn("nacos registration after a helper restart failed, retrying", "attempt", attempt, "retry_in", delay, "error", err)
		select {
		case <-p.dead:
			return
		case <-h.stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// helperProc is one run of the helper process.
type helperProc struct {
	p    *os.Process
	gen  int // 1 for the first start
	exit <-chan syscall.WaitStatus
	in   *os.File      // its stdin: configuration and requests
	dead chan struct{} // closed when its stdout reached EOF
	errs chan struct{} // closed when its stderr reached EOF
	log  *slog.Logger

	wmu     sync.Mutex // one request written at a time, each with its deadline
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan string
	tail    []string // its last stderr lines
}

func (h *helper) startProc() (*helperProc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	proc, exit, err := spawn.Start(h.path, []string{h.path}, &os.ProcAttr{
		Env:   h.env,
		Files: []*os.File{inR, outW, errW},
		// Its own process group: signals for the app's group and the
		// terminal's Ctrl-C are not for it.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	h.starts++
	p := &helperProc{
		p: proc, gen: h.starts, exit: exit, in: inW,
		dead: make(chan struct{}), errs: make(chan struct{}),
		log: h.log, pending: map[uint64]chan string{},
	}
	go p.readOut(outR)
	go p.readErr(errR)
	cfg, err := json.Marshal(h.cfg)
	if err == nil {
		_, err = inW.Write(append(cfg, '\n'))
	}
	if err != nil {
		// It cannot be configured: let it exit on EOF, and the manager
		// sees it die.
		inW.Close()
		h.log.Warn("nacos helper: cannot send its configuration", "error", err)
	}
	return p, nil
}

// call sends one request and waits for its answer, the helper's death or
// the end of ctx, whichever comes first.
func (p *helperProc) call(ctx context.Context, op string) error {
	req := HelperRequest{Op: op}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMs = max(time.Until(dl).Milliseconds(), 1)
	}
	ch := make(chan string, 1)
	p.mu.Lock()
	p.next++
	req.ID = p.next
	p.pending[req.ID] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, req.ID)
		p.mu.Unlock()
	}()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// A helper that stopped reading must not hold the caller past ctx.
	dl, _ := ctx.Deadline()
	p.wmu.Lock()
	_ = p.in.SetWriteDeadline(dl)
	_, err = p.in.Write(append(b, '\n'))
	p.wmu.Unlock()
	if err != nil {
		select {
		case <-p.dead:
			return errHelperDied
		default:
			return fmt.Errorf("nacos helper: send %s: %w", op, err)
		}
	}
	select {
	case e := <-ch:
		if e != "" {
			return errors.New(e)
		}
		return nil
	case <-p.dead:
		return errHelperDied
	case <-ctx.Done():
		return fmt.Errorf("nacos helper: %s: %w (left running in the helper)", op, ctx.Err())
	}
}

// readOut dispatches the helper's replies and logs its records as ours.
// Anything it cannot parse is logged, never trusted: a garbled line must
// not take PID 1 down.
func (p *helperProc) readOut(r *os.File) {
	defer close(p.dead)
	defer r.Close()
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("nacos helper: reading its output panicked; treating it as dead", "panic", fmt.Sprint(v))
		}
	}()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			p.log.Debug("nacos helper: unparsed output", "line", sc.Text())
			continue
		}
		if id, ok := m["reply"].(float64); ok {
			e, _ := m["error"].(string)
			p.mu.Lock()
			ch := p.pending[uint64(id)]
			p.mu.Unlock()
			if ch != nil {
				select {
				case ch <- e:
				default: // a second reply for one id: ignore it, never block
				}
			}
			continue
		}
		p.relog(m)
	}
}

// relog writes one of the helper's slog records through our logger.
func (p *helperProc) relog(m map[string]any) {
	var level slog.Level
	if s, ok := m["level"].(string); !ok || level.UnmarshalText([]byte(s)) != nil {
		level = slog.LevelInfo
	}
	msg, _ := m["msg"].(string)
	if !p.log.Enabled(context.Background(), level) {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "level" && k != "msg" && k != "time" && k != "registry" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	attrs := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		attrs = append(attrs, k, m[k])
	}
	p.log.Log(context.Background(), level, msg, attrs...)
}

// readErr keeps the last lines the helper wrote to stderr: a panic or a
// log.Fatalf says there why it died.
func (p *helperProc) readErr(r io.ReadCloser) {
	defer close(p.errs)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4<<10), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		p.log.Debug("nacos helper stderr", "line", line)
		p.mu.Lock()
		if len(p.tail) < 400 {
			p.tail = append(p.tail, line)
		} else {
			copy(p.tail, p.tail[1:])
			p.tail[len(p.tail)-1] = line
		}
		p.mu.Unlock()
	}
}

// reason says why a helper that closed its pipes died: its exit status
// from the reaper and the line of its stderr that explains it (a panic's
// first line, else the last line).
func (p *helperProc) reason(secrets ...string) string {
	status := "exit status not collected"
	select {
	case ws := <-p.exit:
		status = spawn.Describe(ws)
	case <-time.After(helperStatusWait):
	}
	select {
	case <-p.errs:
	case <-time.After(500 * time.Millisecond):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	line := ""
	for _, l := range p.tail {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			line = l
			break
		}
	}
	if line == "" && len(p.tail) > 0 {
		line = p.tail[len(p.tail)-1]
	}
	if line == "" {
		return status
	}
	if len(line) > 300 {
		line = line[:300] + "..."
	}
	return status + ": " + redact.Text(line, secrets...)
}
