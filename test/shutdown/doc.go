// Package shutdown holds the integration tests of gracefulinit's graceful
// stop sequence: the real binary runs as PID 1 of a fresh PID namespace (or
// as a plain subreaper) with a real JVM child (testdata/java's TestApp), and
// the tests assert the order and the bounds of what happens after SIGTERM:
// drain, stop signal, shutdown hooks, SIGKILL before the deadline, and the
// shutdown summary line.
//
// The package has no non-test code; this file only documents it.
package shutdown
