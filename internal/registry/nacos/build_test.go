//go:build !nosdk

package nacos

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBuildVariants builds a tiny program linking this package with and
// without -tags nosdk: the nosdk binary must not carry the SDK and must
// refuse register mode with one clear line. It logs sizes and idle RSS.
func TestBuildVariants(t *testing.T) {
	dir := t.TempDir()
	type variant struct {
		tags string
		bin  string
		size int64
		rss  int64
	}
	vs := []*variant{{tags: ""}, {tags: "nosdk"}}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, v := range vs {
		v.bin = filepath.Join(dir, "sizemain-"+v.tags)
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", v.tags, "-trimpath", "-ldflags=-s -w", "-o", v.bin, "./testdata/sizemain")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -tags %q: %v\n%s", v.tags, err, out)
		}
		fi, err := os.Stat(v.bin)
		if err != nil {
			t.Fatal(err)
		}
		v.size = fi.Size()
		v.rss = idleRSS(t, v.bin)
		t.Logf("tags=%-6q size %5.1f MiB (stripped), idle RSS %5.1f MiB, built in %v",
			v.tags, float64(v.size)/(1<<20), float64(v.rss)/(1<<20), time.Since(start).Round(time.Second))
	}
	full, lean := vs[0], vs[1]
	data, err := os.ReadFile(lean.bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("nacos-sdk-go")) {
		t.Error("the nosdk binary contains nacos-sdk-go")
	}
	if lean.size >= full.size {
		t.Errorf("nosdk binary (%d bytes) is not smaller than the full one (%d)", lean.size, full.size)
	}
	out, err := exec.CommandContext(ctx, lean.bin, "register").CombinedOutput()
	if err == nil {
		t.Fatal("the nosdk binary accepted register mode")
	}
	if got := strings.TrimSpace(string(out)); got != errNoSDKText {
		t.Fatalf("nosdk register mode said %q, want %q", got, errNoSDKText)
	}
	out, err = exec.CommandContext(ctx, lean.bin, "mark").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sdk: false") {
		t.Fatalf("nosdk mark mode: %v %s", err, out)
	}
}

// errNoSDKText is the nosdk build's register-mode error, checked verbatim
// because users read it.
const errNoSDKText = "nacos: register mode needs the full build; this binary was built with -tags nosdk"

func idleRSS(t *testing.T, bin string) int64 {
	t.Helper()
	cmd := exec.Command(bin, "mark", "wait")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let package init settle
	status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
