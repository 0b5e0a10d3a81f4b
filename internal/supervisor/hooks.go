package supervisor

import (
	"context"
	"errors"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
)

// Hooks are the registry steps plugged into the lifecycle. The supervisor
// calls each from its own goroutine and never waits past the context it
// passes, so a hook that hangs cannot hold up the app's start or stop.
type Hooks interface {
	// Online runs once, after the app became ready. It should keep retrying
	// until it succeeds or ctx is done; ctx is cancelled when the stop
	// sequence begins.
	Online(ctx context.Context)
	// Offline runs once when the stop sequence begins, concurrently with the
	// drain. ctx carries its budget. An error wrapping registry.ErrNotFound
	// means the registry holds no instance of the app to take out.
	Offline(ctx context.Context) error
	// Close runs once after the child has exited, before gracefulinit
	// exits. ctx is bounded by the registry timeout and the stop deadline.
	Close(ctx context.Context) error
}

// EarlyHooks are Hooks that know whether the app registers itself (mark
// mode, HTTP hooks): its instance may then be in the registry before the
// app is ready, and a stop while starting runs Offline too.
type EarlyHooks interface {
	SelfRegistered() bool
}

// HoldHooks are Hooks that can keep the app's own early registration out
// of rotation while it starts (see registry.Set.Hold): Hold runs from the
// app's start until stop is closed, and returns once no write of its own
// can still land; Online runs after it.
type HoldHooks interface {
	Hold(stop <-chan struct{})
}

// NoHooks is the Hooks of a supervisor without a registry.
type NoHooks struct{}

func (NoHooks) Online(context.Context)        {}
func (NoHooks) Offline(context.Context) error { return nil }
func (NoHooks) Close(context.Context) error   { return nil }

// hasOffline reports whether the hooks take the app out at the stop
// signal. Hooks without an offline step (HTTP hooks given only
// --online-http) say so with HasOffline, and the summary says none.
func hasOffline(h Hooks) bool {
	if _, none := h.(NoHooks); none {
		return false
	}
	if s, ok := h.(interface{ HasOffline() bool }); ok {
		return s.HasOffline()
	}
	return true
}

// safeHook runs one hook call and turns a panic in it into an error. Hooks
// are registry code running in PID 1's goroutines: a bug there must cost
// that step, never the container.
func safeHook(step string, call func() error) error {
	return registry.Recover("registry "+step, call)
}

// offlineOutcome is the summary's offline and offline_took fields: none (no
// offline step ran), ok, not-found (the registry held nothing to take out),
// failed, or unfinished (still running when the app exited). A step that did
// not take the instance out is never ok.
func offlineOutcome(res *offlineResult, started bool) (outcome, took string) {
	switch {
	case res == nil && started:
		return "unfinished", "-"
	case res == nil:
		return "none", "-"
	}
	took = res.took.Round(time.Millisecond).String()
	switch {
	case res.err == nil:
		return "ok", took
	case errors.Is(res.err, registry.ErrNotFound) && !failedOtherwise(res.err):
		return "not-found: " + res.err.Error(), took
	}
	return "failed: " + res.err.Error(), took
}

// failedOtherwise reports whether a joined error holds a failure other than
// not-found (one registry down while the other lacks the instance).
func failedOtherwise(err error) bool {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return false
	}
	for _, e := range j.Unwrap() {
		if !errors.Is(e, registry.ErrNotFound) {
			return true
		}
	}
	return false
}
