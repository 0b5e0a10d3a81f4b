package drain

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// DefaultLearnInterval is a typical period of a Learner's samples when
// Options.LearnInterval is 0: what one costs with about 1,000 watched
// connections, spread to stay within learnBudget of a core. A sample costs
// 0.5 to 10 ms of CPU (more on a loaded machine), most of it the kernel's
// walk of its whole (host-wide) table of established sockets and its
// description of each watched one. A Learner paces itself by what its
// samples cost (make bench measures it with 1,000 connections): as often
// as the budget allows, down to earlyFloor in the pod's first earlyLearn,
// when history is short, and to lateFloor later; never less often than
// every 3 x DefaultLearnInterval. Its periods vary by a fifth either way,
// so that no caller's rhythm can keep in step with them and hide its gaps
// (see Peers.Observe).
const DefaultLearnInterval = 10 * time.Second

const (
	learnBudget = 0.0005
	earlyLearn  = 2 * time.Minute
	earlyFloor  = 250 * time.Millisecond
	lateFloor   = 2 * time.Second
)

// learnPace is the period after a sample that cost cost, since had passed
// since learning began; r in [0, 1) varies it.
func learnPace(cost, since time.Duration, r float64) time.Duration {
	floor := lateFloor
	if since < earlyLearn {
		floor = earlyFloor
	}
	d := max(floor, time.Duration(float64(cost)/learnBudget))
	d = min(d, 3*DefaultLearnInterval)
	return time.Duration(float64(d) * (0.8 + 0.4*r))
}

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
	began := time.Now()
	opened := false
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
			if !opened {
				s.Peers = closedSince(s.Peers, began)
			}
			st.peers.Observe(s.At, s.Peers)
		}
		opened = true
	}
	open()
	var cost time.Duration // a recent sample's cost, smoothed
	pace := func() time.Duration {
		if l.o.LearnInterval > 0 {
			return l.o.LearnInterval
		}
		return learnPace(cost, time.Since(began), rand.Float64())
	}
	tick := time.NewTimer(pace())
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
				tick.Reset(max(pace(), lateFloor))
				continue
			}
			var s Sample
			var err error
			if c := cpuCost(func() { s, err = st.w.Sample() }); cost == 0 {
				cost = c
			} else {
				cost = (3*cost + c) / 4
			}
			tick.Reset(pace())
			if err != nil {
				l.log.Debug("drain: sampling the app's callers failed; reopening", "err", err)
				_ = st.w.Close()
				st.w = nil
				continue
			}
			st.peers.Observe(s.At, s.Peers)
			for _, k := range st.peers.NewlyKnown() {
				l.log.Debug("drain: caller's rhythm known", "caller", k.Addr, "gap", k.Gap)
			}
		}
	}
}

// closedSince drops from the first sample of a learning the peers that
// hold no connection and were last active before it began: connections
// closed before the app started (TIME_WAIT sockets a previous process in
// the same network namespace left, as after a container restart) are no
// caller of this app, and would be waited for as rare ones.
func closedSince(acts []PeerActivity, began time.Time) []PeerActivity {
	return slices.DeleteFunc(acts, func(a PeerActivity) bool {
		return a.Conns == 0 && !a.Last.IsZero() && a.Last.Before(began)
	})
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
