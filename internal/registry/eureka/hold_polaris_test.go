package eureka

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hudl/fargo"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest"
	"github.com/gracefulinit/gracefulinit/internal/testkit/registrytest/standin"
)

// selfApp stands in for an app that registers itself with a status of its
// choosing (a Spring app told EUREKA_INSTANCE_INITIALSTATUS registers
// OUT_OF_SERVICE) and heartbeats every second; it may register again.
type selfApp struct {
	conn      fargo.EurekaConnection
	app, id   string
	ip        string
	port      int
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	status    fargo.StatusType
	beatError error
}

func startSelfApp(t *testing.T, eurekaURL, app, id, ip string, port int, status fargo.StatusType, useJSON bool) *selfApp {
	t.Helper()
	a := &selfApp{conn: fargo.NewConn(eurekaURL), app: app, id: id, ip: ip, port: port, status: status,
		stop: make(chan struct{}), done: make(chan struct{})}
	a.conn.UseJson = useJSON
	if err := a.register(status); err != nil {
		t.Fatalf("app %s: register %s: %v", id, status, err)
	}
	go a.heartbeat()
	t.Cleanup(a.exit)
	return a
}

// register posts the instance with status: fargo rewrites the document it
// sends, so each registration builds a fresh one.
func (a *selfApp) register(status fargo.StatusType) error {
	a.mu.Lock()
	a.status = status
	a.mu.Unlock()
	return a.conn.ReregisterInstance(&fargo.Instance{
		InstanceId:     a.id,
		HostName:       a.ip,
		App:            a.app,
		IPAddr:         a.ip,
		VipAddress:     strings.ToLower(a.app),
		Status:         status,
		Port:           a.port,
		PortEnabled:    true,
		DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn},
	})
}

func (a *selfApp) heartbeat() {
	defer close(a.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
			a.mu.Lock()
			status := a.status
			a.mu.Unlock()
			err := a.conn.HeartBeatInstance(&fargo.Instance{InstanceId: a.id, App: a.app, Status: status})
			a.mu.Lock()
			a.beatError = err
			a.mu.Unlock()
		}
	}
}

func (a *selfApp) exit() {
	a.stopOnce.Do(func() { close(a.stop) })
	<-a.done
}

// sighting is one consumer read of the instance's status ("" not listed).
type sighting struct {
	at     time.Time
	status string
}

// watcher reads the app as a consumer does (GET /eureka/apps/APP) every
// 20 ms and records what it saw.
type watcher struct {
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	seen     []sighting
}

