// Package supervisor is gracefulinit's PID-1 loop: it starts the app as its
// child, forwards signals, reaps every zombie, runs the graceful stop
// sequence on SIGTERM, and returns the exit code gracefulinit should exit with.
//
// One goroutine, the one that calls Run, owns every wait4 and every signal
// sent to the child. Helpers (readiness probe, drain watcher, registry hooks)
// run in their own goroutines and only report back over channels, so the
// main child's exit status can never be stolen and a pid is never signalled
// after it was reaped.
package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/drain"
	"github.com/gracefulinit/gracefulinit/internal/health"
	"github.com/gracefulinit/gracefulinit/internal/procfs"
	"github.com/gracefulinit/gracefulinit/internal/ready"
	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/signals"
	"github.com/gracefulinit/gracefulinit/internal/spawn"
	"github.com/gracefulinit/gracefulinit/internal/termlog"
	"github.com/gracefulinit/gracefulinit/internal/timeline"
	"github.com/gracefulinit/gracefulinit/internal/warmup"
)

// Options configure one supervised run.
type Options struct {
	// Signals delivers the signals gracefulinit receives; see signals.Capture.
	// nil means Run captures them itself.
	Signals   chan os.Signal
	Command   []string
	Env       []string // the child's environment; nil means os.Environ()
	Subreaper bool     // become a child subreaper even as PID 1's peer (automatic when not PID 1)
	PGroup    bool     // forwarded and stop signals go to the child's process group
	// PDeathSig, when set, is the signal gracefulinit itself receives when
	// its parent dies (tini's -p); it is then handled like any signal.
	PDeathSig syscall.Signal
	RemapExit []int
	WarnReap  bool // log a warning for each reaped process that is not the app

	// Timeline gives the stop sequence its deadlines and the drain its
	// bounds; the zero value (tini mode) never kills.
	Timeline timeline.Timeline
	Drain    drain.Options // what to watch; Max, Quiet and Min are Timeline's
	// StopOn are the signals that start the stop sequence; empty: TERM.
	StopOn []syscall.Signal
	// StopSignal goes to the app when the drain is over; 0: the signal
	// that started the sequence.
	StopSignal syscall.Signal

	Ready         ready.Probe // nil: the app is ready once started
	ReadyInterval time.Duration
	ReadyTimeout  time.Duration
	// Warmup, when it has calls, runs after the app is ready and before
	// Hooks.Online (and /ready): synthetic local requests that warm the
	// JIT before real traffic arrives. A stop signal cuts it short.
	Warmup warmup.Options

	Hooks        Hooks         // nil: NoHooks
	CloseTimeout time.Duration // bound on Hooks.Close; 0 means 5s

	// Health, when set, answers the pod's readinessProbe: ready once the
	// app is ready and Hooks.Online succeeded, not ready from the first
	// stop signal on.
	Health *health.Server
	// TerminationLog, when set, receives the one-line shutdown summary
	// (Kubernetes' termination message) when gracefulinit caused the exit
	// and the app wrote no message of its own there. Failing to write it
	// only logs.
	TerminationLog string
	// DumpSignal, when set, goes to the app once, DumpBefore before the
	// kill, if it still runs after its stop signal (QUIT: a JVM's thread
	// dump of the stop that hangs).
	DumpSignal syscall.Signal
	DumpBefore time.Duration

	Log *slog.Logger
}

// Exit codes for failures to start the command, as in POSIX shells.
const (
	ExitNotFound      = 127
	ExitNotExecutable = 126
	ExitInitFailure   = 1
)

