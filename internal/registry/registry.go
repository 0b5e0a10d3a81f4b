// Package registry takes the app's instance in and out of service registries.
// Each backend (nacos, eureka) implements Registry; Set runs several of them
// as the supervisor's Hooks, bounding every call and never failing the app.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Registry is one registry backend acting on the app's instance.
// Implementations must honour ctx on every network call and must not log secrets.
type Registry interface {
	// Name is "nacos" or "eureka", for logs.
	Name() string
	// Online puts the app's instance in rotation once the app is ready:
	// mark mode repairs a stale offline override, register mode registers.
	// An error means "try again later"; Set retries it.
	Online(ctx context.Context) error
	// Offline takes the instance out of rotation at drain start. When the
	// registry does not hold the instance it returns an error wrapping
	// ErrNotFound, after logging what it searched and what it found.
	Offline(ctx context.Context) error
	// Close releases resources after the app has exited (register mode:
	// deregister; Eureka mark mode: optional deregister-on-exit).
	Close(ctx context.Context) error
}

// SelfRegistered is a Registry that knows whether the app registers its
// instance itself (mark mode, HTTP hooks) rather than gracefulinit
// registering it once the app is ready (register mode). A self-registered
// instance may be in rotation before the app is ready: a stop while the
// app starts takes it out too. A Registry without the method is taken to
// hold the app's own registration: taking out what may be there is the
// safe side.
type SelfRegistered interface {
	SelfRegistered() bool
}

func selfRegistered(r Registry) bool {
	s, ok := r.(SelfRegistered)
	return !ok || s.SelfRegistered()
}

// Steps is implemented by a Registry that may lack a step (HTTP hooks
// given only --online-http): Set skips a step it lacks, so the summary
// says offline=none rather than ok.
type Steps interface {
	HasOnline() bool
	HasOffline() bool
}

// SelfRetrying is implemented by a Registry whose Online and Offline retry
// and bound each of their calls on their own (HTTP hooks: one retry loop
// per call, so a failing call never holds up the next). Set calls them
// once, with the step's whole context.
type SelfRetrying interface {
	RetriesItself()
}

func hasOnline(r Registry) bool {
	s, ok := r.(Steps)
	return !ok || s.HasOnline()
}

func hasOffline(r Registry) bool {
	s, ok := r.(Steps)
	return !ok || s.HasOffline()
}

func retriesItself(r Registry) bool {
	_, ok := r.(SelfRetrying)
	return ok
}

// HasOffline reports whether any registry has an offline step: without
// one, the supervisor runs no offline step and its summary says none.
func (s *Set) HasOffline() bool {
	for _, r := range s.Registries {
		if hasOffline(r) {
			return true
		}
	}
	return false
}

// Holder is a Registry that can keep the app's own early registration out
// of rotation until the app is ready (mark mode). Hold is one look at the
// app's instance: an instance in rotation is taken out the way Offline does
// it and remembered as held, so that Online puts it back in rotation once
// the app is ready (and warm). Hold never waits for the app to register.
type Holder interface {
	Hold(ctx context.Context) (HoldState, error)
}

// HoldState is what one Hold found.
type HoldState int

const (
	HoldAbsent  HoldState = iota // the app has not registered (yet)
	HoldKept                     // registered and out of rotation already
	HoldApplied                  // was in rotation: taken out now
	// HoldRegisteredOut: the app registered itself out of rotation, as
	// AppEnv told it to; remembered as held, so Online puts it in.
	HoldRegisteredOut
)

// AppEnver is a mark-mode Registry whose app can be told, through its
// environment, to register itself out of rotation: Spring Cloud binds
// environment variables to its registration's properties (relaxed
// binding: spring.cloud.nacos.discovery.weight is read from
// SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT). A registration that starts out of
// rotation never reaches a consumer before the app is ready, which no look
// at the registry can promise: consumers see a registration as soon as the
// hold's first look can. Online puts the instance in rotation once the app
// is ready and warm, as for a hold.
type AppEnver interface {
	// AppEnv returns the variables (NAME=VALUE) to add to the app's
	// environment; lookup reads the environment gracefulinit was given. A
	// variable the environment already sets is the user's: AppEnv leaves
	// it (it may adopt its value, as the Nacos weight to restore). It is
	// called once, before the app starts, and only when the hold is on.
	AppEnv(lookup func(string) (string, bool)) []string
}

// AppEnv is the variables every self-registered AppEnver adds to the
// app's environment (nil when the hold is off), in registry order.
func (s *Set) AppEnv(lookup func(string) (string, bool)) []string {
	if s.NoHold {
		return nil
	}
	var out []string
	for _, r := range s.Registries {
		if e, ok := r.(AppEnver); ok && selfRegistered(r) {
			out = append(out, e.AppEnv(lookup)...)
		}
	}
	return out
}

