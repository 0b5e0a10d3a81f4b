package registry

import (
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/parallel"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestMain runs the tests four at a time (they mostly wait, but each starts
// JVMs and a Polaris, and their consumers' view is timed), and removes the
// binaries testbin built for this test process.
func TestMain(m *testing.M) {
	parallel.WaitBound(4)
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}
