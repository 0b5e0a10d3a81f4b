// Package drain decides when the drain window before the stop signal ends:
// after a fixed time, or once the app's ports have gone quiet.
package drain

import (
	"context"
	"log/slog"
	"time"
)

// Reason says why a drain ended.
type Reason string

const (
	ReasonQuiet     Reason = "quiet"     // no new connection and no received byte for Options.Quiet
	ReasonMax       Reason = "max"       // Options.Max elapsed (the whole of a fixed drain)
	ReasonCancelled Reason = "cancelled" // ctx ended first; the caller knows why
)

// Options shape one drain.
type Options struct {
	Max      time.Duration // longest drain; 0 means no drain
	Quiet    time.Duration // 0 means a fixed drain of Max
	Min      time.Duration // with Quiet: never end before this
	Ports    []int         // the app's listening ports, watched when Quiet > 0
	Interval time.Duration // sampling period; 0 means 100ms
}

// Run blocks until the drain should end and says why.
// TODO(drain helper): traffic-aware implementation via sock_diag.
func Run(ctx context.Context, o Options, log *slog.Logger) Reason {
	if o.Max <= 0 {
		return ReasonMax
	}
	t := time.NewTimer(o.Max)
	defer t.Stop()
	select {
	case <-t.C:
		return ReasonMax
	case <-ctx.Done():
		return ReasonCancelled
	}
}