// run is the state of one Run call. Only the Run goroutine touches it.
type run struct {
	o    Options
	log  *slog.Logger
	pid  int
	pid1 bool
	sigs chan os.Signal // where Capture delivers

	// seq decides the stop sequence and records it for the summary; the
	// rest of run carries its decisions out and changes seq only through
	// its events.
	seq     stopSeq
	termLog termlog.Snapshot // the termination-message file before the app started

	readyCh chan error
	// The hold (see HoldHooks): holdStop closes once, when the app goes
	// online or the stop sequence begins; holdDone when Hold returned.
	holdStop     chan struct{}
	holdStopOnce *sync.Once
	holdDone     chan struct{}
	readyStop    context.CancelFunc
	onlineStop   context.CancelFunc

	killTimer   *time.Timer
	dumpTimer   *time.Timer
	learner     *drain.Learner // learns the app's callers until the drain takes over; nil without a watched drain
	drainCancel context.CancelFunc
	drainCh     chan drain.Result
	drainResult *drain.Result
	offlineCh   chan offlineResult
	offlineDone chan time.Time // when the offline took effect, for the drain's cache-max
	offline     *offlineResult
	offlineStop context.CancelFunc
	closeResult string // how Hooks.Close ended, for the summary
}

// offlineAnswerWait bounds the wait, after the app exited, for a cancelled
// offline step to report its last error.
const offlineAnswerWait = 250 * time.Millisecond

type offlineResult struct {
	err  error
	took time.Duration
}

// Run starts the command and supervises it until it exits; it returns the
// code gracefulinit should exit with. It never panics on bad input and
// never calls os.Exit.
func Run(o Options) int {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Hooks == nil {
		o.Hooks = NoHooks{}
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	// The drain's bounds are the timeline's, fixed once.
	o.Drain.Max, o.Drain.Quiet, o.Drain.Min = o.Timeline.Drain, o.Timeline.DrainQuiet, o.Timeline.DrainMin
	r := &run{o: o, log: o.Log, pid1: os.Getpid() == 1}
	early := false
	if e, ok := o.Hooks.(EarlyHooks); ok {
		early = e.SelfRegistered()
	}
	r.seq = newStopSeq(seqConfig{tl: o.Timeline, stopOn: o.StopOn, stopSig: o.StopSignal, hooks: hasOffline(o.Hooks), early: early,
		dumpSig: o.DumpSignal, dumpBefore: o.DumpBefore})

	// The parent-death signal and the signal mask are per thread: pin this
	// goroutine, which sets both and forks the child, to its thread for
	// the whole run (the Go runtime may retire threads).
	runtime.LockOSThread()
	// Go threads keep the mask gracefulinit was started with, so signals
	// its parent blocked would never reach it: this thread takes every
	// signal, and start restores the inherited mask for the fork only.
	var none unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil); err != nil {
		r.log.Warn("cannot unblock signals; those gracefulinit's parent blocked are not forwarded", "error", err)
	}
	if o.PDeathSig != 0 {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(o.PDeathSig), 0, 0, 0); err != nil {
			r.log.Warn("cannot set the parent-death signal", "signal", signals.Name(o.PDeathSig), "error", err)
		}
	}

	if !r.pid1 || o.Subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			r.log.Warn("cannot become a child subreaper; orphans will be reaped by the host's init instead", "error", err)
		} else if !r.pid1 && !o.Subreaper {
			r.log.Debug("not PID 1: registered as a child subreaper")
		}
	}

	// Catch before starting the child, so a signal in between is queued, not lost.
	sigs := o.Signals
	if sigs == nil {
		sigs = signals.Capture()
	}
	// No signal.Stop on the way out: it costs a runtime handshake per
	// caught signal (milliseconds in all), and the caller exits right after.

	r.sigs = sigs
	// Before the app starts: a message it writes later is its own.
	r.termLog = termlog.Take(o.TerminationLog)
	if code, ok := r.start(); !ok {
		return code
	}
	r.startHold()
	if o.Drain.Quiet > 0 && o.Drain.Max > 0 {
		r.learner = drain.Learn(o.Drain, r.log)
	}
	// Off the start path: it costs milliseconds, and the signals it adds
	// are dropped rather than fatal until it is done.
	go signals.CaptureRest(sigs)
	return r.loop(sigs)
}

