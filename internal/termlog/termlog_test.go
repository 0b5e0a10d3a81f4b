package termlog

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
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
