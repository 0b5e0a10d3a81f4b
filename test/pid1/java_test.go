package pid1_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestJavaTERM: a real JVM under gracefulinit gets the TERM, runs its
// shutdown hooks and exits 143, which -e 143 turns into 0.
func TestJavaTERM(t *testing.T) {
	t.Parallel()
	jar := javatest.TestAppJar(t)
	java, err := javatest.Args(jar)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		flags []string
		want  int
	}{
		{"exit 143", nil, 143},
		{"-e 143", []string{"-e", "143"}, 0},
	}
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				args := append(append(append([]string{}, tc.flags...), "--"), java...)
				p := start(t, m, nil, args...)
				// JVM start-up on a loaded 2-core machine takes seconds.
				if !testbin.WaitFor(context.Background(), 60*time.Second, func() bool {
					return strings.Contains(p.Stdout.String(), "READY\n")
				}) {
					t.Fatalf("the JVM never printed READY; stdout:\n%s", p.Stdout)
				}
				p.Signal(syscall.SIGTERM)
				if code := p.Wait(exitTimeout); code != tc.want {
					t.Fatalf("exit code %d, want %d; stdout:\n%s", code, tc.want, p.Stdout)
				}
				out := p.Stdout.String()
				for _, line := range []string{"TERM\n", "HOOK DONE\n"} {
					if !strings.Contains(out, line) {
						t.Fatalf("the JVM did not print %q: stdout:\n%s", strings.TrimSpace(line), out)
					}
				}
			})
		}
	})
}
