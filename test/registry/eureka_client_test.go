package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	logging "github.com/op/go-logging"

	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
)

func init() {
	// fargo logs every call, DEBUG included, to stderr through go-logging;
	// a polling consumer would flood the test output.
	logging.SetBackend(logging.NewLogBackend(os.Stderr, "", 0))
	logging.SetLevel(logging.CRITICAL, "")
}

// eurekaID is the instance id of the app on ip:port, Spring's default with
// prefer-ip-address.
func eurekaID(app, ip string, port int) string { return fmt.Sprintf("%s:%s:%d", ip, app, port) }

// eurekaInit are gracefulinit's flags for Eureka mark mode.
func eurekaInit(s *registrytest.Server, app, id string, extra ...string) []string {
	return append([]string{"--registry", "eureka", "--eureka-url", s.EurekaURL, "--eureka-app", app, "--eureka-instance-id", id}, extra...)
}

// eurekaApp are the example app's flags to register itself in Eureka with a
// renewal every second.
func eurekaApp(s *registrytest.Server, app, id string) []string {
	return []string{"--eureka", s.EurekaURL, "--app", app, "--instance-id", id, "--eureka-heartbeat", "1"}
}

// setEurekaStatus puts a status override on the instance behind the app's
// and gracefulinit's back, as an earlier drain or an operator would.
func setEurekaStatus(t *testing.T, s *registrytest.Server, app, id, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	u := s.EurekaURL + "/apps/" + url.PathEscape(app) + "/" + url.PathEscape(id) + "/status?value=" + url.QueryEscape(value)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s: %s", u, resp.Status, body)
	}
}
