package eureka

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
)

// TestAppEnv: mark mode tells the app to register OUT_OF_SERVICE unless its
// environment sets the initial status (either spelling); register mode
// tells nothing (gracefulinit registers the instance itself).
func TestAppEnv(t *testing.T) {
	tests := []struct {
		name          string
		mode          string
		env           map[string]string
		want          []string
		told, ownStat bool
	}{
		{"mark", "mark", nil, []string{"EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE"}, true, false},
		{"mark, other variables", "mark", map[string]string{"EUREKA_INSTANCE_HOSTNAME": "pod-1", "EUREKA_CLIENT_ENABLED": "true"},
			[]string{"EUREKA_INSTANCE_INITIALSTATUS=OUT_OF_SERVICE"}, true, false},
		{"user's status OUT_OF_SERVICE: told already", "mark", map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": "OUT_OF_SERVICE"}, nil, true, true},
		{"user's status OUT_OF_SERVICE, legacy name: told already", "mark", map[string]string{"EUREKA_INSTANCE_INITIAL_STATUS": " out_of_service "}, nil, true, true},
		{"user's status DOWN", "mark", map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": "DOWN"}, nil, false, true},
		{"user's status, legacy name", "mark", map[string]string{"EUREKA_INSTANCE_INITIAL_STATUS": "STARTING"}, nil, false, true},
		{"user's status UP", "mark", map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": " up "}, nil, false, false},
		{"user's status, empty", "mark", map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": ""}, nil, false, true},
		{"register mode", "register", nil, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.mode, "http://127.0.0.1:1/eureka")
			log, logs := testLogger()
			e := mustNew(t, cfg, log)
			got := e.AppEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if !slices.Equal(got, tt.want) {
				t.Fatalf("AppEnv = %q, want %q", got, tt.want)
			}
			if e.told != tt.told || e.ownStatus != tt.ownStat {
				t.Fatalf("told %v ownStatus %v, want %v %v", e.told, e.ownStatus, tt.told, tt.ownStat)
			}
			if tt.mode == "mark" && tt.want == nil && !tt.told && !strings.Contains(logs.String(), "not telling it to register out of rotation") {
				t.Errorf("leaving the user's variable is not logged:\n%s", logs)
			}
		})
	}
}

// TestHoldContract walks the hold against Netflix Eureka's semantics (the
// fake): which requests each look sends and what Online does after it.
// Polaris cannot show these: its instance GET reads a cache (Netflix reads
// the registry), it has no override (overriddenStatus is always UNKNOWN),
// and its DELETE .../status always sets UP, where Netflix's changes the
// status only when it removes an override.
func TestHoldContract(t *testing.T) {
	const p = "/eureka" + testPath
	const apps = "/eureka/apps/" + testApp
	const custom = "10.1.2.3:8080"
	tests := []struct {
		name string
		env  map[string]string // nil: told
		// setup registers what the app (and an earlier drain) left.
		setup      func(f *fakeEureka)
		wantHold   []registry.HoldState
		wantLooks  []string // the requests of the looks
		wantOnline []string
		wantLog    string
	}{
		{
			name:       "told: registered OUT_OF_SERVICE, no override",
			setup:      func(f *fakeEureka) { f.put(testApp, testID, "OUT_OF_SERVICE") },
			wantHold:   []registry.HoldState{registry.HoldRegisteredOut, registry.HoldKept},
			wantLooks:  []string{"GET " + p, "GET " + p},
			wantOnline: []string{"GET " + p, "PUT " + p + "/status?value=UP", "DELETE " + p + "/status?value=UP"},
			wantLog:    "eureka hold released",
		},
		{
			name: "told: an earlier drain's override is not the told registration",
			setup: func(f *fakeEureka) {
				f.setOverride(testID, "OUT_OF_SERVICE")
				f.put(testApp, testID, "OUT_OF_SERVICE")
			},
			wantHold:   []registry.HoldState{registry.HoldKept, registry.HoldKept},
			wantLooks:  []string{"GET " + p, "GET " + p},
			wantOnline: []string{"GET " + p, "DELETE " + p + "/status?value=UP"},
			wantLog:    "probably left by an earlier drain",
		},
		{
			name:       "told, registers UP anyway (a plain client): held by the override",
			setup:      func(f *fakeEureka) { f.put(testApp, testID, "UP") },
			wantHold:   []registry.HoldState{registry.HoldApplied, registry.HoldKept},
			wantLooks:  []string{"GET " + p, "PUT " + p + "/status?value=OUT_OF_SERVICE", "GET " + p},
			wantOnline: []string{"GET " + p, "DELETE " + p + "/status?value=UP"},
			wantLog:    "eureka hold released",
		},
		{
			name:     "not registered yet: the write first, then by address",
			setup:    func(f *fakeEureka) {},
			wantHold: []registry.HoldState{registry.HoldAbsent, registry.HoldAbsent},
			wantLooks: []string{"GET " + p, "PUT " + p + "/status?value=OUT_OF_SERVICE", "GET " + apps,
				"GET " + p, "PUT " + p + "/status?value=OUT_OF_SERVICE", "GET " + apps},
		},
		{
			name:     "the user's initial status: no write first",
			env:      map[string]string{"EUREKA_INSTANCE_INITIALSTATUS": "OUT_OF_SERVICE"},
			setup:    func(f *fakeEureka) {},
			wantHold: []registry.HoldState{registry.HoldAbsent, registry.HoldAbsent},
			wantLooks: []string{"GET " + p, "GET " + apps,
				"GET " + p, "GET " + apps},
		},
		{
			name:     "registered by another id: found by address, then read and written there only",
			setup:    func(f *fakeEureka) { f.putAt(testApp, custom, "10.1.2.3", 8080) },
			wantHold: []registry.HoldState{registry.HoldApplied, registry.HoldKept},
			wantLooks: []string{"GET " + p, "PUT " + p + "/status?value=OUT_OF_SERVICE", "GET " + apps,
				"GET /eureka/apps/ORDERS/" + custom, "PUT /eureka/apps/ORDERS/" + custom + "/status?value=OUT_OF_SERVICE",
				"GET /eureka/apps/ORDERS/" + custom},
			wantOnline: []string{"GET /eureka/apps/ORDERS/" + custom, "DELETE /eureka/apps/ORDERS/" + custom + "/status?value=UP"},
			wantLog:    "eureka hold released",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEureka(t, "/eureka")
			log, logs := testLogger()
			e := mustNew(t, testConfig("mark", f.URL()), log)
			e.AppEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			tt.setup(f)
			f.reset()
			for i, want := range tt.wantHold {
				st, err := e.Hold(ctxFor(t, 2*time.Second))
				if err != nil || st != want {
					t.Fatalf("look %d: Hold = %v, %v; want %v", i+1, st, err, want)
				}
			}
			if got := f.requestLines(); !slices.Equal(got, tt.wantLooks) {
				t.Fatalf("looks:\n got %q\nwant %q", got, tt.wantLooks)
			}
			if tt.wantOnline == nil {
				return
			}
			f.reset()
			if err := e.Online(ctxFor(t, 2*time.Second)); err != nil {
				t.Fatalf("Online: %v", err)
			}
			if got := f.requestLines(); !slices.Equal(got, tt.wantOnline) {
				t.Fatalf("Online:\n got %q\nwant %q", got, tt.wantOnline)
			}
			id := e.instanceID()
			if in := f.get(testApp, id); in == nil || in.Status != "UP" || in.Overridden != "UNKNOWN" {
				t.Fatalf("after Online: %+v, want UP with no override", in)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("Online did not log %q:\n%s", tt.wantLog, logs)
			}
			// No override of ours is left: a JVM restarted in place
			// with this id registers as it is told, not UP by it.
			f.mu.Lock()
			ov, left := f.overrides[id]
			f.mu.Unlock()
			if left {
				t.Errorf("an override is left after Online: %q", ov)
			}
		})
	}
}
