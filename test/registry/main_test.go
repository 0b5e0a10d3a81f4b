package registry

import (
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestMain runs the tests, which mostly wait, eight at a time, and removes
// the binaries testbin built for this test process.
func TestMain(m *testing.M) {
	testbin.WaitBoundParallel(8)
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}
