package supervisor

import (
	"context"
	"fmt"
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
	// drain. ctx carries its budget.
	Offline(ctx context.Context) error
	// Close runs once after the child has exited, before gracefulinit
	// exits. ctx is bounded by the registry timeout and the stop deadline.
	Close(ctx context.Context) error
}

// NoHooks is the Hooks of a supervisor without a registry.
type NoHooks struct{}

func (NoHooks) Online(context.Context)        {}
func (NoHooks) Offline(context.Context) error { return nil }
func (NoHooks) Close(context.Context) error   { return nil }

// safeHook runs one hook call and turns a panic in it into an error. Hooks
// are registry code running in PID 1's goroutines: a bug there must cost
// that step, never the container.
func safeHook(step string, call func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in registry %s: %v", step, p)
		}
	}()
	return call()
}
