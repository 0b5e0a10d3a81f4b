package termlog

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"short", "offline=ok drain_end=all-quiet"},
		{"trailing newline", "a=b\n"},
		{"exactly the limit", strings.Repeat("x", MaxBytes-1)},
		{"long", strings.Repeat("x", 3*MaxBytes)},
		{"long multibyte", strings.Repeat("é", MaxBytes)},
	} {
		got := Fit(tc.in)
		if len(got) > MaxBytes || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 || !utf8.ValidString(got) {
			t.Errorf("%s: Fit gave %d bytes, valid UTF-8 %v, ending %q", tc.name, len(got), utf8.ValidString(got), got[max(0, len(got)-5):])
		}
		if len(tc.in) < MaxBytes && strings.TrimSuffix(got, "\n") != strings.TrimSuffix(tc.in, "\n") {
			t.Errorf("%s: a message within the limit changed: %q", tc.name, got)
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(path, []byte(strings.Repeat("old ", 2000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, "offline=ok killed=false"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "offline=ok killed=false\n" {
		t.Fatalf("file holds %q", b)
	}
	if err := Write("", "x"); err != nil {
		t.Fatalf("Write to no path = %v, want nil (disabled)", err)
	}
	if err := Write(filepath.Join(dir, "missing-dir", "log"), "x"); err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Write into a missing directory = %v, want a one-line error", err)
	}
}

// A FIFO nobody reads must not hang the exit.
func TestWriteNeverBlocksOnFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Write(path, "x") }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Write to a FIFO without a reader succeeded; want an error")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Write blocked on a FIFO")
	}
}

func TestResolve(t *testing.T) {
	if got := Resolve("/x/y", true); got != "/x/y" {
		t.Errorf("Resolve(set) = %q", got)
	}
	if got := Resolve("", true); got != "" {
		t.Errorf("Resolve(set empty) = %q, want disabled", got)
	}
	_, err := os.Stat(DefaultPath)
	want := ""
	if err == nil {
		want = DefaultPath
	}
	if got := Resolve("", false); got != want {
		t.Errorf("Resolve(unset) = %q, want %q", got, want)
	}
}

// TestSnapshot: a message the app wrote after Take is never overwritten; a
// file the app left alone (empty, missing, or a stale message from before
// the app started) gets the summary.
func TestSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		before   *string // nil: no file before the app starts
		app      func(path string) error
		wantFile string
		wantErr  error
	}{
		{"empty, app silent", ptr(""), nil, "summary\n", nil},
		{"missing, app silent", nil, nil, "summary\n", nil},
		{"stale message from an earlier run", ptr("old run\n"), nil, "summary\n", nil},
		{"app wrote into the empty file", ptr(""), writeFile("app: bad config\n"), "app: bad config\n", ErrAppWrote},
		{"app created the file", nil, writeFile("app: bad config\n"), "app: bad config\n", ErrAppWrote},
		{"app replaced a stale message", ptr("old run\n"), writeFile("app: disk full\n"), "app: disk full\n", ErrAppWrote},
		{"app emptied the file", ptr("old run\n"), writeFile(""), "summary\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "termination-log")
			if tc.before != nil {
				if err := os.WriteFile(path, []byte(*tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := Take(path)
			if tc.app != nil {
				if err := tc.app(path); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Write("summary"); err != tc.wantErr {
				t.Fatalf("Write = %v, want %v", err, tc.wantErr)
			}
			b, _ := os.ReadFile(path)
			if string(b) != tc.wantFile {
				t.Fatalf("file holds %q, want %q", b, tc.wantFile)
			}
		})
	}
	if err := Take("").Write("x"); err != nil {
		t.Fatalf("disabled snapshot: %v", err)
	}
}

func ptr(s string) *string { return &s }

// writeFile is the app writing its message, as a process does: a new
// version of the file (a later mtime, even on a coarse clock).
func writeFile(msg string) func(string) error {
	return func(path string) error {
		if err := os.WriteFile(path, []byte(msg), 0o644); err != nil {
			return err
		}
		later := time.Now().Add(time.Second)
		return os.Chtimes(path, later, later)
	}
}

// A symlinked termination log is refused, at start (Check) and at the
// write (O_NOFOLLOW), and its target is left untouched.
func TestSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "etc-passwd")
	if err := os.WriteFile(target, []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "termination-log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Check(link); err == nil || !strings.Contains(err.Error(), "symbolic link") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Check(symlink) = %v, want one line naming the symbolic link", err)
	}
	if err := Take(link).Write("summary"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Write(symlink) = %v, want a refusal naming the symbolic link", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "root:x:0:0\n" {
		t.Fatalf("the link's target was written: %q", b)
	}
	if got := Check(target); got != nil {
		t.Fatalf("Check(regular file) = %v", got)
	}
	if got := Check(filepath.Join(dir, "missing")); got != nil {
		t.Fatalf("Check(missing) = %v, want nil (Write creates it)", got)
	}
	if got := Check(dir); got == nil {
		t.Fatal("Check(directory) = nil, want an error")
	}
}

// TestCheckRefusesAnUnwritablePlace: a file in a missing directory, or
// under a parent that is not a directory, could never be written: Check
// says so at start, in one line naming the path, rather than a WARN at the
// very end of the run (when the summary is lost).
func TestCheckRefusesAnUnwritablePlace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing", "dir", "termination-log"), "no such file or directory: create it"},
		{filepath.Join(file, "termination-log"), "not a directory"},
	} {
		err := Check(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Check(%s) = %v, want one line naming it and saying %q", tc.path, err, tc.want)
		}
	}
	if err := Check(filepath.Join(dir, "new")); err != nil {
		t.Errorf("Check(a new file in an existing directory) = %v, want nil (Write creates it)", err)
	}
}

// TestCheckRefusesAReadOnlyPlace: a file (or a new file's directory) on a
// read-only mount could never be written: Check says so at start, not a
// WARN at the end with the summary lost. The mount is made in a mount
// namespace of this test's own thread (root, as the tests run).
func TestCheckRefusesAReadOnlyPlace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(file, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan []error, 1)
	go func() {
		// The thread stays locked: it ends with the goroutine, and its
		// mount namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- []error{fmt.Errorf("unshare: %w", err)}
			return
		}
		steps := []func() error{
			func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") },
			func() error { return unix.Mount(dir, dir, "", unix.MS_BIND, "") },
			func() error { return unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "") },
		}
		for _, s := range steps {
			if err := s(); err != nil {
				done <- []error{fmt.Errorf("read-only mount: %w", err)}
				return
			}
		}
		done <- []error{nil, Check(file), Check(filepath.Join(dir, "new"))}
	}()
	errs := <-done
	if errs[0] != nil {
		t.Fatalf("cannot set up the read-only mount (the tests run as root): %v", errs[0])
	}
	for i, path := range []string{file, filepath.Join(dir, "new")} {
		err := errs[i+1]
		if err == nil || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), path) {
			t.Errorf("Check(%s) on a read-only mount = %v, want one line naming it and the read-only file system", path, err)
		}
	}
}
