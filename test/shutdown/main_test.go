package shutdown

import (
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestMain removes the binaries testbin built for this test process.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}