func watch(t *testing.T, eurekaURL, app, id string) *watcher {
	c := standin.NewEurekaConsumer(eurekaURL)
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			s := sighting{status: c.Status(app, id)}
			s.at = time.Now()
			w.mu.Lock()
			w.seen = append(w.seen, s)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

func (w *watcher) end() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

func (w *watcher) sightings() []sighting {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// ups counts the UP sightings in [from, to) and the span from the first to
// the last of them.
func (w *watcher) ups(from, to time.Time) (n int, span time.Duration) {
	var first, last time.Time
	for _, s := range w.sightings() {
		if s.status != "UP" || s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		if n == 0 {
			first = s.at
		}
		n, last = n+1, s.at
	}
	return n, last.Sub(first)
}

// waitFor waits until the watcher saw cond hold after from.
func (w *watcher) waitFor(t *testing.T, from time.Time, what string, cond func(string) bool) time.Time {
	t.Helper()
	var at time.Time
	poll.Eventually(t, visible, what, func() error {
		for _, s := range w.sightings() {
			if s.at.After(from) && cond(s.status) {
				at = s.at
				return nil
			}
		}
		return fmt.Errorf("not seen")
	})
	return at
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestPolarisHoldToldRegistration: told by AppEnv, the app registers itself
// OUT_OF_SERVICE; Hold recognises that registration as held
// (HoldRegisteredOut, then HoldKept) without writing, consumers never see it
// UP before Online, and Online puts it UP for good (the app's heartbeats do
// not take it out again). A user's own initial status is left to the app:
// AppEnv tells nothing, and its OUT_OF_SERVICE registration is kept as any
// out-of-rotation instance (HoldKept), and put UP by Online as before.
func TestPolarisHoldToldRegistration(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)
	tests := []struct {
		name     string
		env      map[string]string
		json     bool
		wantEnv  []string
		wantHold registry.HoldState
		wantLog  string // Online's
		// early: Hold looks right after the registration, before the
		// server's reads show it: the write first holds it, or the
		// read finds it as told; either way consumers never see it UP.
		early bool
	}{
		{"told, registers with JSON", nil, true, []string{"EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE"},
			registry.HoldRegisteredOut, "eureka hold released", false},
		{"told, registers with XML", map[string]string{"SPRING_PROFILES_ACTIVE": "k8s"}, false, []string{"EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE"},
			registry.HoldRegisteredOut, "eureka hold released", false},
		{"told, looked at before the server shows it", nil, true, []string{"EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE"},
			registry.HoldRegisteredOut, "eureka hold released", true},
		{"the user's initial status OUT_OF_SERVICE: told already", map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": "OUT_OF_SERVICE"}, true, nil,
			registry.HoldRegisteredOut, "eureka hold released", false},
		{"the user's initial status OUT_OF_SERVICE, legacy name: told already", map[string]string{"EUREKA_INSTANCE_INITIAL_STATUS": "out_of_service"}, true, nil,
			registry.HoldRegisteredOut, "eureka hold released", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			app, id := fmt.Sprintf("TOLD-SVC-%d", i), fmt.Sprintf("pod-%d:told-svc:8080", i)
			log, logs := testLogger()
			e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), log)
			if got := e.AppEnv(lookupIn(tt.env)); !slices.Equal(got, tt.wantEnv) {
				t.Fatalf("AppEnv = %q, want %q", got, tt.wantEnv)
			}
			w := watch(t, srv.EurekaURL, app, id)
			start := time.Now()
			startSelfApp(t, srv.EurekaURL, app, id, "127.0.0.2", 8080, fargo.OUTOFSERVICE, tt.json)
			if tt.early {
				st, err := e.Hold(ctxFor(t, 5*time.Second))
				if err != nil || (st != registry.HoldApplied && st != registry.HoldRegisteredOut) {
					t.Fatalf("Hold right after the registration = %v, %v; want held (applied, or registered out)", st, err)
				}
				t.Logf("Hold right after the registration: %v", st)
			} else {
				// Hold reads what consumers read: once they list the
				// instance, so does Hold (no write first).
				w.waitFor(t, start, "the registration listed", func(s string) bool { return s != "" })
				for n, want := range []registry.HoldState{tt.wantHold, registry.HoldKept} {
					st, err := e.Hold(ctxFor(t, 5*time.Second))
					if err != nil || st != want {
						t.Fatalf("look %d: Hold = %v, %v; want %v", n+1, st, err, want)
					}
				}
				if strings.Contains(logs.String(), "instance held OUT_OF_SERVICE") {
					t.Errorf("Hold wrote on a registration that was out already:\n%s", logs)
				}
			}
			time.Sleep(1500 * time.Millisecond) // heartbeats, and a cache rebuild or two
			onlineAt := time.Now()
			if err := e.Online(ctxFor(t, 5*time.Second)); err != nil {
				t.Fatalf("Online: %v", err)
			}
			if n, _ := w.ups(start, onlineAt); n > 0 {
				t.Fatalf("consumers saw the instance UP %d times before Online", n)
			}
			up := w.waitFor(t, onlineAt, "UP after Online", standin.EurekaUp)
			t.Logf("listed OUT_OF_SERVICE from registration until Online; UP %v after Online began", up.Sub(onlineAt).Round(time.Millisecond))
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("Online did not log %q:\n%s", tt.wantLog, logs)
			}
			// The app keeps renewing; it stays UP.
			time.Sleep(2500 * time.Millisecond)
			if s := standin.NewEurekaConsumer(srv.EurekaURL).Status(app, id); s != "UP" {
				t.Fatalf("after the app's heartbeats the instance is %q, want UP", s)
			}
		})
	}
}