// Hold bounds: how often Set.Hold looks at the registry while the app
// starts (consumers see the app's registration as soon as the hold can:
// the interval is most of the time they may pick it), how many times it
// takes the instance out again after the registry showed it out and put
// it back (a registry that drops the hold at every renewal), and how many
// writes it makes in all (a registry that serves reads from a cache shows
// the instance in rotation for a moment after each write).
const (
	DefaultHoldInterval = 250 * time.Millisecond
	MaxHoldApplies      = 50
	maxHoldWrites       = 4 * MaxHoldApplies
)

// DefaultTimeout bounds a registry call whose context has no deadline
// (--registry-timeout's default).
const DefaultTimeout = 5 * time.Second

// ProbeResult is one server's answer to a backend's Probe, for --check.
type ProbeResult struct {
	Server string // what was asked, as the backend calls it; may hold userinfo
	Err    error  // nil: the server answers there
}

// ErrNotFound means Offline found no instance of the app to take out of
// rotation: whatever consumers see of the app was left as it was. It is
// final (not retried) and the shutdown summary reports it as not-found.
var ErrNotFound = errors.New("instance not found")

// Set runs registries side by side as supervisor hooks. Its goroutines run
// inside PID 1, so a panic in a registry's method is recovered into that
// call's error (see safe): a bug in registry code must cost the
// registration, never the container.
type Set struct {
	Registries []Registry
	// Timeout bounds each single call (--registry-timeout).
	Timeout time.Duration
	// RetryMin and RetryMax bound the back-off between Online attempts
	// (default 0.5 s and 5 s: a late registration is put right promptly).
	RetryMin, RetryMax time.Duration
	Log                *slog.Logger

	// HoldInterval is the time between two looks of Hold; 0 means
	// DefaultHoldInterval.
	HoldInterval time.Duration
	// NoHold turns the hold off (--registry-hold=false), and with it what
	// keeps a told app's registration in rotation (Keeper).
	NoHold bool
	// KeepInterval is the time between two of Keep's looks; 0 means
	// DefaultKeepInterval.
	KeepInterval time.Duration

	onlineBegan atomic.Bool // Online was called: every registry may hold the instance
}

// Hold keeps the app's own registration out of rotation while the app
// starts, in every registry that can (see Holder), until stop is closed. It
// looks every HoldInterval: an instance that appears in rotation is taken
// out, and taken out again when the registry puts it back (Polaris clears
// Eureka's OUT_OF_SERVICE when the app registers again), at most
// MaxHoldApplies times. Each look is bounded by the timeout and is never
// cut short by stop, so no write of the hold lands after Hold returned
// (Online comes next). A registry that cannot be read or written is
// warned of once: the app then starts unheld. Hold never delays the app.
func (s *Set) Hold(stop <-chan struct{}) {
	if s.NoHold {
		return
	}
	var wg sync.WaitGroup
	for _, r := range s.Registries {
		h, ok := r.(Holder)
		if !ok || !selfRegistered(r) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.holdOne(stop, r, h)
		}()
	}
	wg.Wait()
}

func (s *Set) holdOne(stop <-chan struct{}, r Registry, h Holder) {
	interval := s.HoldInterval
	if interval <= 0 {
		interval = DefaultHoldInterval
	}
	// applied counts the take-outs the registry showed and then undid;
	// shown: the last look saw the instance out of rotation.
	applied, writes, failed := 0, 0, 0
	shown := false
	var firstErr error
	for {
		ctx, cancel := s.callCtx(context.Background())
		st, err := safeHold(r, h, ctx)
		cancel()
		switch {
		case err != nil:
			failed++
			if failed == 1 {
				firstErr = err
				s.Log.Warn("registry hold: cannot keep the app's own registration out of rotation while it starts; consumers may reach it before it is ready", "registry", r.Name(), "error", err)
			}
		case st == HoldKept:
			shown = true
		case st == HoldRegisteredOut:
			// Counted as the first take-out: a write of the hold beside
			// it (Nacos disables it too) may not show at the next look.
			writes, applied, shown = max(writes, 1), max(applied, 1), false
			s.Log.Info("registry hold: the app registered itself out of rotation, as its environment told it; kept so until it is ready", "registry", r.Name())
		case st == HoldApplied && writes == 0:
			writes, applied = 1, 1
			s.Log.Info("registry hold: the app registered itself before it was ready; kept out of rotation until it is ready", "registry", r.Name())
		case st == HoldApplied && shown:
			writes++
			applied++
			shown = false
			s.Log.Info("registry hold re-applied: the registry put the instance back in rotation (the app registered again)", "registry", r.Name(), "times", applied)
		case st == HoldApplied:
			// Our last write does not show yet (a cached read): written
			// again, which changes nothing where it had landed.
			writes++
		}
		if applied >= MaxHoldApplies || writes >= maxHoldWrites {
			s.Log.Warn("registry hold given up: the registry keeps putting the instance back in rotation", "registry", r.Name(), "times", applied, "writes", writes)
			return
		}
		select {
		case <-stop:
			attrs := []any{"registry", r.Name(), "applied", applied, "failed_looks", failed}
			if firstErr != nil {
				attrs = append(attrs, "first_error", firstErr)
			}
			s.Log.Debug("registry hold ends", attrs...)
			return
		case <-time.After(interval):
		}
	}
}

