// Package repo locates the gracefulinit source tree and the cache shared by
// its tests, scripts and harnesses.
package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// moduleLine identifies gracefulinit's go.mod among the ones a walk up the
// tree may meet (a vendored or nested module has another).
var moduleLine = []byte("module github.com/gracefulinit/gracefulinit\n")

// Root returns the directory holding gracefulinit's go.mod. It searches
// upward from the working directory (a test's package directory, or the
// checkout where `go run` was started), then from this source file's
// directory, which a binary built without -trimpath still knows when it
// runs elsewhere.
func Root() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		if root, ok := findUp(dir); ok {
			return root, nil
		}
	}
	return "", errors.New("repo: go.mod of github.com/gracefulinit/gracefulinit not found above the working directory")
}

func findUp(dir string) (string, bool) {
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, moduleLine) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// CacheDir is the cache the repository's tests and scripts share:
// $GI_CACHE, else $HOME/.cache/gracefulinit, else a directory
// under the OS temp dir. It may not exist yet.
func CacheDir() string {
	if d := os.Getenv("GI_CACHE"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".cache", "gracefulinit")
	}
	return filepath.Join(os.TempDir(), "gracefulinit-cache")
}
