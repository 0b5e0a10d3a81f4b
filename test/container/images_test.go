package container_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Everything the test image holds besides the JRE: busybox for the app's
// orphan-spawning shell and the user's shell-form entrypoint, tini for that
// entrypoint's "; tini -s" tail.
const (
	busyboxPath = "/bin/busybox"
	tiniPath    = "/usr/bin/tini-static"
)

var (
	jreModules      = "java.base,jdk.httpserver,jdk.unsupported"
	busyboxApplets  = []string{"sh", "sleep", "ps", "cat", "ls"}
	jreImageFormat  = "jre-image-v1" // bump when the base image's layout changes
	jreImageRepo    = "localhost/gracefulinit-test-jre"
	buildStepBudget = 5 * time.Minute
)

// images are what the container cases run.
type images struct {
	app string // examples/spring-boot/Dockerfile over the test JRE, with the test app
}

// buildImages builds gracefulinit and the test app, a FROM-scratch JRE base
// image (cached in podman's store between runs) and, from them, the app
// image through the example Dockerfile users copy. The per-run images are
// removed at cleanup.
func buildImages(t *testing.T, p *podman) images {
	t.Helper()
	root := repoRoot(t)
	jre := ensureJREImage(t, p)

	distCtx := t.TempDir()
	goBuild(t, root, filepath.Join(distCtx, "gracefulinit"))
	// The same layout as the release image built by the repository's
	// Dockerfile: users COPY --from it.
	writeFile(t, filepath.Join(distCtx, "Containerfile"), "FROM scratch\nCOPY gracefulinit /gracefulinit\nENTRYPOINT [\"/gracefulinit\"]\n")
	dist := "localhost/gracefulinit-test-dist:" + randomSuffix(t)
	buildImage(t, p, dist, distCtx, filepath.Join(distCtx, "Containerfile"))

	appCtx := t.TempDir()
	javaBuild(t, filepath.Join("testdata", "app"), filepath.Join(appCtx, "target", "app.jar"))
	app := "localhost/gracefulinit-test-app:" + randomSuffix(t)
	buildImage(t, p, app, appCtx, filepath.Join(root, "examples", "spring-boot", "Dockerfile"),
		"--build-arg", "GRACEFULINIT_IMAGE="+dist,
		"--build-arg", "JRE_IMAGE="+jre)
	return images{app: app}
}

// buildImage builds one image and removes it at cleanup. --layers=false
// leaves no intermediate images behind.
func buildImage(t *testing.T, p *podman, tag, contextDir, file string, extra ...string) {
	t.Helper()
	args := append([]string{"build", "--layers=false", "--network", "none", "-q", "-t", tag, "-f", file}, extra...)
	args = append(args, contextDir)
	if _, _, err := p.run(buildStepBudget, args...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, _, err := p.run(time.Minute, "rmi", "-f", tag); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

// goBuild builds gracefulinit the way the release does: static, stripped.
// GRACEFULINIT_TEST_BINARY names a prebuilt static binary to use instead
// (e.g. bin/gracefulinit from make build, or a release artifact).
func goBuild(t *testing.T, root, out string) {
	t.Helper()
	if bin := os.Getenv("GRACEFULINIT_TEST_BINARY"); bin != "" {
		copyFile(t, bin, out, 0o755)
		return
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildStepBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/gracefulinit")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gracefulinit: %v\n%s", err, b)
	}
}

// javaBuild compiles the JDK-only app in srcDir into a runnable jar at out.
func javaBuild(t *testing.T, srcDir, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildStepBudget)
	defer cancel()
	classes := t.TempDir()
	srcs, err := filepath.Glob(filepath.Join(srcDir, "*.java"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no Java sources in %s (%v)", srcDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	steps := [][]string{
		append([]string{"javac", "--release", "17", "-nowarn", "-d", classes}, srcs...),
		{"jar", "--create", "--file", out, "--main-class", "App", "-C", classes, "."},
	}
	for _, s := range steps {
		if b, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, b)
		}
	}
}