// safeHold is safe for Hold.
func safeHold(r Registry, h Holder, ctx context.Context) (st HoldState, err error) {
	err = safe(r, "hold", func(ctx context.Context) error {
		var e error
		st, e = h.Hold(ctx)
		return e
	}, ctx)
	return st, err
}

// SelfRegistered reports whether any of the registries holds an instance
// the app registers itself (see the SelfRegistered interface).
func (s *Set) SelfRegistered() bool {
	for _, r := range s.Registries {
		if selfRegistered(r) {
			return true
		}
	}
	return false
}

func (s *Set) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.Timeout > 0 {
		return context.WithTimeout(ctx, s.Timeout)
	}
	return context.WithCancel(ctx)
}

// Online retries each registry's Online in parallel until it succeeds or ctx ends.
func (s *Set) Online(ctx context.Context) {
	s.onlineBegan.Store(true)
	var wg sync.WaitGroup
	for _, r := range s.Registries {
		if !hasOnline(r) {
			continue
		}
		wg.Add(1)
		go func(r Registry) {
			defer wg.Done()
			s.onlineOne(ctx, r)
			if k, ok := r.(Keeper); ok && !s.NoHold && selfRegistered(r) && ctx.Err() == nil {
				go s.keep(ctx, r, k)
			}
		}(r)
	}
	wg.Wait()
}

// Keeper is a Registry whose app may have been told to register itself out
// of rotation (AppEnver). Such an app registers that way again whenever it
// registers afresh: a Eureka lease lost to a server restart or eviction, a
// Nacos 1.x beat answered 404, a server that forgets the online step's
// change when the app registers again (Polaris). Nothing of the app's own
// would put it back, so after Online the Set looks every KeepInterval
// until the stop sequence begins. Keep is one look: a registration out of
// rotation by the app's own (told) state is put back in rotation and put
// is true; anything else is left alone (an operator's override, the offline
// step's mark; an app that was not told: Keep does nothing). Keep must not
// write once Offline has begun, and a Keep in flight must not land after
// Offline's write.
type Keeper interface {
	Keep(ctx context.Context) (put bool, err error)
}

// DefaultKeepInterval is the time between two of Keep's looks: a told app
// that registered again waits at most this long, out of rotation (never
// in it too early), to be put back.
const DefaultKeepInterval = 10 * time.Second

// keep calls k.Keep every KeepInterval until ctx ends (the stop sequence
// began, or the app exited). A failing look is warned of once per run of
// failures: a registry that is down is not news every 10 s.
func (s *Set) keep(ctx context.Context, r Registry, k Keeper) {
	interval := s.KeepInterval
	if interval <= 0 {
		interval = DefaultKeepInterval
	}
	failing := false
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := s.callCtx(ctx)
		var put bool
		err := safe(r, "keep", func(ctx context.Context) error {
			var e error
			put, e = k.Keep(ctx)
			return e
		}, cctx)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			s.Log.Warn("registry keep: cannot check that the instance is still in rotation; looking again", "registry", r.Name(), "retry_in", interval, "error", err)
		case err == nil && failing:
			failing = false
			s.Log.Info("registry keep: the registry answers again", "registry", r.Name())
		}
		if put {
			s.Log.Info("registry keep: the app registered itself again out of rotation, as it was told at start; put back in rotation", "registry", r.Name())
		}
		t.Reset(interval)
	}
}

// Default back-off bounds of Online retries.
const (
	onlineRetryMin = 500 * time.Millisecond
	onlineRetryMax = 5 * time.Second
)

// onlineDelays returns the first delay between Online attempts and the cap.
func (s *Set) onlineDelays() (first, limit time.Duration) {
	first, limit = s.RetryMin, s.RetryMax
	if first <= 0 {
		first = onlineRetryMin
	}
	if limit <= 0 {
		limit = onlineRetryMax
	}
	return first, limit
}

