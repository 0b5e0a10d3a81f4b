package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/spawn"
)

const (
	// helperExitGrace is how long a helper whose pipe closed has to show
	// it exited (its status from the reaper, or a zombie in /proc) before
	// it is taken for a helper that closed the pipe and runs on, and killed.
	helperExitGrace = 500 * time.Millisecond
	// helperDrainWait bounds the reading of a killed helper's pipes: one
	// it passed on to a process of its own may stay open.
	helperDrainWait = 2 * time.Second
	// helperStatusWait bounds the wait for the reaper to hand over the
	// status of a helper known dead (it reaps on SIGCHLD, or every second).
	// Only a missing reaper (a library test) or a process stuck in the
	// kernel outlasts it.
	helperStatusWait = 2 * time.Second
)

// helperProc is one run of the helper process, and owns it: it reads both
// pipes to their end with bounded lines, kills the process as soon as
// either reader stops while the process runs on, and collects its status
// from the supervisor's reaper (through spawn). The manager starts the
// next run only once gone is closed, so two helpers, and two
// registrations, never overlap.
type helperProc struct {
	p     *os.Process
	pid   int
	gen   int // 1 for the first start
	exit  <-chan syscall.WaitStatus
	in    *os.File // its stdin: configuration and requests
	log   *slog.Logger
	relay *relay

	dead    chan struct{} // its stdout stopped serving: no more replies
	ended   chan struct{} // both pipes read to their end (or given up on)
	gone    chan struct{} // dead, killed if need be, status collected or given up on
	stopped chan string   // each reader, when it stops serving: why
	outEOF  chan struct{}
	errEOF  chan struct{}

	wmu     sync.Mutex // one request written at a time, each with its deadline
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan string
	crash   string // its first panic or fatal-error line on stderr
	last    string // its last stderr line
	errCut  int    // stderr lines cut at helperErrLineMax
	killed  string // why gracefulinit killed it, if it did
	status  string // how it ended, once gone
}

// startHelper starts one run of the helper at path and sends it cfg.
func startHelper(path string, env []string, cfg []byte, gen int, writeTimeout time.Duration, log *slog.Logger, rl *relay) (*helperProc, error) {
	var files [6]*os.File // inR, inW, outR, outW, errR, errW
	closeAll := func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	for i := 0; i < 6; i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		files[i], files[i+1] = r, w
	}
	inR, inW, outR, outW, errR, errW := files[0], files[1], files[2], files[3], files[4], files[5]
	// A pipe that holds a second of pacedReader's reading: a flooding
	// helper then fills it while PID 1 sleeps, and PID 1 reads it in a
	// few calls without waiting on it. Best effort (pipe-max-size).
	if rc, err := outR.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, helperLimits.readRate) })
	}
	proc, exit, err := spawn.Start(path, []string{path}, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{inR, outW, errW},
		// Its own process group: signals for the app's group and the
		// terminal's Ctrl-C are not for it, and a kill reaches what it started.
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
	p := &helperProc{
		p: proc, pid: proc.Pid, gen: gen, exit: exit, in: inW, log: log, relay: rl,
		dead: make(chan struct{}), ended: make(chan struct{}), gone: make(chan struct{}),
		stopped: make(chan string, 2), outEOF: make(chan struct{}), errEOF: make(chan struct{}),
		pending: map[uint64]chan string{},
	}
	go p.readOut(outR)
	go p.readErr(errR)
	go p.watch(outR, errR)
	// Bounded: a helper that does not read its stdin must not hold the
	// manager. A helper that already died makes this EPIPE (and a SIGPIPE
	// gracefulinit keeps to itself); the watch sees it die either way.
	_ = inW.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := inW.Write(append(cfg, '\n')); err != nil {
		inW.Close()
		log.Warn("nacos helper: cannot send its configuration", "error", err)
	}
	_ = inW.SetWriteDeadline(time.Time{})
	return p, nil
}

// watch waits for the first reader to stop, kills the helper if it runs
// on, lets both readers finish and collects the status.
func (p *helperProc) watch(out, errf *os.File) {
	defer close(p.gone)
	why := <-p.stopped
	var ws *syscall.WaitStatus
	select {
	case s := <-p.exit:
		ws = &s
	case <-time.After(helperExitGrace):
		// No status yet: exited and not reaped (a zombie), or running on.
		// The pid is unreaped, so /proc/pid is still this helper.
		if f, err := procfs.Stat(p.pid); err == nil && len(f) > 0 && f[0] != "Z" {
			p.kill(why)
		}
	}
	dl := time.Now().Add(helperDrainWait)
	_ = out.SetReadDeadline(dl)
	_ = errf.SetReadDeadline(dl)
	<-p.outEOF
	<-p.errEOF
	close(p.ended)
	if ws == nil {
		select {
		case s := <-p.exit:
			ws = &s
		case <-time.After(helperStatusWait):
		}
	}
	status := "exit status not collected"
	if ws != nil {
		status = spawn.Describe(*ws)
	}
	p.mu.Lock()
	p.status = status
	p.mu.Unlock()
}