// start launches the child. On failure it returns the exit code and false.
func (r *run) start() (int, bool) {
	name := r.o.Command[0]
	cmd := exec.Command(name, r.o.Command[1:]...)
	// exec.Command refuses a PATH hit in "." ; an init runs what it is told.
	if errors.Is(cmd.Err, exec.ErrDot) {
		cmd.Err = nil
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = r.o.Env
	attr := &syscall.SysProcAttr{Setpgid: true}
	if foregroundTTY() {
		// The child's group takes the terminal, so Ctrl-C and job control
		// reach the app directly, as they would without an init.
		attr.Foreground = true
		attr.Ctty = 0
	}
	cmd.SysProcAttr = attr
	// As tini: the app starts with the signal mask and the ignored signals
	// gracefulinit was started with (what the Go runtime lets it know of:
	// see signals.Inherited).
	restore := signals.ForFork(r.sigs)
	err := cmd.Start()
	restore()
	if err != nil {
		code, msg := classifyStartError(name, err)
		r.log.Error(msg)
		return code, false
	}
	r.pid = cmd.Process.Pid
	// Command lines carry secrets (-Dspring.datasource.password=...).
	r.log.Debug("child started", "pid", r.pid, "command", redact.Text(strings.Join(r.o.Command, " ")))
	return 0, true
}

// foregroundTTY reports whether stdin is our controlling terminal and our
// group owns it; only then may the child take it over.
func foregroundTTY() bool {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		return false
	}
	return fg == unix.Getpgrp()
}

func classifyStartError(name string, err error) (int, string) {
	var pe *fs.PathError
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		if path := inPathNotExecutable(name); path != "" {
			// exec.LookPath skips it; a shell or tini would say 126.
			return ExitNotExecutable, fmt.Sprintf("cannot run %q: %s is not executable (chmod +x it)", name, path)
		}
		return ExitNotFound, fmt.Sprintf("cannot run %q: command not found (check the path and $PATH)", name)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR):
		return ExitNotExecutable, fmt.Sprintf("cannot run %q: not executable (%v)", name, rootCause(err))
	case errors.As(err, &pe):
		return ExitNotExecutable, fmt.Sprintf("cannot run %q: %v", name, pe.Err)
	}
	return ExitInitFailure, fmt.Sprintf("cannot run %q: %v", name, err)
}

// inPathNotExecutable returns the first regular file named name in $PATH,
// when name is a bare command name; "" otherwise.
func inPathNotExecutable(name string) string {
	if strings.Contains(name, "/") {
		return ""
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			return path
		}
	}
	return ""
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// loop is the supervisor's only event loop, in the spirit of tini's: wait
// for something to happen, act on it, reap, repeat.
func (r *run) loop(sigs chan os.Signal) int {
	r.startReadiness()
	// A safety net: a SIGCHLD can coalesce with others or be dropped when
	// the channel is full; reaping on a slow tick bounds the damage.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var killC, dumpC <-chan time.Time

	for {
		select {
		case s := <-sigs:
			r.apply(r.seq.signal(time.Now(), s.(syscall.Signal)))
		case err := <-r.readyCh:
			r.onReady(err)
		case res := <-r.drainCh:
			r.drainCh = nil
			r.drainResult = &res
			r.reportPeers(res)
			r.apply(r.seq.drainOver(time.Now(), string(res.Reason)))
		case res := <-r.offlineCh:
			r.offlineCh = nil
			r.offline = &res
			if res.err != nil {
				r.log.Warn("registry offline failed; the drain goes on", "elapsed", res.took.Round(time.Millisecond), "error", res.err)
			} else {
				r.log.Debug("registry offline done", "elapsed", res.took.Round(time.Millisecond))
			}
		case <-killC:
			r.apply(r.seq.killDue())
		case <-dumpC:
			r.apply(r.seq.dumpDue())
		case <-tick.C:
		}
		if r.killTimer != nil && killC == nil {
			killC = r.killTimer.C
		}
		if r.dumpTimer != nil && dumpC == nil {
			dumpC = r.dumpTimer.C
		}
		if status, exited := r.reap(); exited {
			return r.finish(status, sigs)
		}
	}
}

