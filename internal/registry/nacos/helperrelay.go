package nacos

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
)

// helperLimits bound what a helper can cost PID 1, whatever it writes.
// A real helper writes a few records a minute; these only matter for one
// that floods (a logging loop in the SDK, a bug): PID 1 then reads its
// pipes at readRate, so the flooder waits on its full pipe, and relays
// records at recordRate, counting the rest.
var helperLimits = struct {
	readRate    int           // bytes a second read from each of its pipes
	recordRate  float64       // records and stderr lines relayed a second
	recordBurst float64       // relayed at once after a quiet spell
	recordMax   int           // a longer record is relayed cut, as text
	queue       int           // records waiting for the log writer
	dropReport  time.Duration // how often a line counts what was dropped
}{
	readRate:    1 << 20,
	recordRate:  20,
	recordBurst: 100,
	recordMax:   8 << 10,
	queue:       256,
	dropReport:  10 * time.Second,
}

// pacedReader reads at most rate bytes a second from r, in windows of a
// second: a writer faster than that blocks on its pipe. Windows, not a
// smooth rate: a flood costs one wake-up a second (and each wake-up keeps
// the Go runtime's sysmon thread busy for a while), a helper that writes
// less never waits.
type pacedReader struct {
	r      io.Reader
	rate   int
	start  time.Time
	budget int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	const window = time.Second
	perWindow := max(p.rate, 1)
	if now := time.Now(); now.Sub(p.start) >= window {
		p.start, p.budget = now, perWindow
	} else if p.budget <= 0 {
		time.Sleep(window - now.Sub(p.start))
		p.start, p.budget = time.Now(), perWindow
	}
	if len(b) > p.budget {
		b = b[:p.budget]
	}
	n, err := p.r.Read(b)
	p.budget -= n
	return n, err
}

// relayPause spaces the relay's batches.
const relayPause = 500 * time.Millisecond

type relayKind uint8

const (
	relayRecord relayKind = iota // a line of its stdout that is not a reply
	relayStderr                  // a line of its stderr
)

type relayed struct {
	kind relayKind
	text string
	cut  bool
}

// relay passes a helper's log records and stderr lines on to PID 1's log:
// each through redact, at most helperLimits.recordRate a second (the rest
// dropped and counted, a line every dropReport says how many), and from a
// goroutine of its own, so a slow log never holds the pipe readers, and
// with them the helper's replies.
type relay struct {
	log     *slog.Logger
	secrets []string

	mu     sync.Mutex // the token bucket, shared by both readers of every run
	tokens float64
	last   time.Time
	skip   int // lines to drop before the clock is read again

	dropped atomic.Int64
	armed   atomic.Bool // a drop report is scheduled

	q         chan relayed
	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
}

func newRelay(log *slog.Logger, secrets ...string) *relay {
	return &relay{
		log: log, secrets: secrets,
		tokens: helperLimits.recordBurst, last: time.Now(),
		q:    make(chan relayed, helperLimits.queue),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// offer hands one line to the log writer, or counts it dropped. It never
// blocks and costs a reader little: the line is decoded later, only if
// it is relayed.
func (r *relay) offer(kind relayKind, line []byte, cut bool) {
	r.startOnce.Do(func() { go r.run() })
	if !r.allow() {
		r.drop()
		return
	}
	if len(line) > helperLimits.recordMax {
		line, cut = line[:helperLimits.recordMax], true
	}
	select {
	case r.q <- relayed{kind: kind, text: string(line), cut: cut}:
	default:
		r.drop()
	}
}

func (r *relay) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tokens < 1 {
		// Out of tokens, a flood is on: read the clock every 64th line
		// only, it costs more than the rest of a dropped line.
		if r.skip > 0 {
			r.skip--
			return false
		}
		now := time.Now()
		r.tokens = min(helperLimits.recordBurst, r.tokens+now.Sub(r.last).Seconds()*helperLimits.recordRate)
		r.last = now
		if r.tokens < 1 {
			r.skip = 63
			return false
		}
	}
	r.tokens--
	return true
}

func (r *relay) drop() {
	r.dropped.Add(1)
	if r.armed.CompareAndSwap(false, true) {
		time.AfterFunc(helperLimits.dropReport, func() {
			r.armed.Store(false)
			r.report()
		})
	}
}

// report logs how many lines were dropped since the last report.
func (r *relay) report() {
	if n := r.dropped.Swap(0); n > 0 {
		r.log.Warn("nacos helper: log lines dropped over the relay's limit", "dropped", n,
			"limit_per_s", helperLimits.recordRate)
	}
}

func (r *relay) run() {
	defer close(r.done)
	for {
		select {
		case it := <-r.q:
			// What came meanwhile, then a pause: a flood is printed in
			// batches, a few wake-ups a second, not one per record.
			r.print(it)
			for n := len(r.q); n > 0; n-- {
				r.print(<-r.q)
			}
			select {
			case <-time.After(relayPause):
			case <-r.stop:
			}
		case <-r.stop:
			for {
				select {
				case it := <-r.q:
					r.print(it)
				default:
					r.report()
					return
				}
			}
		}
	}
}

// close relays what is queued, reports the drops and stops, within ctx.
func (r *relay) close(ctx context.Context) {
	r.startOnce.Do(func() { close(r.done) }) // never started: nothing to flush
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
	case <-ctx.Done():
		r.report() // the count at least, if the queue could not be flushed
	}
}

func (r *relay) print(it relayed) {
	if err := registry.Recover("relaying the nacos helper's log", func() error { r.printOne(it); return nil }); err != nil {
		r.log.Error("nacos helper: relaying its log panicked; line dropped", "error", redact.Text(err.Error(), r.secrets...))
	}
}

func (r *relay) printOne(it relayed) {
	text := redact.Text(it.text, r.secrets...)
	args := []any{"line", text}
	if it.cut {
		args = append(args, "cut", true)
	}
	if it.kind == relayStderr {
		r.log.Debug("nacos helper stderr", args...)
		return
	}
	var m map[string]any
	if it.cut || json.Unmarshal([]byte(text), &m) != nil {
		r.log.Debug("nacos helper: unparsed output", args...)
		return
	}
	// Again once decoded: a JSON escape (\u0073) can spell a secret the
	// text did not show.
	relog(r.log, redactValue(m, r.secrets).(map[string]any))
}

// redactValue redacts every string in a decoded JSON value, keys included.
func redactValue(v any, secrets []string) any {
	switch v := v.(type) {
	case string:
		return redact.Text(v, secrets...)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[redact.Text(k, secrets...)] = redactValue(x, secrets)
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = redactValue(x, secrets)
		}
		return v
	}
	return v
}

// relog writes one of the helper's slog records through our logger.
func relog(log *slog.Logger, m map[string]any) {
	var level slog.Level
	if s, ok := m["level"].(string); !ok || level.UnmarshalText([]byte(s)) != nil {
		level = slog.LevelInfo
	}
	msg, _ := m["msg"].(string)
	if !log.Enabled(context.Background(), level) {
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
	log.Log(context.Background(), level, msg, attrs...)
}
