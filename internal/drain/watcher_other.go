//go:build !linux

package drain

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Watcher needs Linux's sock_diag; elsewhere a quiet drain runs as a fixed
// one.
type Watcher struct{}

// NewWatcher always fails with ErrUnavailable outside Linux.
func NewWatcher(ports []int) (*Watcher, error) {
	return nil, fmt.Errorf("%w: not Linux", ErrUnavailable)
}

func newWatcherAddrs(ports []int, addrs []netip.Addr) (*Watcher, error) {
	return NewWatcher(ports)
}

// Sample always fails outside Linux.
func (w *Watcher) Sample() (Sample, error) {
	return Sample{}, errors.New("drain: no Watcher outside Linux")
}

// LimitAddrs does nothing outside Linux.
func (w *Watcher) LimitAddrs(addrs []netip.Addr) {}

// Close does nothing outside Linux.
func (w *Watcher) Close() error { return nil }

// cpuCost runs f and returns the wall time it took.
func cpuCost(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}