// startHold keeps the app's own registration out of rotation from its
// start until it is ready and warm (mark mode). It runs beside the app and
// never delays it.
func (r *run) startHold() {
	h, ok := r.o.Hooks.(HoldHooks)
	if !ok || !r.seq.cfg.early {
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	r.holdStop, r.holdStopOnce, r.holdDone = stop, &sync.Once{}, done
	log := r.log
	go func() {
		defer close(done)
		if err := safeHook("hold", func() error { h.Hold(stop); return nil }); err != nil {
			log.Error("registry hold stopped", "error", err)
		}
	}()
}

// endHold ends the hold; safe from any goroutine, more than once.
func endHold(stop chan struct{}, once *sync.Once) {
	if once != nil {
		once.Do(func() { close(stop) })
	}
}

func (r *run) startReadiness() {
	if r.o.Ready == nil {
		r.onReady(nil)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.readyStop = cancel
	r.readyCh = make(chan error, 1)
	go func() { r.readyCh <- ready.Wait(ctx, r.o.Ready, r.o.ReadyInterval, r.o.ReadyTimeout) }()
}

func (r *run) onReady(err error) {
	r.readyCh = nil
	if !r.seq.running() {
		return
	}
	if err != nil {
		r.log.Warn("app never became ready: it keeps running but is not put online", "error", err)
		return
	}
	if !r.seq.becameReady() {
		return
	}
	r.log.Debug("app ready", "probe", fmt.Sprint(r.o.Ready))
	ctx, cancel := context.WithCancel(context.Background())
	r.onlineStop = cancel
	hs, warm, log := r.o.Health, r.o.Warmup, r.log
	holdStop, holdOnce, holdDone := r.holdStop, r.holdStopOnce, r.holdDone
	go func() {
		if len(warm.Calls) > 0 {
			warm.Log = log
			warmup.Run(ctx, warm)
			if ctx.Err() != nil {
				return // the stop sequence began during the warm-up
			}
		}
		// Ready and warm: the hold ends, and its last write lands before
		// Online puts the instance in rotation.
		if holdDone != nil {
			endHold(holdStop, holdOnce)
			select {
			case <-holdDone:
			case <-ctx.Done():
				return
			}
		}
		if err := safeHook("online", func() error { r.o.Hooks.Online(ctx); return nil }); err != nil {
			r.log.Error("registry online stopped", "error", err)
			return
		}
		// Online returns early only when the stop sequence began.
		if ctx.Err() == nil {
			hs.Ready()
		}
	}()
}

// beginStop is the start of a stop sequence: /ready turns 503, the
// readiness probe, the online step and a registry hold end, and the log
// says what comes.
func (r *run) beginStop(a actions, rec record) {
	r.o.Health.Stopping()
	if a.killAt.IsZero() {
		// tini mode: no deadline of our own, and as quiet as tini.
		r.log.Debug("stop signal received", "signal", signals.Name(rec.termSig), "kill", "never (no timeline)")
	} else {
		r.log.Info("stop signal received", "signal", signals.Name(rec.termSig), "deadline_in", r.o.Timeline.Grace, "kill_in", a.killAt.Sub(rec.termAt).Round(time.Millisecond))
	}
	for _, stop := range []context.CancelFunc{r.readyStop, r.onlineStop} {
		if stop != nil {
			stop()
		}
	}
	endHold(r.holdStop, r.holdStopOnce)
	switch {
	case rec.ready:
	case a.offline && a.drain:
		r.info("app was never ready, but it may have registered itself: taking it out of the registry and draining the callers seen")
	case a.offline:
		r.info("app was never ready, but it may have registered itself: taking it out of the registry; no drain")
	default:
		r.info("app was never ready: no drain")
	}
}

// apply carries out what the stop sequence decided, in order.
func (r *run) apply(a actions) {
	rec := r.seq.record()
	if a.begin {
		r.beginStop(a, rec)
	}
	if !a.killAt.IsZero() {
		r.killTimer = time.NewTimer(time.Until(a.killAt))
	}
	if !a.dumpAt.IsZero() {
		r.dumpTimer = time.NewTimer(time.Until(a.dumpAt))
	}
	if a.offline {
		r.startOffline(r.seq.killPoint())
	}
	if a.drain {
		r.startDrain()
	}
	if a.endDrain != "" {
		r.endDrain(a.endDrain)
	}
	if a.stop != 0 {
		r.info("sending stop signal to the app", "signal", signals.Name(a.stop), "elapsed", rec.stopAt.Sub(rec.termAt).Round(time.Millisecond))
		r.signalChild(a.stop, r.o.PGroup)
	}
	if a.dump != 0 {
		if rec.dumpLate {
			r.log.Warn("the dump's time came during the drain: sending the dump signal right after the stop signal", "signal", signals.Name(a.dump),
				"kill_in", time.Until(r.seq.killPoint()).Round(time.Millisecond))
		} else {
			r.log.Warn("app still running near the kill: sending the dump signal", "signal", signals.Name(a.dump),
				"elapsed", time.Since(rec.termAt).Round(time.Millisecond), "kill_in", time.Until(r.seq.killPoint()).Round(time.Millisecond))
		}
		r.signalChild(a.dump, r.o.PGroup)
	}
	if a.forward != 0 {
		r.signalChild(a.forward, r.o.PGroup)
	}
	if a.kill {
		r.killTree()
	}
}

// startDrain runs the drain in its own goroutine; it reports on drainCh.
func (r *run) startDrain() {
	dctx, dcancel := context.WithCancel(context.Background())
	r.drainCancel = dcancel
	r.drainCh = make(chan drain.Result, 1)
	opts := r.o.Drain
	opts.Offline = r.offlineDone // nil without an offline step
	log, learner, ch := r.log, r.learner, r.drainCh
	go func() {
		if learner != nil {
			ch <- learner.Drain(dctx, opts, log)
			return
		}
		ch <- drain.RunDetailed(dctx, opts, log)
	}()
	attrs := []any{"max", opts.Max, "quiet", opts.Quiet, "min", opts.Min, "ports", opts.Ports}
	if opts.Quiet > 0 {
		attrs = append(attrs, "per_caller", !opts.Global, "cache_max", opts.CacheMax, "ignored", len(opts.Ignore))
	}
	r.log.Info("draining", attrs...)
}

// startOffline runs the registry offline step in the background. It may use
// everything up to the kill point (no bound but its own without one); the
// drain and the stop signal never wait for it.
func (r *run) startOffline(killAt time.Time) {
	var octx context.Context
	var ocancel context.CancelFunc
	if killAt.IsZero() {
		octx, ocancel = context.WithCancel(context.Background())
	} else {
		octx, ocancel = context.WithDeadline(context.Background(), killAt)
	}
	r.offlineStop = ocancel
	r.offlineCh = make(chan offlineResult, 1)
	r.offlineDone = make(chan time.Time, 1)
	ch, done := r.offlineCh, r.offlineDone
	go func() {
		start := time.Now()
		err := safeHook("offline", func() error { return r.o.Hooks.Offline(octx) })
		if err == nil {
			done <- time.Now()
		}
		ch <- offlineResult{err: err, took: time.Since(start)}
	}()
}

// endDrain stops the drain, which ended for reason, and says so.
func (r *run) endDrain(reason string) {
	rec := r.seq.record()
	if reason == "second-signal" {
		r.log.Info("second stop signal: ending the drain now", "signal", signals.Name(rec.termSig))
	}
	r.cancelDrain()
	attrs := []any{"reason", reason, "elapsed", rec.drainEnd.Sub(rec.termAt).Round(time.Millisecond)}
	if res := r.drainResult; res != nil && !res.LastActivity.IsZero() {
		attrs = append(attrs, "last_traffic_ago", rec.drainEnd.Sub(res.LastActivity).Round(time.Millisecond))
	}
	if res := r.drainResult; res != nil && res.Peers > 0 {
		attrs = append(attrs, "peers", res.Peers, "slowest", drain.FormatPeers(res.Slowest, res.At))
	}
	r.log.Info("drain ended", attrs...)
}

// info logs at INFO, or at DEBUG in tini mode, which is as quiet as tini
// on a plain stop.
func (r *run) info(msg string, args ...any) {
	if r.o.Timeline.Kills() {
		r.log.Info(msg, args...)
	} else {
		r.log.Debug(msg, args...)
	}
}

// signalChild sends sig to the child, or its process group. The child's pid
// is only ever signalled by this goroutine before reap has collected it,
// so it cannot have been reused.
func (r *run) signalChild(sig syscall.Signal, group bool) {
	target := r.pid
	if group {
		target = -r.pid
	}
	if err := unix.Kill(target, sig); err != nil && err != unix.ESRCH {
		r.log.Warn("cannot forward signal", "signal", signals.Name(sig), "pid", target, "error", err)
		return
	}
	r.log.Debug("forwarded signal", "signal", signals.Name(sig), "pid", target)
}

// killTree SIGKILLs the child's group and, as PID 1, everything else in the
// namespace; otherwise every descendant found in /proc.
func (r *run) killTree() {
	rec := r.seq.record()
	r.log.Warn("deadline near: killing the process tree", "elapsed", time.Since(rec.termAt).Round(time.Millisecond),
		"deadline_in", time.Until(rec.termAt.Add(r.o.Timeline.Grace)).Round(time.Millisecond))
	if err := unix.Kill(-r.pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		r.log.Warn("cannot kill the child's process group", "error", err)
	}
	if err := unix.Kill(r.pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		r.log.Warn("cannot kill the child", "error", err)
	}
	if r.pid1 {
		// kill(-1) as PID 1 reaches every process in the namespace but us.
		if err := unix.Kill(-1, unix.SIGKILL); err != nil && err != unix.ESRCH {
			r.log.Warn("cannot kill remaining processes", "error", err)
		}
		return
	}
	for _, pid := range procfs.Descendants(os.Getpid()) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// reap collects every exited child without blocking. It reports the main
// child's status once it has been collected.
func (r *run) reap() (unix.WaitStatus, bool) {
	var main unix.WaitStatus
	found := false
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			// ECHILD: nothing left to wait for; 0: nothing has exited yet.
			return main, found
		}
		if pid == r.pid {
			main, found = ws, true
			continue
		}
		// A registry helper started through spawn: its starter gets the status.
		if spawn.Reaped(pid, syscall.WaitStatus(ws)) {
			continue
		}
		if r.o.WarnReap {
			r.log.Warn("reaped zombie process", "pid", pid, "status", exitCode(ws))
		} else {
			r.log.Debug("reaped orphan", "pid", pid, "status", exitCode(ws))
		}
	}
}

func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return ExitInitFailure
}

