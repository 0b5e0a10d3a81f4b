package eureka

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKeepContract walks Keep against Netflix Eureka's semantics (the fake),
// which Polaris cannot show: an override (an operator's, a drain's) is
// visible there as overriddenstatus, apart from the app's own status. Each
// case puts the told app's instance online, then changes what the server
// holds as the app's client or an operator would, and checks the requests
// of one look and what the server holds after it.
func TestKeepContract(t *testing.T) {
	const p = "/eureka" + testPath
	const custom = "10.1.2.3:8080"
	const pc = "/eureka/apps/ORDERS/" + custom
	upAgain := []string{"GET " + p, "PUT " + p + "/status?value=UP", "DELETE " + p + "/status?value=UP"}
	tests := []struct {
		name string
		env  map[string]string // nil: told
		mode string            // "": mark
		// registered is how the app registered before Online; nil: the
		// told registration, OUT_OF_SERVICE under the configured id.
		registered func(f *fakeEureka)
		noOnline   bool
		// then changes what the server holds after Online.
		then      func(f *fakeEureka, id string)
		wantPut   bool
		wantReqs  []string // of the look
		wantState string   // status/overridden after the look; "" not held
		wantLog   string
	}{
		{
			name:      "lease lost, registered again as told: put back",
			then:      func(f *fakeEureka, id string) { f.evict(testApp, id); f.put(testApp, id, "OUT_OF_SERVICE") },
			wantPut:   true,
			wantReqs:  upAgain,
			wantState: "UP/UNKNOWN",
			wantLog:   "registered again OUT_OF_SERVICE, as the app was told",
		},
		{
			name:      "registered again without losing its lease (status change, refresh): put back",
			then:      func(f *fakeEureka, id string) { f.put(testApp, id, "OUT_OF_SERVICE") },
			wantPut:   true,
			wantReqs:  upAgain,
			wantState: "UP/UNKNOWN",
		},
		{
			name: "an operator's override: left alone",
			then: func(f *fakeEureka, id string) {
				f.setOverride(id, "OUT_OF_SERVICE")
				f.put(testApp, id, "UP") // the next registration gets it applied
			},
			wantReqs:  []string{"GET " + p},
			wantState: "OUT_OF_SERVICE/OUT_OF_SERVICE",
			wantLog:   "by an override, not by the app's registration: left alone",
		},
		{
			name: "an operator's override, registered again as told: left alone",
			then: func(f *fakeEureka, id string) {
				f.setOverride(id, "OUT_OF_SERVICE")
				f.put(testApp, id, "OUT_OF_SERVICE")
			},
			wantReqs:  []string{"GET " + p},
			wantState: "OUT_OF_SERVICE/OUT_OF_SERVICE",
		},
		{
			name:      "DOWN by the app's own health: left alone",
			then:      func(f *fakeEureka, id string) { f.put(testApp, id, "DOWN") },
			wantReqs:  []string{"GET " + p},
			wantState: "DOWN/UNKNOWN",
		},
		{
			name:      "in rotation: nothing to do",
			then:      func(f *fakeEureka, id string) {},
			wantReqs:  []string{"GET " + p},
			wantState: "UP/UNKNOWN",
		},
		{
			name:     "not registered now (evicted, the server restarted): no error, no write",
			then:     func(f *fakeEureka, id string) { f.evict(testApp, id) },
			wantReqs: []string{"GET " + p},
			wantLog:  "instance not registered now",
		},
		{
			name: "found by address at Online: looked at and put back there",
			registered: func(f *fakeEureka) {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.registerLocked(testApp, custom, "OUT_OF_SERVICE", map[string]any{"instanceId": custom, "app": testApp, "ipAddr": "10.1.2.3", "port": 8080})
			},
			then: func(f *fakeEureka, id string) {
				f.evict(testApp, id)
				f.mu.Lock()
				defer f.mu.Unlock()
				f.registerLocked(testApp, id, "OUT_OF_SERVICE", map[string]any{"instanceId": id, "app": testApp, "ipAddr": "10.1.2.3", "port": 8080})
			},
			wantPut:   true,
			wantReqs:  []string{"GET " + pc, "PUT " + pc + "/status?value=UP", "DELETE " + pc + "/status?value=UP"},
			wantState: "UP/UNKNOWN",
		},
		{
			// Online put it UP; without Keep it stayed out for good.
			name:      "the user's variable tells it already (OUT_OF_SERVICE), registered again: put back",
			env:       map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": "out_of_service"},
			then:      func(f *fakeEureka, id string) { f.evict(testApp, id); f.put(testApp, id, "OUT_OF_SERVICE") },
			wantPut:   true,
			wantReqs:  upAgain,
			wantState: "UP/UNKNOWN",
		},
		{
			name:      "the user's variable tells it already, legacy name: put back",
			env:       map[string]string{"EUREKA_INSTANCE_INITIAL_STATUS": "OUT_OF_SERVICE"},
			then:      func(f *fakeEureka, id string) { f.evict(testApp, id); f.put(testApp, id, "OUT_OF_SERVICE") },
			wantPut:   true,
			wantReqs:  upAgain,
			wantState: "UP/UNKNOWN",
		},
		{
			name:      "not told (the user sets another initial status): no request",
			env:       map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": "STARTING"},
			then:      func(f *fakeEureka, id string) { f.put(testApp, id, "OUT_OF_SERVICE") },
			wantState: "OUT_OF_SERVICE/UNKNOWN",
		},
		{
			name:      "told, Online not done: no request",
			noOnline:  true,
			then:      func(f *fakeEureka, id string) {},
			wantState: "OUT_OF_SERVICE/UNKNOWN",
		},
		{
			name:       "register mode (never told): no request",
			mode:       "register",
			registered: func(f *fakeEureka) {},
			then:       func(f *fakeEureka, id string) { f.put(testApp, id, "OUT_OF_SERVICE") },
			wantState:  "OUT_OF_SERVICE/UNKNOWN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEureka(t, "/eureka")
			log, logs := testLogger()
			mode := tt.mode
			if mode == "" {
				mode = "mark"
			}
			e := mustNew(t, testConfig(mode, f.URL()), log)
			e.AppEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.registered != nil {
				tt.registered(f)
			} else {
				f.put(testApp, testID, "OUT_OF_SERVICE")
			}
			if !tt.noOnline {
				if err := e.Online(ctxFor(t, 2*time.Second)); err != nil {
					t.Fatalf("Online: %v", err)
				}
			}
			id := e.instanceID()
			tt.then(f, id)
			f.reset()
			put, err := e.Keep(ctxFor(t, 2*time.Second))
			if err != nil || put != tt.wantPut {
				t.Fatalf("Keep = %v, %v; want %v, nil\n%s", put, err, tt.wantPut, logs)
			}
			if got := f.requestLines(); !slices.Equal(got, tt.wantReqs) {
				t.Fatalf("Keep's requests:\n got %q\nwant %q", got, tt.wantReqs)
			}
			var state string
			if in := f.get(testApp, id); in != nil {
				state = in.Status + "/" + in.Overridden
			}
			if state != tt.wantState {
				t.Fatalf("after Keep the server holds %q, want %q", state, tt.wantState)
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("Keep did not log %q:\n%s", tt.wantLog, logs)
			}
			if tt.wantPut {
				// No override of ours is left (as after Online).
				f.mu.Lock()
				ov, left := f.overrides[id]
				f.mu.Unlock()
				if left {
					t.Errorf("an override is left after Keep: %q", ov)
				}
			}
		})
	}
}

