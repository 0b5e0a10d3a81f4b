package registry

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// TestEurekaToldAppKeptInRotation: the app, told to register itself
// OUT_OF_SERVICE, is put UP once ready; then the server loses the instance
// (deleted behind the app's back, as a restarted single-node Eureka or an
// eviction would). The app's next renewal gets 404 and it registers again,
// OUT_OF_SERVICE as it was told: gracefulinit puts it back UP within the
// keep interval (10 s), and the stop afterwards is clean.
func TestEurekaToldAppKeptInRotation(t *testing.T) {
	t.Parallel()
	s := registrytest.StartPolaris(t)
	const app = "KEPT"
	p := eurekaPod(t, s, app, 2*time.Second)
	id := p.eurekaID()
	c := standin.NewEurekaConsumer(s.EurekaURL)
	p.waitHealthy()
	p.waitJVM("eureka registered "+app+"/"+id+" status=OUT_OF_SERVICE", visible)
	p.waitLog("registry online", "eureka", visible)
	c.WaitStatus(t, app, id, "UP once online", visible, standin.EurekaUp)

	lost := time.Now()
	send(t, http.MethodDelete, s.EurekaURL+"/apps/"+url.PathEscape(app)+"/"+url.PathEscape(id), "", "")
	again := p.waitJVM("eureka heartbeat: instance not found, re-registering", visible)
	c.WaitStatus(t, app, id, "UP again", registry.DefaultKeepInterval+visible, standin.EurekaUp)
	t.Logf("the app registered again %v after the server lost the instance; consumers saw it UP again %v after that",
		again.Sub(lost).Round(time.Millisecond), time.Since(again).Round(time.Millisecond))
	p.waitLog("eureka instance registered again OUT_OF_SERVICE, as the app was told at start: putting it back in rotation", "eureka", visible)
	p.waitLog("registry keep: the app registered itself again out of rotation, as it was told at start; put back in rotation", "eureka", visible)

	p.term()
	if sum := p.checkStopOnSchedule(); sum.Offline != "ok" {
		t.Errorf("summary: offline %q, want ok", sum.Offline)
	}
}