// finish runs after the main child exited: it stops the helpers, closes the
// hooks within their bound, logs the summary and computes the exit code.
func (r *run) finish(ws unix.WaitStatus, sigs chan os.Signal) int {
	exitAt := time.Now()
	code := exitCode(ws)
	if r.learner != nil {
		r.learner.Stop()
	}
	if r.seq.appExited(exitAt, ws.Signaled() && ws.Signal() == unix.SIGKILL) {
		r.cancelDrain()
		r.log.Info("app exited during the drain", "exit_code", code)
	}
	for _, stop := range []context.CancelFunc{r.readyStop, r.onlineStop, r.drainCancel} {
		if stop != nil {
			stop()
		}
	}
	endHold(r.holdStop, r.holdStopOnce)
	// An offline step still in flight (retrying a registry that is down or
	// hangs) is cut short: the app is gone. Its answer is awaited only
	// briefly, for the summary to say why it failed; hooks honour their
	// context, and the summary must not wait for the registry.
	if r.offlineStop != nil {
		r.offlineStop()
	}
	if r.offlineCh != nil {
		wait := time.NewTimer(r.bounded(offlineAnswerWait))
		select {
		case res := <-r.offlineCh:
			r.offline = &res
		case <-wait.C:
		}
		wait.Stop()
	}
	r.closeHooks(sigs)

	final := code
	for _, c := range r.o.RemapExit {
		if c == code {
			final = 0
		}
	}
	if !r.seq.record().termAt.IsZero() {
		r.summary(code, final)
	} else {
		r.log.Debug("app exited", "child_exit_code", code, "exit_code", final)
	}
	if !r.seq.summaryDue() {
		if r.termLog.Path() != "" {
			r.log.Debug("the app's exit was its own: the termination message is left as the app left it", "file", r.termLog.Path())
		}
	}
	return final
}

