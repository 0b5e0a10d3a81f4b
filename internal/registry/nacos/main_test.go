package nacos

import (
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/parallel"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestMain runs four tests at a time (the helper's and the Polaris tests
// mostly wait on processes and servers) and removes the binaries testbin
// built for this test process.
func TestMain(m *testing.M) {
	parallel.WaitBound(4)
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}
