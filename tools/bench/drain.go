package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
)

// DrainResult is section 7: gracefulinit's traffic-aware drain.
type DrainResult struct {
	Flags         []string   `json:"flags"`
	QuietMS       float64    `json:"quiet_ms"`
	TrafficMS     float64    `json:"traffic_ms"`
	Runs          []DrainRun `json:"runs"`
	MedianDelayMS float64    `json:"median_delay_ms"`
	CPU           []CPURow   `json:"cpu"`
}

// DrainRun is one stop: Delay is (stop signal at the app) - (last request)
// - quiet, the time the drain cost beyond the quiet period it was asked to
// wait; DrainMS is SIGTERM to the stop signal at the app.
type DrainRun struct {
	DelayMS float64 `json:"delay_ms"`
	DrainMS float64 `json:"drain_ms"`
	Reason  string  `json:"reason"`
	Slowest string  `json:"slowest,omitempty"` // the callers that held the drain, as its log names them
}

// CPURow is gracefulinit's CPU use while a drain is under way and the
// app's connections sit idle: from utime+stime (10 ms ticks) and from
// schedstat (ns, live threads only).
type CPURow struct {
	Variant        string   `json:"variant"`
	Phase          string   `json:"phase"` // "running": no SIGTERM (the drain learns its callers); "draining": after SIGTERM
	Flags          []string `json:"flags"`
	IdleConns      int      `json:"idle_conns"`
	WindowS        float64  `json:"window_s"`
	TicksMSPerS    float64  `json:"ticks_cpu_ms_per_s"`
	SchedMSPerS    float64  `json:"schedstat_cpu_ms_per_s"`
	EndedEarly     bool     `json:"ended_early"`
	DrainEndReason string   `json:"drain_end_reason,omitempty"`
}