// TestPolarisHoldWriteFirst: the hold runs (registry.Set, every 250 ms) from
// before the app registers UP. A registration the server has stored but
// its read cache does not show yet is held by the write first, before the
// cache shows it to consumers. Each trial counts what a consumer polling
// every 20 ms saw UP between the registration and the moment it saw the
// hold; the numbers are logged (timing is the machine's: no assertion on
// them). Later the app registers again as UP, which Polaris takes as
// dropping the hold: the next looks read, see it, and put it back.
func TestPolarisHoldWriteFirst(t *testing.T) {
	t.Parallel() // each test runs its own Polaris
	srv := registrytest.StartPolaris(t)
	const trials = 6
	type result struct {
		ups        int
		span       time.Duration
		held       time.Duration
		writeFirst bool
	}
	results := make([]result, trials)
	t.Run("trials", func(t *testing.T) {
		for i := range trials {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				app, id := fmt.Sprintf("EARLY-SVC-%d", i), fmt.Sprintf("pod-%d:early-svc:8080", i)
				log, logs := testLogger()
				e := mustNew(t, polarisConfig(srv.EurekaURL, "mark", app, id), log)
				set := &registry.Set{Registries: []registry.Registry{e}, Timeout: 2 * time.Second, Log: log}
				stop := make(chan struct{})
				holdDone := make(chan struct{})
				go func() { set.Hold(stop); close(holdDone) }()
				stopped := false
				stopHold := func() {
					if !stopped {
						stopped = true
						close(stop)
						<-holdDone
					}
				}
				t.Cleanup(stopHold)
				w := watch(t, srv.EurekaURL, app, id)
				// Registrations fall at different moments of the
				// server's cache rebuild and the hold's looks.
				time.Sleep(time.Duration(i) * 170 * time.Millisecond)
				regAt := time.Now()
				a := startSelfApp(t, srv.EurekaURL, app, id, "127.0.0.2", 8080, fargo.UP, true)
				outAt := w.waitFor(t, regAt, "held OUT_OF_SERVICE", func(s string) bool { return s == "OUT_OF_SERVICE" })
				n, span := w.ups(regAt, outAt)
				results[i] = result{ups: n, span: span, held: outAt.Sub(regAt),
					writeFirst: strings.Contains(logs.String(), "before the server's reads showed it")}
				// Held: no consumer sees it UP again while the app starts.
				time.Sleep(2 * time.Second)
				if n, _ := w.ups(outAt, time.Now()); n > 0 {
					t.Fatalf("UP %d times after the hold showed:\n%s", n, logs)
				}

				// Polaris takes a registration as UP as the app's word:
				// the hold is dropped, and put back by a later look.
				again := time.Now()
				if err := a.register(fargo.UP); err != nil {
					t.Fatalf("registering again: %v", err)
				}
				poll.Eventually(t, visible, "the hold re-applied", func() error {
					if !strings.Contains(logs.String(), "registry hold re-applied") {
						return fmt.Errorf("not yet")
					}
					return nil
				})
				t.Logf("re-applied %v after the app registered again", time.Since(again).Round(time.Millisecond))
				w.waitFor(t, time.Now(), "out again", func(s string) bool { return s == "OUT_OF_SERVICE" })
				stopHold()
				onlineAt := time.Now()
				if err := e.Online(ctxFor(t, 5*time.Second)); err != nil {
					t.Fatalf("Online: %v", err)
				}
				w.waitFor(t, onlineAt, "UP after Online", standin.EurekaUp)
				if !strings.Contains(logs.String(), "eureka hold released") {
					t.Errorf("Online did not release a hold:\n%s", logs)
				}
			})
		}
	})
	var total int
	for i, r := range results {
		total += r.ups
		t.Logf("trial %d: consumer saw UP %d times (over %v) before the hold showed, %v after the registration; write first: %v",
			i, r.ups, r.span.Round(time.Millisecond), r.held.Round(time.Millisecond), r.writeFirst)
	}
	t.Logf("UP sightings (every 20 ms) between registration and hold, %d trials: %d in all", trials, total)
}
