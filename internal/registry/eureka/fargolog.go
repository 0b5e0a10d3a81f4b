package eureka

import (
	"context"
	"log/slog"
	"sync/atomic"

	logging "github.com/op/go-logging"

	"github.com/gracefulinit/gracefulinit/internal/redact"
)

// fargo logs through the op/go-logging module "fargo", whose default backend
// writes every level, DEBUG included, to stderr, with full URLs including any
// user:password@. PID 1's stderr is the pod's log, so this package replaces
// go-logging's process-wide backend (nothing else in gracefulinit uses
// go-logging) with a bridge into slog at debug level, with credentials
// removed. It is installed in init, before any goroutine can be logging,
// because go-logging's backend variable is not safe to swap concurrently.
func init() {
	logging.SetBackend(fargoBridge{})
	// fargo's own init quietened these on the backend we just replaced; they
	// dump whole response bodies.
	logging.SetLevel(logging.WARNING, "fargo.metadata")
	logging.SetLevel(logging.WARNING, "fargo.marshal")
}

// fargoLog is where fargo's records go: the logger of the latest New, or
// nowhere before that.
var fargoLog atomic.Pointer[slog.Logger]

type fargoBridge struct{}

// Log implements logging.Backend. Every fargo level maps to slog debug:
// fargo reports as errors what gracefulinit handles (a 404 is "not
// registered"), so its opinion of severity would only mislead.
func (fargoBridge) Log(level logging.Level, _ int, rec *logging.Record) error {
	l := fargoLog.Load()
	if l == nil || !l.Enabled(context.Background(), slog.LevelDebug) {
		return nil
	}
	l.Debug(redact.Text(rec.Message()), "module", rec.Module, "fargo_level", level.String())
	return nil
}
