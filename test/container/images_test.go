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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// Everything the test image holds besides the JRE: busybox for the app's
// orphan-spawning shell and the user's shell-form entrypoint, tini for that
// entrypoint's "; tini -s" tail.
const (
	busyboxPath = "/bin/busybox"
	tiniPath    = "/usr/bin/tini-static"
)

var (
	jreModules     = "java.base,jdk.httpserver,jdk.unsupported"
	busyboxApplets = []string{"sh", "sleep", "ps", "cat", "ls"}
)

const (
	// Bump a format when that cached image's layout changes.
	jreImageFormat  = "jre-image-v1"
	goImageFormat   = "go-image-v1"
	jreImageRepo    = "localhost/gracefulinit-test-jre"
	imageKeyLabel   = "io.github.gracefulinit.test-key"
	buildStepBudget = 5 * time.Minute
)

// images are what the container cases run.
type images struct {
	dist    string // the repository's Dockerfile: /gracefulinit and /gracefulinit-nacos
	version string // the VERSION build argument dist was built with ("" for a prebuilt binary)
	app     string // examples/spring-boot/Dockerfile over the test JRE, with the test app
}

// buildImages builds gracefulinit and the test app, a FROM-scratch JRE base
// image (cached in podman's store between runs) and, from them, the app
// image through the example Dockerfile users copy. The per-run images are
// removed at cleanup.
func buildImages(t *testing.T, p *podman) images {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	jre := ensureJREImage(t, p)

	dist, distVersion := buildDistImage(t, p, root)
	t.Logf("gracefulinit image %s built", dist)

	appCtx := t.TempDir()
	javaBuild(t, filepath.Join("testdata", "app"), filepath.Join(appCtx, "target", "app.jar"))
	app := "localhost/gracefulinit-test-app:" + randomSuffix(t)
	// With --layers=false, buildah 1.28 deletes the image a stage is only
	// FROM'd from (the Dockerfile's "FROM ${GRACEFULINIT_IMAGE} AS
	// gracefulinit") as if it were an intermediate image. With layers, the
	// intermediate images are the app image's parents, removed with it.
	buildImage(t, p, app, appCtx, filepath.Join(root, "examples", "spring-boot", "Dockerfile"), true,
		"--build-arg", "GRACEFULINIT_IMAGE="+dist,
		"--build-arg", "JRE_IMAGE="+jre)
	return images{dist: dist, version: distVersion, app: app}
}

// buildImage builds one image and removes it at cleanup. Without layers no
// intermediate image is left behind; see buildImages for when layers are
// needed anyway.
func buildImage(t *testing.T, p *podman, tag, contextDir, file string, layers bool, extra ...string) {
	t.Helper()
	args := append([]string{"build", "--layers=" + strconv.FormatBool(layers), "--network", "none", "-q", "-t", tag, "-f", file}, extra...)
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

// buildDistImage builds the image users COPY --from: the repository's own
// Dockerfile, offline. Its golang base is a local stand-in holding the host's
// Go toolchain, and modules come from the host's module cache, mounted as a
// file:// GOPROXY. GI_TEST_BINARY instead names a prebuilt static
// binary (e.g. bin/gracefulinit from make build, or a release artifact) to
// put in an image of the same layout.
func buildDistImage(t *testing.T, p *podman, root string) (tag, version string) {
	t.Helper()
	tag = "localhost/gracefulinit-test-dist:" + randomSuffix(t)
	if bin := os.Getenv("GI_TEST_BINARY"); bin != "" {
		ctxDir := t.TempDir()
		copyFile(t, bin, filepath.Join(ctxDir, "gracefulinit"), 0o755)
		writeFile(t, filepath.Join(ctxDir, "Containerfile"), "FROM scratch\nCOPY gracefulinit /gracefulinit\nENTRYPOINT [\"/gracefulinit\"]\n")
		buildImage(t, p, tag, ctxDir, filepath.Join(ctxDir, "Containerfile"), false)
		return tag, ""
	}
	dockerfile := filepath.Join(root, "Dockerfile")
	ensureGoImage(t, p, dockerfile)
	// The build's `go mod download` sees only the host's module cache: fill
	// it with everything that command wants, not just what the tests built.
	dl := exec.Command("go", "mod", "download")
	dl.Dir = root
	if out, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("go mod download on the host: %v\n%s", err, out)
	}
	modcache := goEnv(t, "GOMODCACHE")
	version = "v0.0.0-test." + randomSuffix(t)
	buildImage(t, p, tag, root, dockerfile, false,
		"--volume", filepath.Join(modcache, "cache", "download")+":/goproxy:ro",
		"--build-arg", "VERSION="+version,
		"--build-arg", "COMMIT=container-test")
	return tag, version
}

