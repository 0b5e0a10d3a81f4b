//go:build !amd64 && !arm64

package signals

// No assembly handler on this architecture: the Uncatchable signals keep
// the disposition gracefulinit was started with.
func noopHandlerAddr() uintptr { return 0 }
