package eureka

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hudl/fargo"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

// registerAgain is what a Eureka client does after its lease was lost (a
// registry restart, eviction): its renewal gets 404 and it registers again
// with the status it holds, OUT_OF_SERVICE for an app told so at start. The
// instance is deleted first, and registered once consumers no longer list
// it (Polaris deletes asynchronously).
func (a *selfApp) registerAgain(t *testing.T, w *watcher) time.Time {
	t.Helper()
	if err := a.conn.DeregisterInstance(&fargo.Instance{InstanceId: a.id, App: a.app}); err != nil {
		t.Fatalf("deleting the instance: %v", err)
	}
	w.waitFor(t, time.Now(), "the instance gone", func(s string) bool { return s == "" })
	at := time.Now()
	if err := a.register(fargo.OUTOFSERVICE); err != nil {
		t.Fatalf("registering again OUT_OF_SERVICE: %v", err)
	}
	w.waitFor(t, at, "registered again OUT_OF_SERVICE", func(s string) bool { return s == "OUT_OF_SERVICE" })
	return at
}

// putStatus is an operator's PUT .../status, or the offline step's.
func putStatus(t *testing.T, eurekaURL, app, id, value string) {
	t.Helper()
	u := eurekaURL + "/apps/" + app + "/" + id + "/status?value=" + url.QueryEscape(value)
	req, err := http.NewRequestWithContext(ctxFor(t, 5*time.Second), http.MethodPut, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT status=%s: %v", value, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT status=%s: HTTP %d", value, resp.StatusCode)
	}
}

