package javatest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
)

// JVMFlags start a small JVM fast: class-data sharing, C1 only, serial GC,
// small stacks and heap, and no hsperfdata files in /tmp (which would leak
// from JVMs killed inside PID namespaces).
var JVMFlags = []string{
	"-Xshare:auto",
	"-XX:TieredStopAtLevel=1",
	"-XX:+UseSerialGC",
	"-Xss256k",
	"-Xms16m",
	"-Xmx128m",
	"-XX:-UsePerfData",
}

// Args is the argv (java first, resolved to a path) that runs jar with
// JVMFlags and appArgs: what a supervisor test passes after "--".
func Args(jar string, appArgs ...string) ([]string, error) {
	java, err := Tool("java")
	if err != nil {
		return nil, err
	}
	argv := append([]string{java}, JVMFlags...)
	argv = append(argv, "-jar", jar)
	return append(argv, appArgs...), nil
}

// Command is exec.CommandContext for Args. Stdout and stderr are unset.
func Command(ctx context.Context, jar string, appArgs ...string) (*exec.Cmd, error) {
	argv, err := Args(jar, appArgs...)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...), nil
}

// Proc is a started process whose stdout is collected line by line (and
// copied to the test log) so tests can wait for lines such as "READY".
type Proc struct {
	Cmd *exec.Cmd

	mu     sync.Mutex
	lines  []string
	more   chan struct{} // closed and replaced whenever lines grows or output ends
	eof    bool
	done   chan struct{} // closed when the process was waited for
	eofCh  chan struct{} // closed when stdout reached EOF
	logf   func(string, ...any)
	state  *os.ProcessState
	waitEr error
}

// StartCmd starts cmd, which must not have Stdout set, and collects its
// stdout. Stderr goes to the same collector unless set. The process is waited
// for in the background; Exit reports the result.
func StartCmd(cmd *exec.Cmd, logf func(format string, args ...any)) (*Proc, error) {
	if cmd.Stdout != nil {
		return nil, errors.New("javatest: StartCmd needs cmd.Stdout unset")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	if cmd.Stderr == nil {
		cmd.Stderr = pw
	}
	p := &Proc{Cmd: cmd, more: make(chan struct{}), done: make(chan struct{}), eofCh: make(chan struct{}), logf: logf}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	// The child holds its own copy; closing ours lets the reader see EOF
	// once the child and every grandchild sharing stdout are gone.
	pw.Close()
	go p.read(pr)
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.state, p.waitEr = cmd.ProcessState, err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *Proc) read(r io.ReadCloser) {
	defer close(p.eofCh)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		// Logging under the lock lets StopLogging guarantee silence, which
		// a testing.T needs once its test has ended.
		if p.logf != nil {
			p.logf("[pid %d] %s", p.Cmd.Process.Pid, line)
		}
		p.lines = append(p.lines, line)
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.eof = true
	close(p.more)
	p.more = make(chan struct{})
	p.mu.Unlock()
}

// Lines returns the output lines seen so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitLine waits for the first output line that starts with prefix and
// returns it. It fails when ctx ends or the output ends without one.
func (p *Proc) WaitLine(ctx context.Context, prefix string) (string, error) {
	return p.WaitMatch(ctx, fmt.Sprintf("a line starting with %q", prefix), func(l string) bool {
		return strings.HasPrefix(l, prefix)
	})
}

// WaitLineContaining waits for the first output line that contains substr.
func (p *Proc) WaitLineContaining(ctx context.Context, substr string) (string, error) {
	return p.WaitMatch(ctx, fmt.Sprintf("a line containing %q", substr), func(l string) bool {
		return strings.Contains(l, substr)
	})
}

// WaitMatch waits for the first output line (from the start of the output)
// for which match is true; what describes the line in errors.
func (p *Proc) WaitMatch(ctx context.Context, what string, match func(string) bool) (string, error) {
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, nil
			}
		}
		eof, more := p.eof, p.more
		p.mu.Unlock()
		if eof {
			return "", fmt.Errorf("output ended without %s", what)
		}
		select {
		case <-more:
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Done is closed once the process has exited and was waited for.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exit waits for the process to end and returns its exit code, or 128+N when
// signal N killed it (the shell's convention, which is also the JVM's own
// code after SIGTERM: 143).
func (p *Proc) Exit(ctx context.Context) (int, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for pid %d to exit: %w", p.Cmd.Process.Pid, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return 0, p.waitEr
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return p.state.ExitCode(), nil
}

// StopLogging ends the copying of output lines to the log function; no call
// to it starts after StopLogging returns.
func (p *Proc) StopLogging() {
	p.mu.Lock()
	p.logf = nil
	p.mu.Unlock()
}

// Kill sends SIGKILL (if still running) and waits for the process.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Event is one line of TestApp's --events file.
type Event struct {
	At     time.Time
	Name   string
	Detail string
}

// ParseEvents parses "<epoch-ms> <name>[ <detail>]" lines; a torn last line
// (a writer caught mid-write) is ignored.
func ParseEvents(data string) ([]Event, error) {
	var evs []Event
	lines := strings.Split(data, "\n")
	for i, l := range lines {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) < 2 {
			if i == len(lines)-1 {
				break
			}
			return nil, fmt.Errorf("events line %d: %q: want <epoch-ms> <name>", i+1, l)
		}
		ms, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("events line %d: %q: %v", i+1, l, err)
		}
		ev := Event{At: time.UnixMilli(ms), Name: f[1]}
		if len(f) == 3 {
			ev.Detail = f[2]
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// ReadEvents reads and parses an events file; a missing file is no events.
func ReadEvents(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseEvents(string(b))
}

// FindEvent returns the first event with the given name.
func FindEvent(evs []Event, name string) (Event, bool) {
	for _, e := range evs {
		if e.Name == name {
			return e, true
		}
	}
	return Event{}, false
}

// InOrder finds the named events as a subsequence of evs: the first event
// called names[0], then the first names[1] after it, and so on. It returns
// them, or an error naming the first one that does not follow.
func InOrder(evs []Event, names ...string) ([]Event, error) {
	found := make([]Event, 0, len(names))
	i := 0
	for _, name := range names {
		for i < len(evs) && evs[i].Name != name {
			i++
		}
		if i == len(evs) {
			if _, ok := FindEvent(evs, name); ok {
				return nil, fmt.Errorf("event %q does not follow %q in %v", name, found[len(found)-1].Name, evs)
			}
			return nil, fmt.Errorf("event %q missing from %v", name, evs)
		}
		found = append(found, evs[i])
		i++
	}
	return found, nil
}

// WaitEvent polls the events file until an event with the given name appears.
func WaitEvent(ctx context.Context, path, name string) (Event, error) {
	var (
		e     Event
		found bool
		err   error
	)
	poll.Until(ctx, 20*time.Millisecond, func() bool {
		var evs []Event
		if evs, err = ReadEvents(path); err != nil {
			return true
		}
		e, found = FindEvent(evs, name)
		return found
	})
	switch {
	case err != nil:
		return Event{}, err
	case !found:
		return Event{}, fmt.Errorf("waiting for event %q in %s: %w", name, path, ctx.Err())
	}
	return e, nil
}