func (r *runner) measureDrain(ctx context.Context) error {
	gi := r.info(NameGracefulinit).Init
	res := &DrainResult{QuietMS: ms(r.p.drainQuiet), TrafficMS: ms(r.p.traffic)}
	r.rep.Drain = res
	var errs []error
	var delays []float64
	for run := 0; run < r.p.drainRuns; run++ {
		fmt.Fprintf(r.log, "bench:   drain delay run %d/%d\n", run+1, r.p.drainRuns)
		dr, flags, err := r.drainOnce(ctx, gi)
		res.Flags = flags
		if err != nil {
			errs = append(errs, fmt.Errorf("delay run %d: %w", run+1, err))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		res.Runs = append(res.Runs, dr)
		delays = append(delays, dr.DelayMS)
	}
	res.MedianDelayMS = medianOf(delays)

	w, lw := r.p.cpuWindow, r.p.learnWindow
	variants := []struct {
		name   string
		flags  []string
		conns  int
		window time.Duration
		term   bool
	}{
		{"app running, no watcher", []string{"--drain", "10s"}, r.p.learnConns, lw, false},
		{"app running, learning its callers", []string{"--drain", "10s", "--drain-quiet", "2s"}, r.p.learnConns, lw, false},
		{"fixed drain (no watcher)", []string{"--drain", (w + 3*time.Second).String()}, r.p.idleConns, w, true},
		{"quiet drain, watching", []string{"--drain", (w + 3*time.Second).String(), "--drain-quiet", (w + time.Second).String()}, r.p.idleConns, w, true},
		{"quiet drain, watching", []string{"--drain", (w + 3*time.Second).String(), "--drain-quiet", (w + time.Second).String()}, r.p.learnConns, w, true},
		{"quiet drain, watching", []string{"--drain", (w + 3*time.Second).String(), "--drain-quiet", (w + time.Second).String()}, r.p.manyConns, w, true},
	}
	for _, v := range variants {
		fmt.Fprintf(r.log, "bench:   drain CPU: %s, %d idle conns\n", v.name, v.conns)
		row, err := r.drainCPU(ctx, gi, v.name, v.flags, v.conns, v.window, v.term)
		if err != nil {
			errs = append(errs, fmt.Errorf("cpu %s: %w", v.name, err))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		res.CPU = append(res.CPU, row)
	}
	return errors.Join(errs...)
}

// startServer runs gracefulinit as PID 1 over the HTTP helper and waits
// until the helper listens. The free port may be taken by someone else
// before the helper binds it; then it tries another.
func (r *runner) startServer(ctx context.Context, gi Init, flags []string) (*proc, int, int, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var p *proc
		var pid, port int
		p, pid, port, err = r.startServerOnce(ctx, gi, flags)
		if err == nil {
			return p, pid, port, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, 0, 0, err
}

func (r *runner) startServerOnce(ctx context.Context, gi Init, flags []string) (*proc, int, int, error) {
	port, err := freeport.Pick("127.0.0.1")
	if err != nil {
		return nil, 0, 0, err
	}
	flags = append(append([]string(nil), flags...), "--port", strconv.Itoa(port))
	p, err := launch(ModePID1, gi.argv(true, flags, []string{r.helper, "httpserver", strconv.Itoa(port)}))
	if err != nil {
		return nil, 0, 0, err
	}
	if _, err := p.line(ctx, "ready", 10*time.Second); err != nil {
		p.kill()
		return nil, 0, 0, err
	}
	pid, err := p.findInit(ctx, 10*time.Second)
	if err != nil {
		p.kill()
		return nil, 0, 0, err
	}
	return p, pid, port, nil
}

// drainOnce stops gracefulinit while a client keeps sending requests for a
// while, then goes quiet; it reports how long after the quiet period the
// app got its stop signal.
func (r *runner) drainOnce(ctx context.Context, gi Init) (DrainRun, []string, error) {
	var dr DrainRun
	flags := []string{"--drain", r.p.drainMax.String(), "--drain-quiet", r.p.drainQuiet.String()}
	p, pid, port, err := r.startServer(ctx, gi, flags)
	if err != nil {
		return dr, flags, err
	}
	defer p.kill()
	shown := append(append([]string(nil), flags...), "--port", "P")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)

	// Pooled clients, as a consumer's: their connections stay open and
	// idle once the traffic stops. One client opens a connection per
	// request, so new connections are part of the traffic too.
	pooled := &http.Transport{MaxIdleConnsPerHost: 8}
	fresh := &http.Transport{DisableKeepAlives: true}
	defer pooled.CloseIdleConnections()
	clients := []*http.Client{
		{Transport: pooled, Timeout: 5 * time.Second},
		{Transport: pooled, Timeout: 5 * time.Second},
		{Transport: pooled, Timeout: 5 * time.Second},
		{Transport: fresh, Timeout: 5 * time.Second},
	}
	if err := get(ctx, clients[0], url); err != nil {
		return dr, shown, fmt.Errorf("warm-up request: %w", err)
	}

	termAt := mono()
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return dr, shown, err
	}
	var last atomic.Int64
	var failed atomic.Int64
	stop := time.Now().Add(r.p.traffic)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && ctx.Err() == nil {
				at := mono()
				if err := get(ctx, c, url); err != nil {
					failed.Add(1)
				} else {
					// The last request that reached the app counts.
					for {
						old := last.Load()
						if at <= old || last.CompareAndSwap(old, at) {
							break
						}
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return dr, shown, fmt.Errorf("%d requests failed during the drain: the app stopped serving early", n)
	}
	l, err := p.line(ctx, "term ", r.p.drainMax+10*time.Second)
	if err != nil {
		return dr, shown, err
	}
	termNS, err := strconv.ParseInt(strings.TrimPrefix(l, "term "), 10, 64)
	if err != nil {
		return dr, shown, fmt.Errorf("bad line %q", l)
	}
	_ = p.wait(10 * time.Second)
	dr.DrainMS = float64(termNS-termAt) / 1e6
	dr.DelayMS = float64(termNS-last.Load()-int64(r.p.drainQuiet)) / 1e6
	dr.Reason = drainReason(p.errb.String())
	dr.Slowest = drainSlowest(p.errb.String())
	return dr, shown, nil
}

func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

var reasonRE = regexp.MustCompile(`reason=("[^"]*"|\S+)`)

var slowestRE = regexp.MustCompile(`slowest=("[^"]*"|\S+)`)

// drainSlowest picks the callers that held the drain out of its "drain
// ended" log line; "" if it names none.
func drainSlowest(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "drain ended") {
			if m := slowestRE.FindStringSubmatch(line); m != nil {
				return strings.Trim(m[1], `"`)
			}
		}
	}
	return ""
}

// drainReason picks the reason out of gracefulinit's "drain ended" log
// line, or says why there is none.
func drainReason(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "drain ended") {
			continue
		}
		if m := reasonRE.FindStringSubmatch(line); m != nil {
			return strings.Trim(m[1], `"`)
		}
	}
	if strings.Contains(logs, "app exited during the drain") {
		return "app-exit"
	}
	return "unknown"
}