// bounded returns d, or less so that a wait after the app's exit ends by
// the kill point: past it the runtime's SIGKILL may land any moment, and
// gracefulinit must have logged its summary and exited with the app's code.
func (r *run) bounded(d time.Duration) time.Duration {
	if kill := r.seq.killPoint(); !kill.IsZero() {
		d = min(d, time.Until(kill))
	}
	return max(d, 0)
}

// closeHooks runs Hooks.Close within CloseTimeout, and within the kill
// point once a stop sequence started. A SIGTERM during the close (the app
// exited on its own first) starts the runtime's clock: the close then ends
// by that signal's kill point too. A hook that does not return in time is
// abandoned: its goroutine dies with the process.
func (r *run) closeHooks(sigs chan os.Signal) {
	if !r.seq.cfg.hooks {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.bounded(r.o.CloseTimeout))
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- safeHook("close", func() error { return r.o.Hooks.Close(ctx) }) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				r.closeResult = "failed: " + err.Error()
				r.log.Warn("registry close failed", "error", err)
				return
			}
			r.closeResult = "ok"
			return
		case <-ctx.Done():
			r.closeResult = "abandoned"
			attrs := []any{"elapsed", time.Since(start).Round(time.Millisecond)}
			if kp := r.seq.killPoint(); !kp.IsZero() { // no kill point: nothing to say
				attrs = append(attrs, "kill_in", time.Until(kp).Round(time.Millisecond))
			}
			r.log.Warn("registry close abandoned at its time limit", attrs...)
			return
		case s := <-sigs:
			// The app is gone: nothing is forwarded, but a stop request
			// starts the runtime's clock.
			if a := r.seq.signal(time.Now(), s.(syscall.Signal)); !a.closeBy.IsZero() {
				r.log.Info("stop signal during the registry close: it ends by the kill point", "kill_in", time.Until(a.closeBy).Round(time.Millisecond))
				stop := time.AfterFunc(time.Until(a.closeBy), cancel)
				defer stop.Stop()
			}
		}
	}
}

