package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is a Registry whose calls fail a set number of times, or hang.
type scripted struct {
	name          string
	failOnline    int32
	failOffline   int32
	hang          bool
	notFound      bool // Offline finds no instance
	online, offln atomic.Int32
	closed        atomic.Int32
}

func (s *scripted) Name() string { return s.name }

func (s *scripted) call(ctx context.Context, n *atomic.Int32, fail int32) error {
	c := n.Add(1)
	if s.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if c <= fail {
		return errors.New("connection refused")
	}
	return nil
}

func (s *scripted) Online(ctx context.Context) error { return s.call(ctx, &s.online, s.failOnline) }
func (s *scripted) Offline(ctx context.Context) error {
	if s.notFound {
		s.offln.Add(1)
		return fmt.Errorf("no instance 10.0.0.5:8080 in orders: %w", ErrNotFound)
	}
	return s.call(ctx, &s.offln, s.failOffline)
}
func (s *scripted) Close(ctx context.Context) error { s.closed.Add(1); return nil }

func newSet(regs ...Registry) *Set {
	return &Set{Registries: regs, Timeout: 200 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestOnlineRetriesUntilSuccess(t *testing.T) {
	a, b := &scripted{name: "a", failOnline: 3}, &scripted{name: "b"}
	newSet(a, b).Online(context.Background())
	if a.online.Load() != 4 || b.online.Load() != 1 {
		t.Fatalf("online attempts a=%d b=%d, want 4 and 1", a.online.Load(), b.online.Load())
	}
}

func TestOnlineStopsWhenShutdownBegins(t *testing.T) {
	a := &scripted{name: "a", failOnline: 1 << 30}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { newSet(a).Online(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Online kept retrying after its context ended")
	}
}

func TestOfflineRetriesWithinBudget(t *testing.T) {
	tests := []struct {
		name    string
		reg     *scripted
		budget  time.Duration
		wantErr bool
	}{
		{"succeeds first time", &scripted{name: "a"}, time.Second, false},
		{"registry back after two failures", &scripted{name: "a", failOffline: 2}, 2 * time.Second, false},
		{"registry down for the whole budget", &scripted{name: "a", failOffline: 1 << 30}, 150 * time.Millisecond, true},
		{"registry hangs: bounded by the budget", &scripted{name: "a", hang: true}, 300 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.budget)
			defer cancel()
			start := time.Now()
			err := newSet(tt.reg).Offline(ctx)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Offline error = %v, want error %v", err, tt.wantErr)
			}
			if took := time.Since(start); took > tt.budget+time.Second {
				t.Fatalf("Offline took %v, past its budget %v", took, tt.budget)
			}
		})
	}
}

func TestCloseCallsEveryRegistry(t *testing.T) {
	a, b := &scripted{name: "a"}, &scripted{name: "b"}
	if err := newSet(a, b).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.closed.Load() != 1 || b.closed.Load() != 1 {
		t.Fatal("Close must reach every registry once")
	}
}

// panicky panics in every call, the first time or always.
type panicky struct {
	onlineCalls atomic.Int32
}

func (p *panicky) Name() string { return "p" }
func (p *panicky) Online(context.Context) error {
	if p.onlineCalls.Add(1) == 1 {
		panic("first online")
	}
	return nil
}
func (p *panicky) Offline(context.Context) error { panic("offline") }
func (p *panicky) Close(context.Context) error   { panic(errors.New("close")) }

// TestPanicsBecomeErrors: the Set runs in PID 1's goroutines; a panicking
// registry costs its step, which is retried or reported, never the process.
func TestPanicsBecomeErrors(t *testing.T) {
	p := &panicky{}
	s := newSet(p, &scripted{name: "ok"})
	s.Online(context.Background())
	if n := p.onlineCalls.Load(); n != 2 {
		t.Errorf("online calls %d, want 2 (the panic retried like an error)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	tests := []struct {
		step string
		call func(context.Context) error
		want string
	}{
		{"offline", s.Offline, "p: panic in p offline: offline"},
		{"close", s.Close, "p: panic in p close: close"},
	}
	for _, tt := range tests {
		err := tt.call(ctx)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.step, err, tt.want)
		}
	}
}

