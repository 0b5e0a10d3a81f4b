package repo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Clean(filepath.Join(wd, "..", "..", ".."))
	tests := []struct {
		name string
		dir  string // working directory; "" keeps the package's
	}{
		{"from a test's package dir", ""},
		{"from the repository root", want},
		// The tools module's own go.mod is not the repository's.
		{"from the tools module, like go -C tools run ./rollout", filepath.Join(want, "tools", "rollout")},
		{"from outside the tree, through this file's path", t.TempDir()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.dir != "" {
				t.Chdir(tt.dir)
			}
			got, err := Root()
			if err != nil || got != want {
				t.Fatalf("Root() = %q, %v; want %q", got, err, want)
			}
			if _, err := os.Stat(filepath.Join(got, "internal", "testkit", "repo", "repo.go")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCacheDir(t *testing.T) {
	tests := []struct {
		name, cache, home, want string
	}{
		{"GI_CACHE wins", "/c", "/h", "/c"},
		{"else under HOME", "", "/h", "/h/.cache/gracefulinit"},
		{"else under the temp dir", "", "", filepath.Join(os.TempDir(), "gracefulinit-cache")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GI_CACHE", tt.cache)
			t.Setenv("HOME", tt.home)
			if got := CacheDir(); got != tt.want {
				t.Fatalf("CacheDir() = %q, want %q", got, tt.want)
			}
		})
	}
}
