package javaapp_test

import (
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/parallel"
)

// TestMain runs six tests at a time: each starts the example JVM and then
// mostly waits on it (start-up, drains, registries' views).
func TestMain(m *testing.M) {
	parallel.WaitBound(6)
	os.Exit(m.Run())
}
