package shutdown

import (
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/parallel"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestMain runs the tests, which mostly wait, six at a time, and removes
// the binaries testbin built for this test process.
func TestMain(m *testing.M) {
	parallel.WaitBound(6)
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}
