package testbin

import (
	"os"
	"testing"
)

// TestMain removes the binaries these tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBuilt()
	os.Exit(code)
}