// An instance the registry does not hold is final: no retry, and the
// joined error still says not-found (the summary reports it as such).
func TestOfflineNotFoundIsFinal(t *testing.T) {
	tests := []struct {
		name         string
		regs         []*scripted
		wantNotFound bool
		wantErr      bool
	}{
		{"found", []*scripted{{name: "a"}}, false, false},
		{"not found", []*scripted{{name: "a", notFound: true}}, true, true},
		{"one of two not found", []*scripted{{name: "a"}, {name: "b", notFound: true}}, true, true},
		{"failed", []*scripted{{name: "a", failOffline: 1 << 30}}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var regs []Registry
			for _, r := range tt.regs {
				regs = append(regs, r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := newSet(regs...).Offline(ctx)
			if (err != nil) != tt.wantErr || errors.Is(err, ErrNotFound) != tt.wantNotFound {
				t.Fatalf("Offline error = %v, want error %v, not-found %v", err, tt.wantErr, tt.wantNotFound)
			}
			for _, r := range tt.regs {
				if r.notFound && r.offln.Load() != 1 {
					t.Fatalf("%s: %d Offline attempts for a missing instance, want 1", r.name, r.offln.Load())
				}
			}
		})
	}
}

// A registration that comes late is picked up within 5 s of it at most.
func TestOnlineBackoffCap(t *testing.T) {
	first, limit := (&Set{}).onlineDelays()
	var got []time.Duration
	for d := first; len(got) < 7; d = min(2*d, limit) {
		got = append(got, d)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("default Online delays %v, want %v", got, want)
	}
}

// regMode is a scripted registry that registers for the app (register mode).
type regMode struct{ scripted }

func (*regMode) SelfRegistered() bool { return false }

// TestOfflineBeforeOnline: a stop while the app starts takes out only the
// instances the app registered itself; one gracefulinit registers (register
// mode) does not exist before Online, so its Offline is not called.
func TestOfflineBeforeOnline(t *testing.T) {
	for _, tc := range []struct {
		name         string
		online       bool
		wantRegister int32
	}{
		{"stop while starting", false, 0},
		{"stop after online", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark, reg := &scripted{name: "mark"}, &regMode{scripted{name: "register"}}
			s := newSet(mark, reg)
			if !s.SelfRegistered() || newSet(reg).SelfRegistered() {
				t.Fatal("SelfRegistered: want true with a mark-mode registry only")
			}
			if tc.online {
				s.Online(context.Background())
			}
			if err := s.Offline(context.Background()); err != nil {
				t.Fatal(err)
			}
			if mark.offln.Load() != 1 || reg.offln.Load() != tc.wantRegister {
				t.Fatalf("offline calls mark=%d register=%d, want 1 and %d", mark.offln.Load(), reg.offln.Load(), tc.wantRegister)
			}
		})
	}
}

// holder is a Registry whose Hold answers from a script, one state per
// look (the last one repeats), recording the looks.
type holder struct {
	scripted
	states []HoldState
	errs   []error
	looks  atomic.Int32
	slow   time.Duration // each look takes this long, whatever the stop
}

func (h *holder) Hold(ctx context.Context) (HoldState, error) {
	i := int(h.looks.Add(1)) - 1
	if h.slow > 0 {
		time.Sleep(h.slow)
	}
	var err error
	if i < len(h.errs) {
		err = h.errs[i]
	}
	return h.states[min(i, len(h.states)-1)], err
}

