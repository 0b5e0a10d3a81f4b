package registrytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

func TestTemplateInSync(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "testdata", "registry", "polaris.yaml.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != configTemplate {
		t.Fatal("internal/registrytest/polaris.yaml.tmpl differs from testdata/registry/polaris.yaml.tmpl: copy the testdata one over")
	}
}

// get returns the status and body of GET url, an error when the server
// does not answer.
func get(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestStartStopStart(t *testing.T) {
	s := StartPolaris(t)
	if s.NacosPort == 0 || s.EurekaPort == 0 || s.NacosAddr == "" || s.EurekaURL == "" || s.Dir == "" {
		t.Fatalf("incomplete server: %+v", s)
	}
	nacosURL := s.NacosAddr + "/nacos/v1/ns/instance/list?serviceName=x"
	eurekaURL := s.EurekaURL + "/apps"
	for _, u := range []string{nacosURL, eurekaURL} {
		if code, _, err := get(u); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", u, code, err)
		}
	}
	// Register something so the restart shows state survives.
	// Polaris wants a form body and a metadata field.
	resp, err := http.PostForm(s.NacosAddr+"/nacos/v1/ns/instance", url.Values{
		"serviceName": {"DEFAULT_GROUP@@keep"}, "ip": {"10.0.0.1"}, "port": {"80"},
		"ephemeral": {"false"}, "metadata": {"{}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register: %s", resp.Status)
	}
	waitListed(t, s)

	s.Stop()
	if s.Running() {
		t.Fatal("still running after Stop")
	}
	for _, u := range []string{nacosURL, eurekaURL} {
		if _, _, err := get(u); err == nil {
			t.Fatalf("GET %s answered while stopped", u)
		}
	}
	s.Stop() // idempotent

	start := time.Now()
	s.Start(t)
	t.Logf("restart took %v", time.Since(start).Round(time.Millisecond))
	for _, u := range []string{nacosURL, eurekaURL} {
		if code, _, err := get(u); err != nil || code != 200 {
			t.Fatalf("after restart GET %s: %d %v", u, code, err)
		}
	}
	// The boltdb state in Dir survives a restart, like a real outage.
	waitListed(t, s)
}

// waitListed waits for the instance TestStartStopStart registers.
func waitListed(t *testing.T, s *Server) {
	t.Helper()
	list := s.NacosAddr + "/nacos/v1/ns/instance/list?serviceName=DEFAULT_GROUP@@keep&healthyOnly=false"
	poll.Eventually(t, 5*time.Second, "10.0.0.1 listed", func() error {
		_, b, err := get(list)
		if err == nil && !strings.Contains(b, `"10.0.0.1"`) {
			err = fmt.Errorf("list: %s", b)
		}
		return err
	})
}

func TestBuildScriptIsIdempotent(t *testing.T) {
	PolarisBinary(t) // make sure it is built
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "build-polaris.sh")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != CachedPolarisPath() {
		t.Fatalf("script printed %q, want %q", got, CachedPolarisPath())
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("cached script run took %v: it should not rebuild", took)
	}
}

func TestTwoServersInParallel(t *testing.T) {
	a, b := StartPolaris(t), StartPolaris(t)
	if a.NacosPort == b.NacosPort || a.EurekaPort == b.EurekaPort || a.Dir == b.Dir {
		t.Fatalf("servers share ports or dirs: %+v %+v", a, b)
	}
}

func TestLaunchFailsWhenPortTaken(t *testing.T) {
	bin := PolarisBinary(t)
	a := StartPolaris(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Same ports as a running server: Launch must fail rather than report
	// the other server as its own.
	s, err := Launch(ctx, bin, t.TempDir(), a.NacosPort, a.EurekaPort)
	if err == nil {
		s.Stop()
		t.Fatal("Launch on taken ports succeeded")
	}
	t.Logf("error as expected: %v", err)
}