// summary logs the shutdown summary and, when gracefulinit caused the
// exit, writes it as the termination message. The decisive fields come
// first: the message keeps its first 4096 bytes, and the long ones (a
// registry's error, the peers) must not push them out.
func (r *run) summary(code, final int) {
	rec := r.seq.record()
	since := func(t time.Time) any {
		if t.IsZero() {
			return "-"
		}
		return t.Sub(rec.termAt).Round(time.Millisecond).String()
	}
	offline, offlineTook := offlineOutcome(r.offline, r.offlineCh != nil)
	drainLen := "-"
	if !rec.drainEnd.IsZero() {
		drainLen = rec.drainEnd.Sub(rec.termAt).Round(time.Millisecond).String()
	} else if !rec.stopAt.IsZero() {
		drainLen = "0s"
	}
	deadline := "-"
	if r.o.Timeline.Kills() {
		deadline = r.o.Timeline.Grace.String()
	}
	stopSig := "-"
	if rec.stopSig != 0 {
		stopSig = signals.Name(rec.stopSig)
	}
	attrs := []any{
		"exit_code", final,
		"killed", rec.Killed(),
		"drain_end", rec.drainReason,
		"ready", rec.ready,
		"child_exit_code", code,
		"signal", signals.Name(rec.termSig),
		"stop_signal", stopSig,
		"drain", drainLen,
		"stop_sent_at", since(rec.stopAt),
		"child_exit_at", since(rec.exitAt),
		"total", since(rec.exitAt),
		"deadline", deadline,
		"traffic_at_end", r.drainResult != nil && r.drainResult.TrafficAtEnd,
		"offline_took", offlineTook,
	}
	if r.o.DumpSignal != 0 {
		attrs = append(attrs, "dumped", rec.dumped)
	}
	// The long ones: an error's text, the callers.
	attrs = append(attrs,
		"offline", offline,
		"close", cmp.Or(r.closeResult, "none"),
		"drain_peers", r.drainPeers(),
		"drain_non_consumers", r.drainNonConsumers(),
	)
	r.info("shutdown summary", attrs...)
	if r.seq.summaryDue() {
		r.writeTerminationLog("shutdown summary", attrs)
	}
}