// TestHold: the hold looks until stopped, logs the first take-out at INFO,
// each re-application, a registry it cannot reach once at WARN, and gives
// up after MaxHoldApplies; a registry that registers for the app (register
// mode) is not held.
func TestHold(t *testing.T) {
	down := errors.New("connection refused")
	always := make([]HoldState, maxHoldWrites+5)
	flapping := make([]HoldState, 2*MaxHoldApplies+5)
	for i := range always {
		always[i] = HoldApplied
	}
	for i := range flapping {
		flapping[i] = []HoldState{HoldApplied, HoldKept}[i%2]
	}
	for _, tc := range []struct {
		name     string
		h        *holder
		looks    int // looks before the stop
		wantInfo []string
		wantWarn []string

		wantLooks int32 // exact looks; 0: at least `looks`
	}{
		{"appears, then kept", &holder{states: []HoldState{HoldAbsent, HoldAbsent, HoldApplied, HoldKept}}, 6,
			[]string{"registry hold: the app registered itself before it was ready"}, nil, 0},
		{"dropped and re-applied", &holder{states: []HoldState{HoldApplied, HoldKept, HoldApplied, HoldKept}}, 6,
			[]string{"registry hold: the app registered", "registry hold re-applied"}, nil, 0},
		{"registry down, warned once", &holder{states: []HoldState{HoldAbsent}, errs: []error{down, down, down}}, 5,
			nil, []string{"registry hold: cannot keep the app's own registration out of rotation"}, 0},
		{"a cached read shows the write late: not a re-application", &holder{states: []HoldState{HoldApplied, HoldApplied, HoldApplied, HoldKept}}, 6,
			[]string{"registry hold: the app registered"}, nil, 0},
		{"registered out as its environment told it", &holder{states: []HoldState{HoldAbsent, HoldRegisteredOut, HoldKept}}, 6,
			[]string{"registry hold: the app registered itself out of rotation, as its environment told it"}, nil, 0},
		{"registered out, a cached read shows the disable late", &holder{states: []HoldState{HoldRegisteredOut, HoldApplied, HoldApplied, HoldKept}}, 6,
			[]string{"registry hold: the app registered itself out of rotation"}, nil, 0},
		{"bounded re-application", &holder{states: flapping}, 0,
			nil, []string{"registry hold given up"}, 2*MaxHoldApplies - 1},
		{"bounded writes", &holder{states: always}, 0,
			nil, []string{"registry hold given up"}, maxHoldWrites},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuf
			s := newSet(tc.h)
			s.HoldInterval = 5 * time.Millisecond
			s.Log = slog.New(slog.NewTextHandler(&buf, nil))
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { s.Hold(stop); close(done) }()
			if tc.wantLooks == 0 {
				for int(tc.h.looks.Load()) < tc.looks {
					time.Sleep(time.Millisecond)
				}
			}
			if tc.wantLooks > 0 {
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("the hold did not give up")
				}
			}
			close(stop)
			<-done
			if tc.wantLooks > 0 && tc.h.looks.Load() != tc.wantLooks {
				t.Fatalf("%d looks, want %d", tc.h.looks.Load(), tc.wantLooks)
			}
			out := buf.String()
			for _, w := range tc.wantInfo {
				if !strings.Contains(out, "level=INFO msg=\""+w) {
					t.Errorf("no INFO %q in:\n%s", w, out)
				}
			}
			if strings.Contains(tc.name, "cached") && strings.Contains(out, "re-applied") {
				t.Errorf("a write that shows late was logged as re-applied:\n%s", out)
			}
			if strings.Contains(tc.name, "registered out") && strings.Contains(out, "before it was ready") {
				t.Errorf("a registration out of rotation was logged as one taken out:\n%s", out)
			}
			for _, w := range tc.wantWarn {
				if n := strings.Count(out, "level=WARN msg=\""+w); n != 1 {
					t.Errorf("WARN %q %d times, want once, in:\n%s", w, n, out)
				}
			}
			if len(tc.wantWarn) == 0 && strings.Contains(out, "level=WARN") {
				t.Errorf("unexpected WARN:\n%s", out)
			}
		})
	}
}

// TestHoldStop: a stop waits for the look in flight (its write must land
// before Online), and a register-mode registry is never looked at.
func TestHoldStop(t *testing.T) {
	h := &holder{states: []HoldState{HoldApplied, HoldKept}, slow: 200 * time.Millisecond}
	reg := &holder{states: []HoldState{HoldApplied}}
	s := newSet(h, &regModeHolder{reg})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { s.Hold(stop); close(done) }()
	for h.looks.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	start := time.Now()
	<-done
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("Hold returned %v after the stop, while a look was in flight", took)
	}
	if reg.looks.Load() != 0 {
		t.Fatalf("a register-mode registry was held (%d looks)", reg.looks.Load())
	}
}

type regModeHolder struct{ *holder }

func (regModeHolder) SelfRegistered() bool { return false }

// syncBuf is a bytes.Buffer safe for the hold's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// envHolder is a holder whose app can be told through its environment.
type envHolder struct {
	holder
	self bool
	add  []string
	seen map[string]string
}

