package drain

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// DefaultLearnInterval is a Learner's sampling period when
// Options.LearnInterval is 0. A sample costs 1 to 5 ms of CPU (more on a
// loaded machine), most of it the kernel's walk of its whole (host-wide)
// table of established sockets, so one every 10 s keeps learning under
// 0.1% of a core with 1,000 open connections (make bench measures it).
// Gaps shorter than that are still learned: see Peers.Observe. A caller
// is learned once two samples have seen it: 10 to 20 s after it began.
const DefaultLearnInterval = 10 * time.Second

// Learner watches the app's connections while it runs, so that the drain
// knows each caller's habits when the stop signal comes. It runs one
// goroutine, from Learn until Drain takes over its state or Stop.
type Learner struct {
	o    Options
	log  *slog.Logger
	take chan chan learned
	quit chan struct{}
	done chan struct{}
	stop sync.Once
}

// Learn starts learning the callers of o.Ports.
func Learn(o Options, log *slog.Logger) *Learner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Learner{o: o, log: log, take: make(chan chan learned), quit: make(chan struct{}), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *Learner) loop() {
	defer close(l.done)
	st := learned{peers: NewPeers(l.o.Ignore)}
	unavailable := false
	open := func() {
		w, err := newSampler(l.o.Ports, l.o.Addrs)
		if err != nil {
			// The drain tries again and warns; here it would only repeat.
			l.log.Debug("drain: cannot learn the app's callers", "err", err)
			unavailable = errors.Is(err, ErrUnavailable)
			return
		}
		st.w = w
		if f, ok := w.(opener); ok {
			s := f.firstSample()
			st.peers.Observe(s.At, s.Peers)
		}
	}
	open()
	interval := l.o.LearnInterval
	if interval <= 0 {
		interval = DefaultLearnInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case reply := <-l.take:
			reply <- st
			return
		case <-l.quit:
			if st.w != nil {
				_ = st.w.Close()
			}
			return
		case <-tick.C:
			if st.w == nil {
				if !unavailable {
					open()
				}
				continue
			}
			s, err := st.w.Sample()
			if err != nil {
				l.log.Debug("drain: sampling the app's callers failed; reopening", "err", err)
				_ = st.w.Close()
				st.w = nil
				continue
			}
			st.peers.Observe(s.At, s.Peers)
		}
	}
}

// Drain ends the learning and runs the drain with what was learned, as
// RunDetailed does; o's Ports and Addrs must be the ones Learn was given.
// After Stop it drains knowing nothing, like RunDetailed.
func (l *Learner) Drain(ctx context.Context, o Options, log *slog.Logger) Result {
	reply := make(chan learned, 1)
	var st learned
	select {
	case l.take <- reply:
		st = <-reply
	case <-l.done:
	}
	return run(ctx, o, log, st, func(ports []int) (sampler, error) { return newSampler(ports, o.Addrs) })
}

// Stop ends the learning if Drain has not taken it over, and waits for
// its goroutine. It may be called more than once.
func (l *Learner) Stop() {
	l.stop.Do(func() { close(l.quit) })
	<-l.done
}
