package eureka

import (
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/parallel"
)

// TestMain runs the Polaris tests, each with its own server and mostly
// waiting for heartbeats and consumers' views, side by side.
func TestMain(m *testing.M) {
	parallel.WaitBound(6)
	os.Exit(m.Run())
}
