package javatest

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// buildTimeout bounds one javac run on a loaded 2-core machine.
const buildTimeout = 3 * time.Minute

// Jar returns a cached runnable jar of the Java sources in srcDir (relative
// paths are relative to the test's working directory), building it if
// needed. The main class is the one class declaring main. Fails the test
// when the JDK is missing or javac fails.
func Jar(t testing.TB, srcDir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	jar, err := Cached(ctx, srcDir, "")
	if err != nil {
		t.Fatalf("build jar from %s: %v", srcDir, err)
	}
	return jar
}

func repoJar(t testing.TB, rel string) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return Jar(t, filepath.Join(root, rel))
}

// TestAppJar returns the jar of testdata/java (main class TestApp).
func TestAppJar(t testing.TB) string {
	t.Helper()
	return repoJar(t, TestAppDir)
}

// ExampleAppJar returns the jar of examples/javaapp (main class App).
func ExampleAppJar(t testing.TB) string {
	t.Helper()
	return repoJar(t, ExampleAppDir)
}

// Start runs jar with JVMFlags and appArgs, logging its output to t. The
// JVM is killed (SIGKILL) and waited for at cleanup if still running.
func Start(t testing.TB, jar string, appArgs ...string) *Proc {
	t.Helper()
	argv, err := Args(jar, appArgs...)
	if err != nil {
		t.Fatal(err)
	}
	return StartProc(t, exec.Command(argv[0], argv[1:]...))
}

// StartProc starts cmd (Stdout unset) as a Proc whose output goes to the
// test log, and kills it at cleanup. Use it for any process under test, e.g.
// gracefulinit with a JVM child.
func StartProc(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := StartCmd(cmd, t.Logf)
	if err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		p.Kill()
		// Let the last lines reach the log unless a grandchild keeps stdout open.
		select {
		case <-p.eofCh:
		case <-time.After(time.Second):
		}
		p.StopLogging()
	})
	return p
}