// writeTerminationLog puts msg and attrs, formatted as the text log does,
// in the termination-message file, unless the app wrote its own there. It
// never fails the exit.
func (r *run) writeTerminationLog(msg string, attrs []any) {
	if r.termLog.Path() == "" {
		return
	}
	var b strings.Builder
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
			return slog.Attr{}
		}
		return a
	}})
	slog.New(h).Info(msg, attrs...)
	switch err := r.termLog.Write(b.String()); {
	case errors.Is(err, termlog.ErrAppWrote):
		r.log.Info("the app wrote its own termination message: left as it is", "file", r.termLog.Path())
	case err != nil:
		r.log.Warn("cannot write the termination message", "error", err)
	}
}

// drainAnswerWait bounds the wait for a cancelled drain's result, which
// it gives at once: only the callers it saw are wanted, for the summary.
const drainAnswerWait = 100 * time.Millisecond

// cancelDrain stops a drain that is still running and keeps what it saw.
func (r *run) cancelDrain() {
	if r.drainCancel != nil {
		r.drainCancel()
	}
	if r.drainCh != nil && r.drainResult == nil {
		select {
		case res := <-r.drainCh:
			r.drainResult = &res
		case <-time.After(drainAnswerWait):
		}
	}
	r.drainCh = nil
}

// reportPeers says whom a drain that ended by itself did not wait for.
func (r *run) reportPeers(res drain.Result) {
	// Only callers that called within their gap and during the drain are
	// still calling; a caller waited for as a rare one is not.
	calling := drain.StillCalling(res.Pending, res.At.Add(-res.Elapsed), res.At, r.o.Drain.Quiet)
	switch {
	case res.TrafficAtEnd:
		r.log.Warn("drain reached its ceiling while traffic was still arriving: the stop signal cuts into it; raise --grace-period, or --drain-ignore callers that never stop",
			"still_calling", drain.FormatPeers(calling, res.At))
	case res.Reason == drain.ReasonCacheMax && len(calling) > 0:
		r.log.Info("not waiting for callers still calling after --drain-cache-max: registry consumers have let go of the instance by then, so these are not registry consumers",
			"still_calling", drain.FormatPeers(calling, res.At))
	}
	if len(res.NonConsumers) > 0 {
		r.log.Warn("callers kept their own rhythm through the whole drain, which waited for them: scrapers, probers or clients of the pod's address, not registry consumers; leave them out with --drain-ignore CIDR, or serve them on a separate management port",
			"callers", drain.FormatRhythm(res.NonConsumers))
	}
}

// drainNonConsumers names the callers that kept their rhythm through the
// drain, with the fix, for the summary.
func (r *run) drainNonConsumers() string {
	if r.drainResult == nil {
		return "-"
	}
	return drain.FormatRhythm(r.drainResult.NonConsumers)
}

// drainPeers names the peers that held the drain longest, for the summary.
func (r *run) drainPeers() string {
	if r.drainResult == nil {
		return "-"
	}
	return drain.FormatPeers(r.drainResult.Slowest, r.drainResult.At)
}