// TestKeepAfterStop: once Offline or Close has begun, Keep sends nothing,
// whatever the server holds; a look in flight when Offline begins is cut
// short (Offline does not wait behind a hung read) and writes nothing after
// Offline's write; a failing read is an error for the Set to warn of.
func TestKeepAfterStop(t *testing.T) {
	const p = "/eureka" + testPath
	setup := func(t *testing.T) (*fakeEureka, *Eureka) {
		f := newFakeEureka(t, "/eureka")
		log, _ := testLogger()
		e := mustNew(t, testConfig("mark", f.URL()), log)
		e.AppEnv(func(string) (string, bool) { return "", false })
		f.put(testApp, testID, "OUT_OF_SERVICE")
		if err := e.Online(ctxFor(t, 2*time.Second)); err != nil {
			t.Fatalf("Online: %v", err)
		}
		return f, e
	}
	for _, step := range []string{"offline", "close"} {
		t.Run("after "+step, func(t *testing.T) {
			f, e := setup(t)
			var err error
			if step == "offline" {
				err = e.Offline(ctxFor(t, 2*time.Second))
			} else {
				err = e.Close(ctxFor(t, 2*time.Second))
			}
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			// The app registers again as told: Keep would put that back.
			f.evict(testApp, testID)
			f.mu.Lock()
			delete(f.overrides, testID)
			f.mu.Unlock()
			f.put(testApp, testID, "OUT_OF_SERVICE")
			f.reset()
			put, err := e.Keep(ctxFor(t, 2*time.Second))
			if put || err != nil || len(f.requests()) != 0 {
				t.Fatalf("Keep after %s = %v, %v, requests %q; want nothing", step, put, err, f.requestLines())
			}
		})
	}
	t.Run("in flight when offline begins", func(t *testing.T) {
		f, e := setup(t)
		f.put(testApp, testID, "OUT_OF_SERVICE") // registered again as told
		reading := make(chan struct{}, 1)
		f.hook = func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet {
				return false
			}
			// A registry that hangs on the read: only the client gives up.
			reading <- struct{}{}
			<-r.Context().Done()
			return true
		}
		f.reset()
		type result struct {
			put bool
			err error
		}
		done := make(chan result, 1)
		go func() {
			put, err := e.Keep(ctxFor(t, time.Minute))
			done <- result{put, err}
		}()
		<-reading
		start := time.Now()
		if err := e.Offline(ctxFor(t, 5*time.Second)); err != nil {
			t.Fatalf("Offline: %v", err)
		}
		took := time.Since(start)
		r := <-done
		if r.put || r.err != nil {
			t.Fatalf("Keep cut short by Offline = %v, %v; want false, nil", r.put, r.err)
		}
		want := []string{"GET " + p, "PUT " + p + "/status?value=OUT_OF_SERVICE"}
		if got := f.requestLines(); !slices.Equal(got, want) {
			t.Fatalf("requests:\n got %q\nwant %q", got, want)
		}
		// Netflix's statusUpdate leaves an instance already OUT_OF_SERVICE
		// as it is (no override).
		if in := f.get(testApp, testID); in.Status != "OUT_OF_SERVICE" {
			t.Fatalf("after Offline: %+v, want OUT_OF_SERVICE", in)
		}
		t.Logf("Offline took %v with a Keep hung on its read", took.Round(time.Millisecond))
	})
	t.Run("server error", func(t *testing.T) {
		f, e := setup(t)
		f.hook = func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		put, err := e.Keep(ctxFor(t, 2*time.Second))
		if put || err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("Keep against a 503 = %v, %v; want an error naming it", put, err)
		}
	})
	t.Run("the caller's context ends", func(t *testing.T) {
		_, e := setup(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if put, err := e.Keep(ctx); put || err == nil {
			t.Fatalf("Keep with an ended context = %v, %v; want an error", put, err)
		}
	})
}

