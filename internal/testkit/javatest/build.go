// Package javatest builds and runs the repository's Java programs (the
// integration tests' TestApp and the example service) with the plain JDK:
// javac compiles, the jar is written here, java runs it. Builds are cached by
// a hash of the sources so parallel test packages share one compile.
//
// The non-test entry points (Build, Cached, Args, Command) return errors; the
// testing.TB helpers (Jar, TestAppJar, ExampleAppJar, Start) fail the test.
package javatest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// Release is the Java release the sources are compiled for (javac --release):
// the oldest JDK the images and tests run on.
const Release = "17"

// cacheFormat is hashed into every cache key; bump it when the jar layout or
// the compile flags change so stale jars are not reused.
const cacheFormat = "javatest-v1"

// CacheDir is where built jars are kept: jars in the repository's shared
// cache (repo.CacheDir).
func CacheDir() string { return filepath.Join(repo.CacheDir(), "jars") }

// Tool returns the path of a JDK tool ("java", "javac"): $JAVA_HOME/bin/NAME
// when JAVA_HOME is set and has it, else NAME on $PATH.
func Tool(name string) (string, error) {
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		p := filepath.Join(jh, "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: install a JDK %s+ or set JAVA_HOME", name, Release)
	}
	return p, nil
}

// sources lists the .java files under dir (recursively), sorted, as paths
// relative to dir.
func sources(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".java") {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .java files in %s", dir)
	}
	sort.Strings(files)
	return files, nil
}

var (
	mainRE    = regexp.MustCompile(`\bstatic\s+void\s+main\s*\(`)
	packageRE = regexp.MustCompile(`(?m)^\s*package\s+([\w.]+)\s*;`)
)

// FindMain returns the fully qualified name of the one class under srcDir
// that declares main: the convention is one entry point per directory, in a
// file named after its class. It fails when there is none or more than one.
func FindMain(srcDir string) (string, error) {
	files, err := sources(srcDir)
	if err != nil {
		return "", err
	}
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(srcDir, f))
		if err != nil {
			return "", err
		}
		if !mainRE.Match(b) {
			continue
		}
		class := strings.TrimSuffix(filepath.Base(f), ".java")
		if m := packageRE.FindSubmatch(b); m != nil {
			class = string(m[1]) + "." + class
		}
		found = append(found, class)
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no class with a main method in %s: name the main class explicitly", srcDir)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("several classes with a main method in %s (%s): name the main class explicitly", srcDir, strings.Join(found, ", "))
	}
}

// Build compiles every .java file under srcDir (javac --release 17) and
// writes a runnable jar with Main-Class mainClass to out, atomically: out is
// either absent, its previous content, or the complete new jar. An empty
// mainClass is found with FindMain. Compiler output is returned in the error.
func Build(ctx context.Context, srcDir, mainClass, out string) error {
	files, err := sources(srcDir)
	if err != nil {
		return err
	}
	if mainClass == "" {
		if mainClass, err = FindMain(srcDir); err != nil {
			return err
		}
	}
	javac, err := Tool("javac")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".build-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	classes := filepath.Join(tmp, "classes")
	args := []string{"--release", Release, "-encoding", "UTF-8", "-nowarn", "-d", classes}
	for _, f := range files {
		args = append(args, filepath.Join(srcDir, f))
	}
	cmd := exec.CommandContext(ctx, javac, args...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("javac %s: %v\n%s", srcDir, err, strings.TrimSpace(output.String()))
	}
	jar := filepath.Join(tmp, "out.jar")
	if err := writeJar(jar, classes, mainClass); err != nil {
		return fmt.Errorf("write jar for %s: %w", srcDir, err)
	}
	if err := os.Rename(jar, out); err != nil {
		return err
	}
	return nil
}

// writeJar zips dir into path with a manifest naming mainClass. Entries are
// sorted and carry a fixed time so equal classes give an equal jar.
func writeJar(path, dir, mainClass string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	stamp := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(name string, r io.Reader) error {
		hdr := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: stamp}
		if strings.HasSuffix(name, "/") {
			hdr.Method = zip.Store
		}
		w, err := zw.CreateHeader(hdr)
		if err != nil || r == nil {
			return err
		}
		_, err = io.Copy(w, r)
		return err
	}
	// java -jar finds the manifest through the central directory, but
	// JarInputStream readers expect it first.
	manifest := "Manifest-Version: 1.0\r\nMain-Class: " + mainClass + "\r\nCreated-By: gracefulinit javatest\r\n\r\n"
	err = add("META-INF/", nil)
	if err == nil {
		err = add("META-INF/MANIFEST.MF", strings.NewReader(manifest))
	}
	var names []string
	if err == nil {
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				rel += "/"
			}
			names = append(names, rel)
			return nil
		})
	}
	sort.Strings(names)
	for _, n := range names {
		if err != nil {
			break
		}
		if strings.HasSuffix(n, "/") {
			err = add(n, nil)
			continue
		}
		var cf *os.File
		if cf, err = os.Open(filepath.Join(dir, filepath.FromSlash(n))); err == nil {
			err = add(n, cf)
			cf.Close()
		}
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// cacheKey hashes everything that decides the jar's content: the sources,
// the main class, the release and which javac compiles them.
func cacheKey(srcDir, mainClass string) (string, error) {
	files, err := sources(srcDir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", cacheFormat, Release, mainClass)
	if javac, err := Tool("javac"); err == nil {
		// The compiler's identity without running it: a JVM start costs more
		// than the whole cache lookup.
		real, _ := filepath.EvalSymlinks(javac)
		if fi, err := os.Stat(real); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\x00", real, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(srcDir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(f), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// Cached returns a jar built from srcDir in CacheDir, building it only when
// no jar for the same sources exists. Safe for concurrent use by goroutines
// and processes: builders serialize on a lock file and publish by rename.
func Cached(ctx context.Context, srcDir, mainClass string) (string, error) {
	return cachedIn(ctx, CacheDir(), srcDir, mainClass)
}

func cachedIn(ctx context.Context, cacheDir, srcDir, mainClass string) (string, error) {
	abs, err := filepath.Abs(srcDir)
	if err != nil {
		return "", err
	}
	if mainClass == "" {
		if mainClass, err = FindMain(abs); err != nil {
			return "", err
		}
	}
	key, err := cacheKey(abs, mainClass)
	if err != nil {
		return "", err
	}
	jar := filepath.Join(cacheDir, mainClass+"-"+key+".jar")
	if _, err := os.Stat(jar); err == nil {
		return jar, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, jar+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another builder may have finished while this one waited.
	if _, err := os.Stat(jar); err == nil {
		return jar, nil
	}
	if err := Build(ctx, abs, mainClass, jar); err != nil {
		return "", err
	}
	return jar, nil
}

// lockFile takes an exclusive flock on path, polling so ctx can end the wait.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another build of %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Source directories of the repository's Java programs, relative to repo.Root.
const (
	TestAppDir    = "testdata/java"
	ExampleAppDir = "examples/javaapp"
)
