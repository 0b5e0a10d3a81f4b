//go:build amd64 || arm64

package signals

// noopHandler is implemented in assembly and never called from Go: only
// its address is installed as a handler (see catchUncatchable).
func noopHandler()

// noopHandlerAddr returns noopHandler's machine address (its ABI0 entry,
// not a Go func value, which would point at a wrapper that expects a Go
// stack and goroutine).
func noopHandlerAddr() uintptr

var _ = noopHandler // referenced from assembly only