func (e *envHolder) SelfRegistered() bool { return e.self }

func (e *envHolder) AppEnv(lookup func(string) (string, bool)) []string {
	e.seen = map[string]string{}
	if v, ok := lookup("SEEN"); ok {
		e.seen["SEEN"] = v
	}
	return e.add
}

// TestSetAppEnv: only self-registered registries that can be told add
// variables, in registry order, each given the environment; the hold off
// adds none.
func TestSetAppEnv(t *testing.T) {
	lookup := func(k string) (string, bool) { return map[string]string{"SEEN": "1"}[k], k == "SEEN" }
	a := &envHolder{self: true, add: []string{"A=0"}}
	b := &envHolder{self: false, add: []string{"B=0"}} // register mode
	c := &envHolder{self: true, add: []string{"C=OUT_OF_SERVICE"}}
	plain := &holder{}
	for _, tc := range []struct {
		name   string
		noHold bool
		want   []string
	}{
		{"hold on", false, []string{"A=0", "C=OUT_OF_SERVICE"}},
		{"hold off", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Set{Registries: []Registry{a, b, plain, c}, NoHold: tc.noHold}
			got := s.AppEnv(lookup)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("AppEnv = %q, want %q", got, tc.want)
			}
			if !tc.noHold && a.seen["SEEN"] != "1" {
				t.Errorf("the registry was not given the environment: %v", a.seen)
			}
		})
	}
}

// keeper is a scripted registry whose Keep answers from a script.
type keeper struct {
	scripted
	puts  []bool
	errs  []error
	looks atomic.Int32
	self  bool
}

func (k *keeper) SelfRegistered() bool { return k.self }

func (k *keeper) Keep(ctx context.Context) (bool, error) {
	i := int(k.looks.Add(1)) - 1
	var err error
	if i < len(k.errs) {
		err = k.errs[i]
	}
	return i < len(k.puts) && k.puts[i], err
}

// TestKeep: after Online a told app's registration is looked at until the
// stop (ctx) ends it; a put back is logged, a registry that fails is
// warned of once per run of failures; with the hold off, or in register
// mode, nothing looks.
func TestKeep(t *testing.T) {
	down := errors.New("connection refused")
	for _, tc := range []struct {
		name      string
		k         *keeper
		noHold    bool
		wantLooks bool
		wantInfo  []string
		wantWarns int
	}{
		{"put back", &keeper{self: true, puts: []bool{false, true, false}}, false, true,
			[]string{"registry keep: the app registered itself again out of rotation"}, 0},
		{"failing, warned once, then answers", &keeper{self: true, errs: []error{down, down, down, nil}}, false, true,
			[]string{"registry keep: the registry answers again"}, 1},
		{"hold off", &keeper{self: true}, true, false, nil, 0},
		{"register mode", &keeper{self: false}, false, false, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuf
			s := &Set{Registries: []Registry{tc.k}, NoHold: tc.noHold, KeepInterval: 5 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&buf, nil))}
			ctx, cancel := context.WithCancel(context.Background())
			s.Online(ctx)
			if tc.wantLooks {
				deadline := time.Now().Add(10 * time.Second)
				for tc.k.looks.Load() < 6 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
			} else {
				time.Sleep(100 * time.Millisecond)
			}
			cancel()
			time.Sleep(50 * time.Millisecond)
			n := tc.k.looks.Load()
			time.Sleep(50 * time.Millisecond)
			if m := tc.k.looks.Load(); m != n {
				t.Errorf("looks went on after the stop: %d then %d", n, m)
			}
			if got := n > 0; got != tc.wantLooks {
				t.Fatalf("%d looks, want looks %v", n, tc.wantLooks)
			}
			out := buf.String()
			for _, w := range tc.wantInfo {
				if !strings.Contains(out, "level=INFO msg=\""+w) {
					t.Errorf("no INFO %q in:\n%s", w, out)
				}
			}
			if n := strings.Count(out, "level=WARN msg=\"registry keep"); n != tc.wantWarns {
				t.Errorf("%d keep WARNs, want %d:\n%s", n, tc.wantWarns, out)
			}
		})
	}
}
