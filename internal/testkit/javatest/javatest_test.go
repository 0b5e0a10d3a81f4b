package javatest

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindMain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		want    string
		wantErr string
	}{
		{
			name:  "default package",
			files: map[string]string{"A.java": "class A { public static void main(String[] a) {} }", "B.java": "class B {}"},
			want:  "A",
		},
		{
			name:  "package in subdir",
			files: map[string]string{"x/y/M.java": "package x.y;\npublic class M {\n  public static void main(String... a) {}\n}"},
			want:  "x.y.M",
		},
		{
			name:    "none",
			files:   map[string]string{"A.java": "class A {}"},
			wantErr: "no class with a main method",
		},
		{
			name: "two",
			files: map[string]string{
				"A.java": "class A { static void main(String[] a) {} }",
				"B.java": "class B { static void main(String[] a) {} }",
			},
			wantErr: "several classes",
		},
		{
			name:    "no sources",
			files:   map[string]string{"README.md": "x"},
			wantErr: "no .java files",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindMain(writeFiles(t, tt.files))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FindMain = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("FindMain = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func manifestMain(t *testing.T, jar string) string {
	t.Helper()
	zr, err := zip.OpenReader(jar)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != "META-INF/MANIFEST.MF" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\r\n") {
			if v, ok := strings.CutPrefix(l, "Main-Class: "); ok {
				return v
			}
		}
	}
	t.Fatalf("%s has no Main-Class", jar)
	return ""
}

// The cache must hand every concurrent caller the same complete jar, build
// once, and build anew when a source changes.
func TestCachedConcurrentAndKeyed(t *testing.T) {
	t.Parallel()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, TestAppDir, "TestApp.java"))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{"TestApp.java": string(src)})
	cache := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()

	const n = 4
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = cachedIn(ctx, cache, dir, "")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if paths[i] != paths[0] {
			t.Fatalf("caller %d got %s, caller 0 got %s", i, paths[i], paths[0])
		}
	}
	if got := manifestMain(t, paths[0]); got != "TestApp" {
		t.Fatalf("Main-Class = %q, want TestApp", got)
	}
	jars, _ := filepath.Glob(filepath.Join(cache, "*.jar"))
	leftovers, _ := filepath.Glob(filepath.Join(cache, ".build-*"))
	if len(jars) != 1 || len(leftovers) != 0 {
		t.Fatalf("cache holds jars %v and temp dirs %v; want one jar, no temp dirs", jars, leftovers)
	}
	fi1, err := os.Stat(paths[0])
	if err != nil {
		t.Fatal(err)
	}

	again, err := cachedIn(ctx, cache, dir, "")
	if err != nil || again != paths[0] {
		t.Fatalf("second lookup = %s, %v; want %s", again, err, paths[0])
	}
	if fi2, _ := os.Stat(again); !fi2.ModTime().Equal(fi1.ModTime()) {
		t.Fatal("second lookup rebuilt the jar")
	}

	if err := os.WriteFile(filepath.Join(dir, "TestApp.java"), append(src, "\n// changed\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := cachedIn(ctx, cache, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if changed == paths[0] {
		t.Fatal("a changed source reused the old jar")
	}
}

func TestBuildCompileError(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"Bad.java": "class Bad { public static void main(String[] a) { nope(); } }"})
	out := filepath.Join(t.TempDir(), "bad.jar")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	err := Build(ctx, dir, "", out)
	if err == nil || !strings.Contains(err.Error(), "cannot find symbol") {
		t.Fatalf("Build = %v; want javac's error", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("failed build left %s behind", out)
	}
}

func TestRepoJarsBuild(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		jar  func(testing.TB) string
		main string
	}{
		{"TestApp", TestAppJar, "TestApp"},
		{"ExampleApp", ExampleAppJar, "App"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := manifestMain(t, tt.jar(t)); got != tt.main {
				t.Fatalf("Main-Class = %q, want %q", got, tt.main)
			}
		})
	}
}

func TestParseEvents(t *testing.T) {
	t.Parallel()
	evs, err := ParseEvents("1000 ready\n1500 request /slow\n2000 term\n20")
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{time.UnixMilli(1000), "ready", ""},
		{time.UnixMilli(1500), "request", "/slow"},
		{time.UnixMilli(2000), "term", ""},
	}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Fatalf("ParseEvents = %v, want %v", evs, want)
	}
	if _, err := ParseEvents("x ready\n"); err == nil {
		t.Fatal("a bad timestamp parsed")
	}
}