// TestPolarisKeep: a told app put online by gracefulinit, whose registration
// is then lost and made again OUT_OF_SERVICE (as its client does), is put
// back UP by Keep; what is not the told registration is left alone.
func TestPolarisKeep(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)

	// online starts a told (or not) app registered OUT_OF_SERVICE and puts
	// it UP with Online, as gracefulinit does once the app is ready.
	online := func(t *testing.T, n int, env map[string]string) (*Eureka, *selfApp, *watcher, *testbin.SafeBuffer) {
		t.Helper()
		app, id := fmt.Sprintf("KEEP-SVC-%d", n), fmt.Sprintf("pod-%d:keep-svc:8080", n)
		log, logs := testLogger()
		e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), log)
		e.AppEnv(lookupIn(env))
		w := watch(t, srv.EurekaURL, app, id)
		a := startSelfApp(t, srv.EurekaURL, app, id, "127.0.0.2", 8080, fargo.OUTOFSERVICE, true)
		w.waitFor(t, time.Now().Add(-time.Minute), "the registration listed", func(s string) bool { return s != "" })
		onlineEventually(t, e, visible)
		w.waitFor(t, time.Now(), "UP after Online", standin.EurekaUp)
		return e, a, w, logs
	}

	t.Run("lease lost, registered again as told: put back by the Set's keep", func(t *testing.T) {
		t.Parallel()
		app, id := "KEEP-SVC-0", "pod-0:keep-svc:8080"
		log, logs := testLogger()
		e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), log)
		const interval = 500 * time.Millisecond
		set := &registry.Set{Registries: []registry.Registry{e}, Timeout: 2 * time.Second, KeepInterval: interval, Log: log}
		if env := set.AppEnv(lookupIn(nil)); len(env) != 1 || env[0] != "EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE" {
			t.Fatalf("AppEnv = %q", env)
		}
		w := watch(t, srv.EurekaURL, app, id)
		a := startSelfApp(t, srv.EurekaURL, app, id, "127.0.0.2", 8080, fargo.OUTOFSERVICE, true)
		w.waitFor(t, time.Now().Add(-time.Minute), "the registration listed", func(s string) bool { return s != "" })
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		set.Online(ctx) // returns once online; the keep loop runs on until cancel
		w.waitFor(t, time.Now(), "UP after Online", standin.EurekaUp)

		for round := range 2 {
			at := a.registerAgain(t, w)
			up := w.waitFor(t, at, "UP again", standin.EurekaUp)
			t.Logf("round %d: consumers saw the instance UP again %v after it registered again OUT_OF_SERVICE (keep interval %v)",
				round+1, up.Sub(at).Round(time.Millisecond), interval)
		}
		if n := strings.Count(logs.String(), "registry keep: the app registered itself again out of rotation"); n < 2 {
			t.Fatalf("the Set logged %d put-backs, want 2:\n%s", n, logs)
		}
		// It stays UP through the app's heartbeats and further looks.
		time.Sleep(3 * interval)
		if s := standin.NewEurekaConsumer(srv.EurekaURL).Status(app, id); s != "UP" {
			t.Fatalf("after more heartbeats and looks the instance is %q, want UP", s)
		}
		cancel()
	})

	t.Run("lease lost, registered again as told: Keep puts it back", func(t *testing.T) {
		t.Parallel()
		e, a, w, logs := online(t, 1, nil)
		if put, err := e.Keep(ctxFor(t, 5*time.Second)); put || err != nil {
			t.Fatalf("Keep while UP = %v, %v; want false, nil", put, err)
		}
		at := a.registerAgain(t, w)
		if put, err := e.Keep(ctxFor(t, 5*time.Second)); !put || err != nil {
			t.Fatalf("Keep on the told registration = %v, %v; want true, nil\n%s", put, err, logs)
		}
		up := w.waitFor(t, at, "UP again", standin.EurekaUp)
		t.Logf("UP again %v after the registration", up.Sub(at).Round(time.Millisecond))
		// While the instance is gone (404 on Polaris: 400), no error.
		if err := a.conn.DeregisterInstance(&fargo.Instance{InstanceId: a.id, App: a.app}); err != nil {
			t.Fatal(err)
		}
		w.waitFor(t, time.Now(), "the instance gone", func(s string) bool { return s == "" })
		if put, err := e.Keep(ctxFor(t, 5*time.Second)); put || err != nil {
			t.Fatalf("Keep while not registered = %v, %v; want false, nil", put, err)
		}
	})

	// Polaris keeps no override: an operator's PUT .../status=OUT_OF_SERVICE
	// shows as status OUT_OF_SERVICE with overriddenStatus UNKNOWN, exactly
	// as the told registration does, so Keep cannot tell them apart there
	// and puts it back (on Netflix Eureka it is an override and is left
	// alone: TestKeepContract). This pins that limitation down.
	t.Run("an operator's OUT_OF_SERVICE on Polaris: indistinguishable, put back", func(t *testing.T) {
		t.Parallel()
		e, a, w, _ := online(t, 2, nil)
		at := time.Now()
		putStatus(t, srv.EurekaURL, a.app, a.id, "OUT_OF_SERVICE")
		w.waitFor(t, at, "out by the operator", func(s string) bool { return s == "OUT_OF_SERVICE" })
		in := readInstance(t, srv.EurekaURL, a.app, a.id)
		if in.Status != "OUT_OF_SERVICE" || (in.OverriddenStatus != "" && in.OverriddenStatus != "UNKNOWN") {
			t.Fatalf("Polaris shows the operator's status as %+v: it now keeps overrides, and Keep leaves them alone (update this test and the README)", in)
		}
		if put, err := e.Keep(ctxFor(t, 5*time.Second)); !put || err != nil {
			t.Fatalf("Keep = %v, %v; want it put back (Polaris shows no override)", put, err)
		}
	})

	// The user's variable says what gracefulinit would: Online put the
	// instance UP, so a registration again OUT_OF_SERVICE is put back too
	// (left alone, it stayed out for good while the pod reported ready).
	t.Run("the user's initial status OUT_OF_SERVICE, registered again: Keep puts it back", func(t *testing.T) {
		t.Parallel()
		e, a, w, logs := online(t, 3, map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": "OUT_OF_SERVICE"})
		at := a.registerAgain(t, w)
		if put, err := e.Keep(ctxFor(t, 5*time.Second)); !put || err != nil {
			t.Fatalf("Keep = %v, %v; want true, nil\n%s", put, err, logs)
		}
		w.waitFor(t, at, "UP again", standin.EurekaUp)
	})

	t.Run("after Offline: no write", func(t *testing.T) {
		t.Parallel()
		e, a, w, _ := online(t, 4, nil)
		if err := e.Offline(ctxFor(t, 5*time.Second)); err != nil {
			t.Fatalf("Offline: %v", err)
		}
		w.waitFor(t, time.Now(), "out after Offline", func(s string) bool { return s == "OUT_OF_SERVICE" })
		a.registerAgain(t, w)
		if put, err := e.Keep(ctxFor(t, 5*time.Second)); put || err != nil {
			t.Fatalf("Keep after Offline = %v, %v; want false, nil", put, err)
		}
		stays(t, w, "OUT_OF_SERVICE")
	})
}

// stays checks that consumers see only status for a while: two of
// Polaris's cache rebuilds and the app's heartbeats.
func stays(t *testing.T, w *watcher, status string) {
	t.Helper()
	from := time.Now()
	time.Sleep(2500 * time.Millisecond)
	for _, s := range w.sightings() {
		if s.at.After(from) && s.status != status {
			t.Fatalf("consumers saw %q at %v, want %s throughout", s.status, s.at.Sub(from).Round(time.Millisecond), status)
		}
	}
}

// readInstance is GET /apps/APP/ID as the backend reads it.
func readInstance(t *testing.T, eurekaURL, app, id string) instanceInfo {
	t.Helper()
	var in instanceInfo
	poll.Eventually(t, visible, "the instance read", func() error {
		req, err := http.NewRequestWithContext(ctxFor(t, 5*time.Second), http.MethodGet, eurekaURL+"/apps/"+app+"/"+id, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		in, err = parseInstance(b)
		return err
	})
	return in
}
