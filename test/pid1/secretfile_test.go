package pid1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// TestBadPasswordFileRefusedAtOnce: a password file that is not a small
// regular file is refused before the app starts, at once, with one line
// naming the flag. A FIFO used to block start-up forever (SIGTERM was not
// honoured meanwhile: the supervisor was not running yet), /dev/zero ran
// PID 1 out of memory, a 100 MB file was read whole, and an empty file was
// taken as an empty password.
func TestBadPasswordFileRefusedAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 100<<20); err != nil { // sparse
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"fifo", fifo, "not a regular file (a named pipe)"},
		{"/dev/zero", "/dev/zero", "not a regular file (a character device)"},
		{"100 MB", big, "more than a password file may hold"},
		{"empty", empty, "empty"},
	}
	bin := testbin.Binary(t) // built before any clock starts
	forModes(t, func(t *testing.T, m mode) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				marker := filepath.Join(t.TempDir(), "started")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				start := time.Now()
				res, err := run(ctx, m, bin, nil, nil,
					"--nacos-password-file", tc.path, "--", "touch", marker)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("after %v: %v", took.Round(time.Millisecond), err)
				}
				if res.code == 0 || took > 5*time.Second {
					t.Errorf("exit %d after %v: want a prompt non-zero exit", res.code, took.Round(time.Millisecond))
				}
				first, _, _ := strings.Cut(res.stderr, "\n")
				if !strings.Contains(first, "--nacos-password-file "+tc.path+": "+tc.want) {
					t.Errorf("stderr %q: want one line naming the flag, the file and %q", res.stderr, tc.want)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Error("the app was started")
				}
			})
		}
	})
}