func TestInOrder(t *testing.T) {
	t.Parallel()
	evs, err := ParseEvents("1 request\n2 ready\n3 request\n4 term\n5 hook-start\n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names   []string
		wantAt  []int64 // ms of the events found
		wantErr string
	}{
		{[]string{"ready", "request", "term"}, []int64{2, 3, 4}, ""},
		{[]string{"request", "request"}, []int64{1, 3}, ""},
		{[]string{"term", "ready"}, nil, `event "ready" does not follow "term"`},
		{[]string{"ready", "exit"}, nil, `event "exit" missing`},
		{[]string{"exit"}, nil, `event "exit" missing`},
	}
	for _, tt := range tests {
		got, err := InOrder(evs, tt.names...)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("InOrder(%v) = %v, %v; want error %q", tt.names, got, err, tt.wantErr)
			}
			continue
		}
		var at []int64
		for _, e := range got {
			at = append(at, e.At.UnixMilli())
		}
		if err != nil || fmt.Sprint(at) != fmt.Sprint(tt.wantAt) {
			t.Errorf("InOrder(%v) = %v, %v; want events at %v", tt.names, at, err, tt.wantAt)
		}
	}
}

func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// startTestApp runs TestApp with an events file and waits for READY.
func startTestApp(ctx context.Context, t *testing.T, args ...string) (*Proc, string, time.Duration) {
	t.Helper()
	events := filepath.Join(t.TempDir(), "events")
	start := time.Now()
	p := Start(t, TestAppJar(t), append([]string{"--events", events}, args...)...)
	if _, err := p.WaitLine(ctx, "READY"); err != nil {
		t.Fatal(err)
	}
	return p, events, time.Since(start)
}

func mustEvents(t *testing.T, path string) []Event {
	t.Helper()
	evs, err := ReadEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// requireOrder fails unless the named events occurred in this order, and
// returns them by name.
func requireOrder(t *testing.T, evs []Event, names ...string) map[string]Event {
	t.Helper()
	found, err := InOrder(evs, names...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Event{}
	for _, e := range found {
		got[e.Name] = e
	}
	return got
}

func TestTestAppSIGTERMRunsHooksAndExits143(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, events, took := startTestApp(ctx, t, "--hook-ms", "300")
	t.Logf("JVM start to READY: %v", took)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.Exit(ctx)
	if err != nil || code != 143 {
		t.Fatalf("exit = %d, %v; want 143", code, err)
	}
	ev := requireOrder(t, mustEvents(t, events), "start", "ready", "term", "hook-start", "hook-done")
	if d := ev["hook-done"].At.Sub(ev["hook-start"].At); d < 290*time.Millisecond {
		t.Fatalf("hook slept %v, want >= 300ms", d)
	}
	for _, want := range []string{"TERM", "HOOK START", "HOOK DONE"} {
		if _, err := p.WaitLine(ctx, want); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTestAppIgnoreTerm(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, events, _ := startTestApp(ctx, t, "--ignore-term", "--trap", "HUP,SIGUSR1")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1} {
		if err := p.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"TERM ignored", "SIGNAL HUP", "SIGNAL USR1"} {
		if _, err := p.WaitLine(ctx, want); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-p.Done():
		t.Fatal("the JVM exited on an ignored SIGTERM")
	case <-time.After(500 * time.Millisecond):
	}
	if _, ok := FindEvent(mustEvents(t, events), "hook-start"); ok {
		t.Fatal("shutdown hook ran although TERM was ignored")
	}
	p.Kill()
	if code, _ := p.Exit(ctx); code != 137 {
		t.Fatalf("exit after SIGKILL = %d, want 137", code)
	}
}

func TestTestAppExitCode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, events, _ := startTestApp(ctx, t, "--exit", "7", "--exit-delay-ms", "100")
	code, err := p.Exit(ctx)
	if err != nil || code != 7 {
		t.Fatalf("exit = %d, %v; want 7", code, err)
	}
	requireOrder(t, mustEvents(t, events), "ready", "exit", "hook-start", "hook-done")
}

func ppid(pid int) (int, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	// comm may contain spaces; it is enclosed in the only parentheses.
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	f := strings.Fields(s[closing+1:])
	if open < 0 || len(f) < 2 {
		return 0, "", fmt.Errorf("odd /proc/%d/stat: %q", pid, s)
	}
	pp, err := strconv.Atoi(f[1])
	return pp, s[open+1 : closing], err
}

func TestTestAppSpawn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, events, _ := startTestApp(ctx, t, "--spawn", "2")
	var pids []int
	for _, l := range p.Lines() {
		if v, ok := strings.CutPrefix(l, "CHILD "); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
			// Through a pidfd: by cleanup time the pid may be reused.
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				t.Cleanup(func() {
					_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
					unix.Close(fd)
				})
			}
		}
	}
	if len(pids) != 2 {
		t.Fatalf("CHILD lines give pids %v, want 2", pids)
	}
	var spawned []int
	for _, e := range mustEvents(t, events) {
		if e.Name == "spawn" {
			pid, _ := strconv.Atoi(e.Detail)
			spawned = append(spawned, pid)
		}
	}
	sort.Ints(spawned)
	sorted := append([]int(nil), pids...)
	sort.Ints(sorted)
	if fmt.Sprint(spawned) != fmt.Sprint(sorted) {
		t.Fatalf("spawn events %v, CHILD lines %v", spawned, sorted)
	}
	for _, pid := range pids {
		parent, comm, err := ppid(pid)
		if err != nil {
			t.Fatal(err)
		}
		if parent != p.Cmd.Process.Pid || comm != "sleep" {
			t.Fatalf("pid %d is %q with parent %d; want sleep, child of the JVM %d", pid, comm, parent, p.Cmd.Process.Pid)
		}
	}
	// The grandchildren outlive the JVM: what a supervisor's tree kill is for.
	p.Kill()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("grandchild %d died with the JVM: %v", pid, err)
		}
	}
}

func TestTestAppHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lateBind bool
	}{
		{"bind early, 503 until ready", false},
		{"late bind, refused until ready", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			port := freeport.Must(t, "127.0.0.1")
			base := fmt.Sprintf("http://127.0.0.1:%d", port)
			events := filepath.Join(t.TempDir(), "events")
			args := []string{"--port", strconv.Itoa(port), "--start-delay-ms", "1500", "--events", events}
			if tt.lateBind {
				args = append(args, "--late-bind")
			}
			p := Start(t, TestAppJar(t), args...)
			if !tt.lateBind {
				if _, err := p.WaitLine(ctx, "LISTEN "); err != nil {
					t.Fatal(err)
				}
			} else {
				// Wait until the JVM runs, then it must still refuse.
				if _, err := WaitEvent(ctx, events, "start"); err != nil {
					t.Fatal(err)
				}
			}
			code, body, err := get(ctx, base+"/health")
			ready := false
			for _, l := range p.Lines() {
				ready = ready || l == "READY"
			}
			switch {
			case ready:
				t.Log("machine too slow to observe the not-ready phase")
			case tt.lateBind:
				if err == nil {
					t.Fatalf("/health answered %d %q before the late bind", code, body)
				}
			default:
				if err != nil || code != http.StatusServiceUnavailable {
					t.Fatalf("/health before ready = %d %q %v; want 503", code, body, err)
				}
			}
			if _, err := p.WaitLine(ctx, "READY"); err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				path, want string
				code       int
			}{
				{"/health", "ok", 200},
				{"/", fmt.Sprintf("ok 127.0.0.1:%d", port), 200},
				{"/", fmt.Sprintf("ok 127.0.0.1:%d", port), 200},
				{"/count", "2", 200},
			}
			for _, c := range checks {
				code, body, err := get(ctx, base+c.path)
				if err != nil || code != c.code || body != c.want {
					t.Fatalf("GET %s = %d %q %v; want %d %q", c.path, code, body, err, c.code, c.want)
				}
			}
			start := time.Now()
			code, body, err = get(ctx, base+"/slow?ms=300")
			if err != nil || code != 200 || body != "slow 300" || time.Since(start) < 300*time.Millisecond {
				t.Fatalf("/slow?ms=300 = %d %q %v after %v", code, body, err, time.Since(start))
			}
			requireOrder(t, mustEvents(t, events), "start", "listen", "ready", "request", "request-done")
		})
	}
}

// TestJVMStartup logs how long TestApp takes from exec to exit with --exit 0,
// the floor of every JVM-based test here.
func TestJVMStartup(t *testing.T) {
	t.Parallel()
	jar := TestAppJar(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var runs []time.Duration
	for range 3 {
		start := time.Now()
		cmd, err := Command(ctx, jar, "--exit", "0")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		runs = append(runs, time.Since(start))
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i] < runs[j] })
	t.Logf("TestApp --exit 0, exec to exit: min %v, median %v", runs[0], runs[1])
}
