//go:build linux

package drain

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkSample measures one sample: the netlink dump and its parsing,
// with conns established connections on the watched port, for both ways of
// asking the kernel, and without the kernel-side port filter (the client
// ends of the connections, on other ports, are then described too and
// dropped here).
func BenchmarkSample(b *testing.B) {
	for _, conns := range []int{0, 100, 1000} {
		srv := startServer(b, families[0], serveRead)
		for range conns {
			dial(b, srv)
		}
		for _, c := range []reqConfig{{modeLegacy, true}, {modeV2, true}, {modeLegacy, false}} {
			b.Run(fmt.Sprintf("%s/conns=%d", c, conns), func(b *testing.B) {
				w, err := openWatcher([]int{srv.port}, nil, []reqConfig{c}, joinGroup)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = w.Close() }()
				b.ReportAllocs()
				var s Sample
				// CPU time as well as wall time: on a loaded machine the
				// wall time counts the waits for a core too.
				c0 := cpuTime(b)
				for b.Loop() {
					if s, err = w.Sample(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime(b)-c0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
				if s.Conns < conns {
					b.Fatalf("sample saw %d connections, want %d", s.Conns, conns)
				}
			})
		}
	}
}

// cpuTime is the CPU time this process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWatchCPU measures the CPU time a quiet drain costs per second
// of watching at the default interval, against the same time idle:
// cpu-ms/s is the drain's share, idle-cpu-ms/s what the test process spends
// anyway. With churn, a client in the same process opens, uses and closes
// a connection every 10 ms, idle or not: the drain then reads about one
// destroy message per connection. Each case runs with the destroy messages
// and without (as without CAP_NET_ADMIN), to show what reading them costs.
func BenchmarkWatchCPU(b *testing.B) {
	const period = 3 * time.Second
	tests := []struct {
		conns int
		churn bool
	}{{0, false}, {1000, false}, {0, true}}
	watches := []struct {
		name string
		join joinFunc
	}{
		{"destroy", joinGroup},
		{"sampling-only", func(int, int) error { return unix.EPERM }},
	}
	for _, tt := range tests {
		for _, wt := range watches {
			benchWatchCPU(b, period, tt.conns, tt.churn, wt.name, wt.join)
		}
	}
}

func benchWatchCPU(b *testing.B, period time.Duration, conns int, churn bool, name string, join joinFunc) {
	b.Run(fmt.Sprintf("conns=%d/churn=%t/%s", conns, churn, name), func(b *testing.B) {
		mode := serveRead
		if churn {
			mode = serveRespond
		}
		srv := startServer(b, families[0], mode)
		for range conns {
			dial(b, srv)
		}
		if churn {
			ctx, stop := context.WithCancel(b.Context())
			c := startOneShotClient(ctx, srv.addr, 10*time.Millisecond)
			b.Cleanup(func() {
				stop()
				if _, n, err := c.wait(); err != nil {
					b.Errorf("client: %v after %d requests", err, n)
				}
			})
		}
		log := slog.New(slog.DiscardHandler)
		var watch, idle time.Duration
		samples := 0
		for b.Loop() {
			c0 := cpuTime(b)
			time.Sleep(period)
			c1 := cpuTime(b)
			res := run(b.Context(), Options{Policy: Policy{Max: period, Quiet: time.Hour}, Ports: []int{srv.port}}, log, learned{},
				func(ports []int) (sampler, error) { return openWatcher(ports, nil, defaultConfigs, join) })
			c2 := cpuTime(b)
			if res.Reason != ReasonCeiling || res.Fallback {
				b.Fatalf("drain %+v, want ReasonCeiling without fallback", res)
			}
			idle += c1 - c0
			watch += c2 - c1
			samples += res.Samples
		}
		secs := float64(b.N) * period.Seconds()
		b.ReportMetric(float64(watch-idle)/float64(time.Millisecond)/secs, "cpu-ms/s")
		b.ReportMetric(float64(idle)/float64(time.Millisecond)/secs, "idle-cpu-ms/s")
		b.ReportMetric(float64(samples)/secs, "samples/s")
	})
}

// BenchmarkQuietDelay measures how long after the quiet time a drain ends:
// the drain's end, minus the last request, minus Quiet, at the default
// interval. A drain that ended at the first sample after the quiet time
// would be up to an interval (100 ms) late; this one aims at the deadline
// itself. Reported as the median and the worst over at least 15 drains.
func BenchmarkQuietDelay(b *testing.B) {
	const quiet = 300 * time.Millisecond
	srv := startServer(b, families[0], serveRead)
	log := slog.New(slog.DiscardHandler)
	var delays, stampErrs []float64
	for b.Loop() {
		for len(delays) < 15 || len(delays) < b.N {
			// A connection of its own per drain: on one kept across them,
			// each drain would see the time since the previous one as the
			// caller's gap, and wait twice that.
			conn := dial(b, srv)
			start, ch := runAsync(b.Context(), Options{Policy: Policy{Max: 5 * time.Second, Quiet: quiet}, Ports: []int{srv.port}}, log)
			var last time.Time
			for range 4 {
				time.Sleep(50 * time.Millisecond)
				last = send(b, conn)
			}
			res := await(b, ch, 10*time.Second)
			_ = conn.Close()
			if res.Reason != ReasonAllQuiet {
				b.Fatalf("drain %+v, want ReasonAllQuiet", res)
			}
			end := start.Add(res.Elapsed)
			delays = append(delays, float64(end.Sub(last)-quiet)/float64(time.Millisecond))
			stampErrs = append(stampErrs, float64(res.LastActivity.Sub(last))/float64(time.Millisecond))
		}
	}
	slices.Sort(delays)
	slices.Sort(stampErrs)
	b.ReportMetric(delays[len(delays)/2], "ms-after-quiet")
	b.ReportMetric(delays[len(delays)-1], "ms-after-quiet-max")
	b.ReportMetric(stampErrs[len(stampErrs)/2], "ms-stamp-error")
}

// BenchmarkReadGone measures what reading destroy messages adds to a
// sample: gone connections, opened and closed by the client since the
// previous sample, each announced by one message, read and parsed. Only
// that is timed, in CPU time, reported per sample (cpu-µs/op) and per
// message (cpu-µs/msg). 100 is about what the default socket buffer holds
// before it overflows.
func BenchmarkReadGone(b *testing.B) {
	srv := startServer(b, families[0], serveRespond)
	for _, gone := range []int{0, 100} {
		b.Run(fmt.Sprintf("gone=%d", gone), func(b *testing.B) {
			w, err := openWatcher([]int{srv.port}, nil, defaultConfigs, joinGroup)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = w.Close() }()
			if w.gone == nil {
				b.Fatalf("destroyed sockets not watched: %v", w.goneErr)
			}
			// No allocation report: the client's would drown the reader's,
			// which TestSampleAllocsWithGone checks are none.
			var cpu time.Duration
			for b.Loop() {
				for range gone {
					if _, err := requestOnce(srv.addr); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(20 * time.Millisecond) // for the server's closes
				c0 := cpuTime(b)
				w.begin(time.Now())
				w.readGone()
				cpu += cpuTime(b) - c0
				if len(w.gone.evs) != gone {
					b.Fatalf("read %d destroy messages, want %d", len(w.gone.evs), gone)
				}
			}
			b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
			if gone > 0 {
				b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N*gone), "cpu-µs/msg")
			}
		})
	}
}