// kill SIGKILLs the helper through its pidfd, then its process group
// (whose id, its pid, cannot be reused while the helper is unreaped).
func (p *helperProc) kill(why string) {
	p.mu.Lock()
	if p.killed == "" {
		p.killed = why
	}
	p.mu.Unlock()
	_ = p.p.Kill()
	_ = unix.Kill(-p.pid, unix.SIGKILL)
}

// readOut dispatches the helper's replies and relays its records. It
// stops serving at EOF or at a line over HelperLineMax (the helper is then
// killed), and reads on to the end, so the helper is never left writing
// into a closed pipe. Anything it cannot parse is relayed as text, never
// trusted: a garbled line must not take PID 1 down.
func (p *helperProc) readOut(r *os.File) {
	defer close(p.outEOF)
	defer r.Close()
	why := "reading its output panicked"
	if err := registry.Recover("reading the nacos helper's output", func() error { why = p.readReplies(r); return nil }); err != nil {
		p.log.Error("nacos helper: reading its output panicked; treating it as dead", "error", err)
	}
	close(p.dead)
	p.stopped <- why
	_, _ = io.Copy(io.Discard, &pacedReader{r: r, rate: helperLimits.readRate})
}

// readReplies reads the helper's stdout until it ends or breaks the
// protocol, and says why it stopped.
func (p *helperProc) readReplies(r *os.File) (why string) {
	why = "it closed its stdout"
	lr := newLineReader(&pacedReader{r: r, rate: helperLimits.readRate}, HelperLineMax)
	for {
		line, long, err := lr.next()
		if long {
			why = fmt.Sprintf("it wrote a line over %d bytes on its stdout, which breaks the protocol", HelperLineMax)
			p.log.Warn("nacos helper: " + why + "; killing it")
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				why = "reading its stdout failed: " + err.Error()
			}
			return
		}
		if rep, ok := parseReply(line); ok {
			p.mu.Lock()
			ch := p.pending[rep.Reply]
			p.mu.Unlock()
			if ch != nil {
				select {
				case ch <- rep.Error:
				default: // a second reply for one id: ignore it, never block
				}
			}
			continue
		}
		p.relay.offer(relayRecord, line, false)
	}
}

// readErr reads the helper's stderr to its end: it keeps the crash line
// and the last line, cut at 300 bytes, for the death's reason, relays
// each line at debug level, and cuts lines over helperErrLineMax.
func (p *helperProc) readErr(r *os.File) {
	defer close(p.errEOF)
	defer r.Close()
	if err := registry.Recover("reading the nacos helper's stderr", func() error { p.readStderr(r); return nil }); err != nil {
		p.log.Error("nacos helper: reading its stderr panicked", "error", err)
	}
	p.stopped <- "it closed its stderr"
	_, _ = io.Copy(io.Discard, &pacedReader{r: r, rate: helperLimits.readRate})
}

// readStderr reads the helper's stderr until it ends.
func (p *helperProc) readStderr(r *os.File) {
	debug := p.log.Enabled(context.Background(), slog.LevelDebug)
	lr := newLineReader(&pacedReader{r: r, rate: helperLimits.readRate}, helperErrLineMax)
	for {
		line, long, err := lr.next()
		if err != nil {
			return
		}
		text := strings.TrimSpace(string(line[:min(len(line), 300)]))
		if text == "" {
			continue
		}
		if len(line) > 300 {
			text += "..."
		}
		p.mu.Lock()
		if p.crash == "" && (strings.HasPrefix(text, "panic: ") || strings.HasPrefix(text, "fatal error: ")) {
			p.crash = text
		}
		p.last = text
		if long {
			p.errCut++
		}
		first := long && p.errCut == 1
		p.mu.Unlock()
		if first {
			p.log.Warn("nacos helper: a line of its stderr is over the limit: cut, its stderr is read on (its death reason counts the cut lines)", "limit_bytes", helperErrLineMax)
		}
		if debug {
			p.relay.offer(relayStderr, line, long)
		}
	}
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

// reason says why a helper that is gone died: its exit status from the
// reaper, why gracefulinit killed it if it did, and the line of its stderr
// that explains it (a panic's first line, else the last line).
func (p *helperProc) reason(secrets ...string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.status
	if p.killed != "" {
		s += " (killed by gracefulinit: " + p.killed + ")"
	}
	if p.errCut > 0 {
		s += fmt.Sprintf(" (%d stderr lines over %d bytes cut)", p.errCut, helperErrLineMax)
	}
	line := p.crash
	if line == "" {
		line = p.last
	}
	if line == "" {
		return s
	}
	return s + ": " + redact.Text(line, secrets...)
}