// TestPutUpBeforeOffline: a stop that comes while Online's PUT .../status=UP
// is on its way (the server slow to apply it) must not let that write land
// after the offline step's OUT_OF_SERVICE: abandoned by the client, it is
// still applied by the server, and the draining pod would be UP again. The
// offline step waits for the write's answer; nothing of Online follows it.
func TestPutUpBeforeOffline(t *testing.T) {
	f := newFakeEureka(t, "/eureka")
	log, logs := testLogger()
	e := mustNew(t, testConfig("mark", f.URL()), log)
	e.AppEnv(func(string) (string, bool) { return "", false })
	f.put(testApp, testID, "OUT_OF_SERVICE") // the told registration
	onlineDuringSlowWrite(t, e, f, func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/status") && r.URL.Query().Get("value") == "UP"
	})
	if in := f.get(testApp, testID); in.Status != "OUT_OF_SERVICE" {
		t.Fatalf("after the offline step the server holds %s/%s: back in rotation\n%s", in.Status, in.Overridden, logs)
	}
}

// TestRegisterBeforeOffline: register mode's registration on its way (the
// server slow to apply it) when the stop comes: abandoned by the client, it
// was still applied after the offline step's deregistration, and the
// draining pod was registered UP again, with no heartbeat, until evicted.
func TestRegisterBeforeOffline(t *testing.T) {
	f := newFakeEureka(t, "/eureka")
	log, logs := testLogger()
	e := mustNew(t, testConfig("register", f.URL()), log)
	onlineDuringSlowWrite(t, e, f, func(r *http.Request) bool { return r.Method == http.MethodPost })
	if in := f.get(testApp, testID); in != nil {
		t.Fatalf("after the offline step the server holds the instance %s/%s\n%s", in.Status, in.Overridden, logs)
	}
}

// onlineDuringSlowWrite runs Online, whose write the server (f) applies
// only 500 ms after it came, whether the client waits or not; runs
// Offline while that write is on its way; and returns once every write
// has been applied. slow picks the write.
func onlineDuringSlowWrite(t *testing.T, e *Eureka, f *fakeEureka, slow func(*http.Request) bool) {
	t.Helper()
	writing := make(chan struct{})
	var once sync.Once
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if slow(r) {
			once.Do(func() { close(writing) })
			time.Sleep(500 * time.Millisecond)
		}
		return false
	}
	online := make(chan error, 1)
	go func() { online <- e.Online(ctxFor(t, 5*time.Second)) }()
	select {
	case <-writing:
	case err := <-online:
		t.Fatalf("Online returned before its write: %v", err)
	}
	if err := e.Offline(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	<-online
	time.Sleep(700 * time.Millisecond) // every write applied
}