func (s *Set) onlineOne(ctx context.Context, r Registry) {
	first, limit := s.onlineDelays()
	start := time.Now()
	if retriesItself(r) {
		if err := safe(r, "online", r.Online, ctx); err != nil {
			s.Log.Warn("registry online abandoned: shutdown began", "registry", r.Name(), "error", err)
			return
		}
		s.Log.Info("registry online", "registry", r.Name(), "elapsed", time.Since(start).Round(time.Millisecond))
		return
	}
	attempts, err := s.backoff(ctx, first, limit, func(ctx context.Context) error { return safe(r, "online", r.Online, ctx) },
		func(error) bool { return false },
		func(attempt int, wait time.Duration, err error) {
			// An app still registering itself is the usual case for the
			// first seconds; only a longer wait deserves a warning.
			level := slog.LevelInfo
			if time.Since(start) > 10*time.Second {
				level = slog.LevelWarn
			}
			s.Log.Log(ctx, level, "registry online not done yet, retrying", "registry", r.Name(), "attempt", attempt, "retry_in", wait, "error", err)
		})
	if err != nil {
		s.Log.Warn("registry online abandoned: shutdown began", "registry", r.Name(), "attempts", attempts, "error", err)
		return
	}
	s.Log.Info("registry online", "registry", r.Name(), "attempts", attempts, "elapsed", time.Since(start).Round(time.Millisecond))
}

// Offline calls every registry's Offline in parallel and joins their
// errors. A failed attempt is retried with back-off until it succeeds or
// ctx ends: a registry that is restarting when the pod stops should still
// see the instance go offline once it is back, inside the budget.
//
// Before Online (a stop while the app starts), only the registries whose
// instance the app registers itself can hold one: the others are skipped.
func (s *Set) Offline(ctx context.Context) error {
	early := !s.onlineBegan.Load()
	return s.each(ctx, "offline", false, func(r Registry, ctx context.Context) error {
		if early && !selfRegistered(r) {
			s.Log.Info("registry offline skipped: the app stopped before it was ready, and this registry holds nothing of it before then", "registry", r.Name())
			return errNoStep
		}
		if !hasOffline(r) {
			return errNoStep
		}
		if retriesItself(r) {
			return safe(r, "offline", r.Offline, ctx)
		}
		return s.retry(ctx, r, func(ctx context.Context) error { return safe(r, "offline", r.Offline, ctx) })
	})
}

// retry calls step until it succeeds, finds no instance, or ctx ends,
// warning of each failed attempt.
func (s *Set) retry(ctx context.Context, r Registry, step func(context.Context) error) error {
	first := s.RetryMin
	if first <= 0 {
		first = 250 * time.Millisecond
	}
	_, err := s.backoff(ctx, first, 2*time.Second, step,
		func(err error) bool { return errors.Is(err, ErrNotFound) },
		func(attempt int, wait time.Duration, err error) {
			s.Log.Warn("registry offline attempt failed, retrying", "registry", r.Name(), "attempt", attempt, "retry_in", wait, "error", err)
		})
	return err
}

// backoff retries step (see Backoff), each attempt bounded by Timeout.
func (s *Set) backoff(ctx context.Context, first, limit time.Duration, step func(context.Context) error,
	final func(error) bool, retrying func(attempt int, wait time.Duration, err error)) (int, error) {
	return Backoff{First: first, Limit: limit, Timeout: s.Timeout}.Do(ctx, step, final, retrying)
}

// Close calls every registry's Close in parallel, each bounded.
func (s *Set) Close(ctx context.Context) error {
	return s.each(ctx, "close", true, func(r Registry, ctx context.Context) error {
		return safe(r, "close", r.Close, ctx)
	})
}

// safe calls step and turns a panic in it into an error naming the
// registry and the step.
func safe(r Registry, step string, call func(context.Context) error, ctx context.Context) error {
	return Recover(r.Name()+" "+step, func() error { return call(ctx) })
}

// errNoStep is what a call returns for a registry without that step: each
// leaves it out of the log and the result.
var errNoStep = errors.New("no such step")

// each runs call for every registry in parallel; perCall bounds each by the
// timeout (calls that retry bound their own attempts instead).
func (s *Set) each(ctx context.Context, step string, perCall bool, call func(Registry, context.Context) error) error {
	errs := make([]error, len(s.Registries))
	var wg sync.WaitGroup
	for i, r := range s.Registries {
		wg.Add(1)
		go func(i int, r Registry) {
			defer wg.Done()
			cctx, cancel := context.WithCancel(ctx)
			if perCall {
				cctx, cancel = s.callCtx(ctx)
			}
			defer cancel()
			start := time.Now()
			err := call(r, cctx)
			if errors.Is(err, errNoStep) {
				return
			}
			took := time.Since(start).Round(time.Millisecond)
			if err != nil {
				s.Log.Warn("registry "+step+" failed", "registry", r.Name(), "elapsed", took, "error", err)
				errs[i] = fmt.Errorf("%s: %w", r.Name(), err)
				return
			}
			s.Log.Info("registry "+step+" done", "registry", r.Name(), "elapsed", took)
		}(i, r)
	}
	wg.Wait()
	return errors.Join(errs...)
}