// goImageFrom finds the golang base image the Dockerfile builds with.
var goImageFrom = regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(golang:\S+)\s+AS\s+build\b`)

// ensureGoImage provides the Dockerfile's golang:TAG base without a
// registry: FROM scratch, the host's GOROOT, busybox for RUN's shell, and the
// environment pointing the go command at /goproxy (mounted at build time).
// It is rebuilt only when the host's Go or busybox changes.
func ensureGoImage(t *testing.T, p *podman, dockerfile string) {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	m := goImageFrom.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no \"FROM golang:TAG AS build\" line", dockerfile)
	}
	tag := "localhost/" + string(m[1])
	goroot := goEnv(t, "GOROOT")
	h := sha256.New()
	fmt.Fprintln(h, goImageFormat, goEnv(t, "GOVERSION"), goroot)
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(bb)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	if out, _, err := p.run(time.Minute, "image", "inspect", "--format", `{{index .Labels "`+imageKeyLabel+`"}}`, tag); err == nil && strings.TrimSpace(out) == key {
		return
	}
	unlock := lockFile(t, "go-image")
	defer unlock()
	if out, _, err := p.run(time.Minute, "image", "inspect", "--format", `{{index .Labels "`+imageKeyLabel+`"}}`, tag); err == nil && strings.TrimSpace(out) == key {
		return
	}

	// The image this one replaces, if any, is removed once it is untagged.
	oldID, _, _ := p.run(time.Minute, "image", "inspect", "--format", "{{.Id}}", tag)
	start := time.Now()
	ctxDir := t.TempDir()
	rootfs := filepath.Join(ctxDir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "usr", "local"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildStepBudget)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "cp", "-a", goroot, filepath.Join(rootfs, "usr", "local", "go")).CombinedOutput(); err != nil {
		t.Fatalf("copy GOROOT: %v\n%s", err, out)
	}
	addBusybox(t, rootfs)
	file := filepath.Join(ctxDir, "Containerfile")
	writeFile(t, file, strings.Join([]string{
		"FROM scratch",
		"COPY rootfs/ /",
		// GOTOOLCHAIN=local: never try to download another toolchain.
		// GOSUMDB=off: go.sum still verifies every module; the checksum
		// database is unreachable offline.
		"ENV PATH=/usr/local/go/bin:/bin GOPATH=/go HOME=/root GOTOOLCHAIN=local GOPROXY=file:///goproxy GOSUMDB=off",
		"LABEL " + imageKeyLabel + "=" + key,
		"",
	}, "\n"))
	args := []string{"build", "--layers=false", "--network", "none", "-q", "-t", tag, "-f", file, ctxDir}
	if _, _, err := p.run(buildStepBudget, args...); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the stand-in %s from the host's Go in %s", tag, time.Since(start).Round(time.Millisecond))
	if id := strings.TrimSpace(oldID); id != "" {
		// Fails harmlessly while a concurrent build still uses it.
		_, _, _ = p.run(time.Minute, "rmi", id)
	}
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command(goTool(), "env", name).Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// lockFile serializes image builds across test processes sharing the store.
func lockFile(t *testing.T, name string) (unlock func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(repo.CacheDir(), "podman", "."+name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
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
	unlock := lockFile(t, "jre-image")
	defer unlock()
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
	addBusybox(t, rootfs)
	copyFile(t, tiniPath, filepath.Join(rootfs, "sbin", "tini"), 0o755)
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
	// Base images for an earlier JDK, busybox or tini are dead weight now.
	out, _, _ := p.run(time.Minute, "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+jreImageRepo)
	for _, old := range strings.Fields(out) {
		if old != tag {
			_, _, _ = p.run(time.Minute, "rmi", old)
		}
	}
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

// addBusybox puts a static busybox with a few applet links and a
// world-writable /tmp into rootfs.
func addBusybox(t *testing.T, rootfs string) {
	t.Helper()
	copyFile(t, busyboxPath, filepath.Join(rootfs, "bin", "busybox"), 0o755)
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(rootfs, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
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
