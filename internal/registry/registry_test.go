package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
