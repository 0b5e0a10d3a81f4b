// Package parallel sets how many tests of a package run at once, for the
// packages whose tests mostly wait.
package parallel

import (
	"flag"
	"strconv"
)

// WaitBound raises go test's -parallel to n for a package whose
// tests mostly wait (drain windows, grace periods, JVM and registry
// start-ups) rather than compute, unless the command line set -parallel;
// call it from TestMain before m.Run. The default, GOMAXPROCS, is 2 on
// the 2-core machines the suite runs on, which runs two such tests at a
// time and leaves the CPU idle through their waits. Tests still opt in
// with t.Parallel; each keeps its own servers, ports and namespaces.
func WaitBound(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
}