// ensureJREImage returns a FROM-scratch image holding a jlink'd JRE of the
// host JDK and the shared libraries it loads, plus busybox and tini. It is
// tagged by a hash of its inputs and built only when that tag is missing.
func ensureJREImage(t *testing.T, p *podman) string {
	t.Helper()
	key := jreImageKey(t)
	tag := jreImageRepo + ":" + key
	if _, _, err := p.run(time.Minute, "image", "exists", tag); err == nil {
		return tag
	}
	// Concurrent test processes would both jlink; one is enough.
	lockPath := filepath.Join(cacheDir(), "podman", ".jre-image.lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.run(time.Minute, "image", "exists", tag); err == nil {
		return tag
	}

	start := time.Now()
	ctxDir := t.TempDir()
	rootfs := filepath.Join(ctxDir, "rootfs")
	javaHome := filepath.Join(rootfs, "opt", "java", "openjdk")
	if err := os.MkdirAll(filepath.Dir(javaHome), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildStepBudget)
	defer cancel()
	jlink := exec.CommandContext(ctx, "jlink", "--add-modules", jreModules,
		"--strip-debug", "--no-man-pages", "--no-header-files", "--compress=2",
		"--output", javaHome)
	if b, err := jlink.CombinedOutput(); err != nil {
		t.Fatalf("jlink: %v\n%s", err, b)
	}
	for _, lib := range sharedLibs(t, javaHome) {
		copyFile(t, lib, filepath.Join(rootfs, lib), 0o755)
	}
	copyFile(t, busyboxPath, filepath.Join(rootfs, "bin", "busybox"), 0o755)
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, tiniPath, filepath.Join(rootfs, "sbin", "tini"), 0o755)
	tmp := filepath.Join(rootfs, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(ctxDir, "Containerfile")
	writeFile(t, file, strings.Join([]string{
		"FROM scratch",
		"COPY rootfs/ /",
		"ENV JAVA_HOME=/opt/java/openjdk PATH=/opt/java/openjdk/bin:/bin:/sbin",
		"LABEL org.opencontainers.image.title=gracefulinit-test-jre",
		"",
	}, "\n"))
	args := []string{"build", "--layers=false", "--network", "none", "-q", "-t", tag, "-f", file, ctxDir}
	if _, _, err := p.run(buildStepBudget, args...); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", tag, time.Since(start).Round(time.Millisecond))
	return tag
}

// jreImageKey hashes what decides the base image's content: the JDK (its
// release file), the modules, and the busybox and tini binaries.
func jreImageKey(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	fmt.Fprintln(h, jreImageFormat, jreModules, strings.Join(busyboxApplets, ","))
	jlink, err := exec.LookPath("jlink")
	if err != nil {
		t.Fatalf("jlink not found: the container test needs a JDK 17+ on PATH: %v", err)
	}
	if jlink, err = filepath.EvalSymlinks(jlink); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(filepath.Dir(filepath.Dir(jlink)), "release"), busyboxPath, tiniPath} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("base image input: %v", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// sharedLibs lists the libraries outside javaHome that its ELF files load,
// the dynamic loader included, as absolute host paths.
func sharedLibs(t *testing.T, javaHome string) []string {
	t.Helper()
	var elfs []string
	err := filepath.WalkDir(javaHome, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		magic := make([]byte, 4)
		if _, err := io.ReadFull(f, magic); err == nil && bytes.Equal(magic, []byte("\x7fELF")) {
			elfs = append(elfs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var libs []string
	for _, e := range elfs {
		// ldd fails on files that are not dynamically linked; that is fine.
		out, _ := exec.Command("ldd", e).Output()
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			var path string
			switch {
			case len(f) >= 3 && f[1] == "=>":
				path = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				path = f[0] // the dynamic loader
			}
			if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, javaHome) || seen[path] {
				continue
			}
			seen[path] = true
			libs = append(libs, path)
		}
	}
	if len(libs) == 0 {
		t.Fatalf("ldd found no shared libraries for %s: is ldd installed?", javaHome)
	}
	return libs
}

// copyFile copies src's content (following symlinks) to dst.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