// drainCPU opens n idle keep-alive connections to the app and samples
// gracefulinit's CPU time over window: after SIGTERM, while it drains, when
// term is set; otherwise while the app runs (and a watched drain learns).
func (r *runner) drainCPU(ctx context.Context, gi Init, name string, flags []string, n int, window time.Duration, term bool) (CPURow, error) {
	row := CPURow{Variant: name, Phase: "running", Flags: append(append([]string(nil), flags...), "--port", "P"), IdleConns: n}
	if term {
		row.Phase = "draining"
	}
	p, pid, port, err := r.startServer(ctx, gi, flags)
	if err != nil {
		return row, err
	}
	defer p.kill()
	conns, err := idleConns(ctx, port, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return row, err
	}
	if term {
		if err := unix.Kill(pid, unix.SIGTERM); err != nil {
			return row, err
		}
	}
	// The first moments of the stop sequence (logging, starting the
	// watcher) are not the steady cost being measured; nor is opening
	// the connections.
	time.Sleep(250 * time.Millisecond)
	type sample struct {
		at     time.Time
		ticks  uint64
		schedN int64
	}
	read := func() (sample, error) {
		st, err := readStat(pid)
		if err != nil {
			return sample{}, err
		}
		n, err := cpuNanos(pid)
		if err != nil {
			return sample{}, err
		}
		return sample{at: time.Now(), ticks: st.UTime + st.STime, schedN: n}, nil
	}
	first, err := read()
	if err != nil {
		return row, fmt.Errorf("gracefulinit gone right after SIGTERM: %w: %s", err, p.errb.tail())
	}
	lastS := first
	end := first.at.Add(window)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return row, ctx.Err()
		case l, ok := <-p.lines:
			if !ok || strings.HasPrefix(l, "term ") {
				row.EndedEarly = true
				break loop
			}
		case <-tick.C:
			s, err := read()
			if err != nil {
				row.EndedEarly = true
				break loop
			}
			lastS = s
		}
	}
	secs := lastS.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return row, fmt.Errorf("the drain ended before CPU could be sampled: %s", p.errb.tail())
	}
	row.WindowS = secs
	row.TicksMSPerS = float64(lastS.ticks-first.ticks) * (1000 / clkTck) / secs
	row.SchedMSPerS = float64(lastS.schedN-first.schedN) / 1e6 / secs
	if row.EndedEarly {
		_ = p.wait(5 * time.Second)
		row.DrainEndReason = drainReason(p.errb.String())
	}
	return row, nil
}

// idleConns opens n connections to the app, sends one keep-alive request
// on each and leaves them open and idle.
func idleConns(ctx context.Context, port, n int) ([]net.Conn, error) {
	var conns []net.Conn
	d := net.Dialer{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
			return conns, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return conns, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_ = c.SetDeadline(time.Time{})
	}
	return conns, nil
}
