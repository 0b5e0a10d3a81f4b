package eureka

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hudl/fargo"

	"github.com/gracefulinit/gracefulinit/internal/registry"
	"github.com/gracefulinit/gracefulinit/internal/testkit/poll"
	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

const (
	testApp = "ORDERS"
	testID  = "pod-1:orders:8080"
	// testPath is the instance resource with the id as Eureka clients send
	// it: ':' needs no escaping in a path segment.
	testPath = "/apps/ORDERS/pod-1:orders:8080"
)

func testLogger() (*slog.Logger, *testbin.SafeBuffer) {
	buf := &testbin.SafeBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func testConfig(mode string, urls ...string) *Options {
	return &Options{
		Service:    "orders",
		IP:         "10.1.2.3",
		Port:       8080,
		Timeout:    2 * time.Second,
		URLs:       urls,
		App:        testApp,
		InstanceID: testID,
		Mode:       mode,
		Heartbeat:  30 * time.Second,
	}
}

func mustNew(t *testing.T, cfg *Options, log *slog.Logger) *Eureka {
	t.Helper()
	e, err := newEureka(*cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.stop()
		_ = e.waitHeartbeat(ctx)
	})
	return e
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		// fargo would log.Fatal (exit 1, killing PID 1) on an empty list.
		{"no service URL", func(c *Options) { c.URLs = nil }, "needs --eureka-url"},
		{"not a URL", func(c *Options) { c.URLs = []string{"eureka:8761"} }, "want a URL"},
		{"ftp scheme", func(c *Options) { c.URLs = []string{"ftp://eureka/eureka"} }, "want a URL"},
		{"no app", func(c *Options) { c.App, c.Service = "", "" }, "the app's name"},
		{"no instance id", func(c *Options) {
			c.InstanceID = ""
			c.Hostname = func() (string, error) { return "", errors.New("no hostname") }
		}, "default instance id: set --eureka-instance-id"},
		{"bad mode", func(c *Options) { c.Mode = "both" }, "mode"},
		{"register without IP", func(c *Options) { c.Mode = "register"; c.IP = "" }, "IP"},
		{"register without port", func(c *Options) { c.Mode = "register"; c.Port = 0 }, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("mark", "http://127.0.0.1:1/eureka")
			tt.mutate(cfg)
			r, err := New(*cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", r, err, tt.want)
			}
		})
	}
}

// The backend owns its defaults: the app name from the service and back,
// and Spring Cloud's instance id hostname:service:port (the configuration
// reads no host state).
func TestOptionsDefaults(t *testing.T) {
	host := func() (string, error) { return "pod-7", nil }
	tests := []struct {
		name             string
		o                Options
		app, service, id string
	}{
		{"from the service", Options{Service: "orders", Port: 8080, Hostname: host}, "ORDERS", "orders", "pod-7:orders:8080"},
		{"from the app", Options{App: "Orders", Port: 9090, Hostname: host}, "ORDERS", "orders", "pod-7:orders:9090"},
		{"explicit id", Options{Service: "orders", App: "ORD", InstanceID: "10.0.0.1:8080", Hostname: host}, "ORD", "orders", "10.0.0.1:8080"},
		{"os hostname", Options{Service: "orders", Port: 1}, "ORDERS", "orders", osHost(t) + ":orders:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.o.withDefaults()
			if got.App != tt.app || got.Service != tt.service || got.InstanceID != tt.id || got.ResolvedInstanceID() != tt.id {
				t.Fatalf("app %q service %q id %q; want %q %q %q", got.App, got.Service, got.InstanceID, tt.app, tt.service, tt.id)
			}
			if got.Mode != "mark" || got.Heartbeat != 30*time.Second || got.Timeout != 5*time.Second {
				t.Fatalf("mode %q heartbeat %v timeout %v: want the defaults", got.Mode, got.Heartbeat, got.Timeout)
			}
		})
	}
}

func osHost(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestMarkModeContract walks the mark-mode life cycle against the Netflix
// semantics: Offline puts an override, the override survives the app's
// re-registration (a JVM restarted in place), and Online removes it with
// DELETE .../status?value=UP.
func TestMarkModeContract(t *testing.T) {
	tests := []struct {
		name          string
		base          string
		trailingSlash bool
		user, pass    string
		overriddenKey string
	}{
		{name: "spring base path", base: "/eureka", overriddenKey: "overriddenStatus"},
		{name: "netflix base path", base: "/eureka/v2", overriddenKey: "overriddenstatus"},
		{name: "trailing slash", base: "/eureka", trailingSlash: true, overriddenKey: "overriddenStatus"},
		{name: "basic auth", base: "/eureka", user: "eureka-user", pass: "pa:ss@w/rd", overriddenKey: "overriddenStatus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEureka(t, tt.base)
			f.user, f.pass, f.overriddenKey = tt.user, tt.pass, tt.overriddenKey
			u := f.URL()
			if tt.trailingSlash {
				u += "/"
			}
			cfg := testConfig("mark", u)
			cfg.Username, cfg.Password = tt.user, tt.pass
			log, logs := testLogger()
			e := mustNew(t, cfg, log)
			ctx := ctxFor(t, 10*time.Second)

			// The app has not registered yet: Online must ask to be retried.
			err := e.Online(ctx)
			if err == nil || !strings.Contains(err.Error(), "not registered yet") {
				t.Fatalf("Online before the app registered = %v; want a not-registered error", err)
			}

			f.put(testApp, testID, "UP")
			if err := e.Online(ctx); err != nil {
				t.Fatalf("Online: %v", err)
			}
			if err := e.Offline(ctx); err != nil {
				t.Fatalf("Offline: %v", err)
			}
			if in := f.get(testApp, testID); in.Status != "OUT_OF_SERVICE" || in.Overridden != "OUT_OF_SERVICE" {
				t.Fatalf("after Offline: status %s overridden %s; want OUT_OF_SERVICE both", in.Status, in.Overridden)
			}
			if err := e.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			p := tt.base + testPath
			want := []string{
				"GET " + p,
				"GET " + tt.base + "/apps/" + testApp, // not there: any instance at our ip:port?
				"GET " + p,
				"PUT " + p + "/status?value=OUT_OF_SERVICE",
			}
			if got := f.requestLines(); !slices.Equal(got, want) {
				t.Fatalf("requests:\n got %q\nwant %q", got, want)
			}

			// The JVM restarts in place and registers again as UP; Eureka
			// re-applies the override, and a new supervisor repairs it.
			f.put(testApp, testID, "UP")
			if in := f.get(testApp, testID); in.Status != "OUT_OF_SERVICE" {
				t.Fatalf("fake lost the override on re-registration: %+v", in)
			}
			f.reset()
			e2 := mustNew(t, cfg, log)
			if err := e2.Online(ctx); err != nil {
				t.Fatalf("Online after restart: %v", err)
			}
			want = []string{"GET " + p, "DELETE " + p + "/status?value=UP"}
			if got := f.requestLines(); !slices.Equal(got, want) {
				t.Fatalf("repair requests:\n got %q\nwant %q", got, want)
			}
			if in := f.get(testApp, testID); in.Status != "UP" || in.Overridden != "UNKNOWN" {
				t.Fatalf("after repair: status %s overridden %s; want UP/UNKNOWN", in.Status, in.Overridden)
			}
			if !strings.Contains(logs.String(), "OUT_OF_SERVICE override cleared") {
				t.Errorf("repair not logged:\n%s", logs)
			}

			for _, r := range f.requests() {
				if tt.user == "" {
					if r.Auth != "" {
						t.Errorf("%s sent Authorization without credentials", r)
					}
					continue
				}
				want := "Basic " + base64.StdEncoding.EncodeToString([]byte(tt.user+":"+tt.pass))
				if r.Auth != want {
					t.Errorf("%s: Authorization %q, want %q", r, r.Auth, want)
				}
			}
			if tt.pass != "" && strings.Contains(logs.String(), tt.pass) {
				t.Errorf("password in logs:\n%s", logs)
			}
		})
	}
}

// An instance the server knows neither by id nor by address is not taken
// out: a WARN says what the server holds, and the error says not-found.
func TestMarkModeOfflineUnknownInstanceIsNotFound(t *testing.T) {
	tests := []struct {
		name string
		code int // what the server answers the status change
	}{
		{"netflix eureka 404", http.StatusNotFound},
		{"polaris 400", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEureka(t, "/eureka")
			f.putAt(testApp, "other:orders:8080", "10.9.9.9", map[string]any{"$": 8080, "@enabled": "true"})
			f.hook = func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPut {
					w.WriteHeader(tt.code)
					return true
				}
				return false
			}
			log, logs := testLogger()
			e := mustNew(t, testConfig("mark", f.URL()), log)
			err := e.Offline(ctxFor(t, 5*time.Second))
			if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "other:orders:8080 (10.9.9.9:8080 UP)") {
				t.Fatalf("Offline = %v, want not-found naming what the server holds", err)
			}
			want := []string{"PUT /eureka" + testPath + "/status?value=OUT_OF_SERVICE", "GET /eureka/apps/" + testApp}
			if got := f.requestLines(); !slices.Equal(got, want) {
				t.Fatalf("requests %q, want %q", got, want)
			}
			if !strings.Contains(logs.String(), `"level":"WARN","msg":"eureka instance not found: nothing was taken out of rotation"`) {
				t.Errorf("not logged at WARN:\n%s", logs)
			}
		})
	}
}

// Spring users set eureka.instance.instance-id to ${ip}:${port} or another
// form gracefulinit cannot derive: the app's instance is found by ipAddr and
// port, in every JSON and XML shape servers give the port.
func TestMarkModeFindsCustomInstanceIDByAddress(t *testing.T) {
	tests := []struct {
		name string
		port any
	}{
		{"netflix port object", map[string]any{"$": 8080, "@enabled": "true"}},
		{"port object with a string", map[string]any{"$": "8080", "@enabled": true}},
		{"bare port", 8080},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEureka(t, "/eureka")
			const custom = "10.1.2.3:8080"
			f.putAt(testApp, "other:orders:8080", "10.9.9.9", tt.port)
			f.putAt(testApp, custom, "10.1.2.3", tt.port)
			log, _ := testLogger()
			e := mustNew(t, testConfig("mark", f.URL()), log)
			ctx := ctxFor(t, 5*time.Second)
			if err := e.Online(ctx); err != nil {
				t.Fatalf("Online: %v", err)
			}
			if err := e.Offline(ctx); err != nil {
				t.Fatalf("Offline: %v", err)
			}
			if in := f.get(testApp, custom); in.Status != "OUT_OF_SERVICE" {
				t.Fatalf("after Offline: %+v, want OUT_OF_SERVICE", in)
			}
			if in := f.get(testApp, "other:orders:8080"); in.Status != "UP" {
				t.Fatalf("the other instance: %+v, want UP", in)
			}
			// A restarted supervisor finds it again and clears the override.
			e2 := mustNew(t, testConfig("mark", f.URL()), log)
			if err := e2.Online(ctx); err != nil {
				t.Fatalf("Online after restart: %v", err)
			}
			if in := f.get(testApp, custom); in.Status != "UP" || in.Overridden != "UNKNOWN" {
				t.Fatalf("after repair: %+v, want UP/UNKNOWN", in)
			}
		})
	}
}

func TestParseAppXML(t *testing.T) {
	x := `<application><name>ORDERS</name>
<instance><instanceId>a</instanceId><ipAddr>10.0.0.1</ipAddr><port enabled="true">8080</port><status>UP</status></instance>
<instance><instanceId>b</instanceId><ipAddr>10.0.0.2</ipAddr><port enabled="true"> 9090 </port><status>DOWN</status></instance>
</application>`
	got, err := parseApp([]byte(x))
	want := []appInstance{{"a", "10.0.0.1", 8080, "UP"}, {"b", "10.0.0.2", 9090, "DOWN"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("parseApp = %+v, %v; want %+v", got, err, want)
	}
	one := `{"application":{"name":"ORDERS","instance":{"instanceId":"a","ipAddr":"10.0.0.1","port":{"$":8080},"status":"UP"}}}`
	if got, err := parseApp([]byte(one)); err != nil || !slices.Equal(got, want[:1]) {
		t.Fatalf("single instance object: %+v, %v", got, err)
	}
}

func TestMarkModeCloseDeregistersOnlyWhenAsked(t *testing.T) {
	for _, dereg := range []bool{false, true} {
		name := map[bool]string{false: "default keeps the instance", true: "deregister on exit"}[dereg]
		t.Run(name, func(t *testing.T) {
			f := newFakeEureka(t, "/eureka")
			f.put(testApp, testID, "UP")
			cfg := testConfig("mark", f.URL())
			cfg.DeregisterOnExit = dereg
			e := mustNew(t, cfg, nil)
			ctx := ctxFor(t, 5*time.Second)
			if err := e.Offline(ctx); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
			want := []string{"PUT /eureka" + testPath + "/status?value=OUT_OF_SERVICE"}
			if dereg {
				want = append(want, "DELETE /eureka"+testPath)
			}
			if got := f.requestLines(); !slices.Equal(got, want) {
				t.Fatalf("requests:\n got %q\nwant %q", got, want)
			}
			if gone := f.get(testApp, testID) == nil; gone != dereg {
				t.Fatalf("instance gone = %v, want %v", gone, dereg)
			}
			// A second Close (and an unknown instance) is still fine.
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRegisterModeContract(t *testing.T) {
	f := newFakeEureka(t, "/eureka/v2")
	cfg := testConfig("register", f.URL())
	cfg.Heartbeat = 100 * time.Millisecond
	cfg.Metadata = map[string]string{"zone": "a", "version": "1.2"}
	log, logs := testLogger()
	e := mustNew(t, cfg, log)
	ctx := ctxFor(t, 20*time.Second)

	if err := e.Online(ctx); err != nil {
		t.Fatalf("Online: %v", err)
	}
	in := f.get(testApp, testID)
	if in == nil || in.Status != "UP" {
		t.Fatalf("not registered UP: %+v", in)
	}
	doc, _ := json.Marshal(in.Doc)
	var got struct {
		InstanceID, HostName, App, IPAddr, VipAddress, Status string
		Port                                                  struct {
			Number  string `json:"$"`
			Enabled string `json:"@enabled"`
		}
		DataCenterInfo struct {
			Name  string
			Class string `json:"@class"`
		}
		LeaseInfo struct{ RenewalIntervalInSecs, DurationInSecs int }
		Metadata  map[string]string
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatalf("registered document %s: %v", doc, err)
	}
	if got.InstanceID != testID || got.App != testApp || got.IPAddr != "10.1.2.3" || got.HostName != "10.1.2.3" ||
		got.VipAddress != "orders" || got.Status != "UP" || got.Port.Number != "8080" || got.Port.Enabled != "true" ||
		got.DataCenterInfo.Name != "MyOwn" || got.DataCenterInfo.Class != "com.netflix.appinfo.MyDataCenterInfo" ||
		got.LeaseInfo.RenewalIntervalInSecs != 1 || got.LeaseInfo.DurationInSecs != 90 ||
		got.Metadata["zone"] != "a" || got.Metadata["version"] != "1.2" {
		t.Fatalf("registered document does not match the config: %s", doc)
	}

	// Heartbeats arrive; an evicted instance is registered again.
	waitFor(t, 5*time.Second, "two heartbeats", func() bool { in := f.get(testApp, testID); return in != nil && in.Renewals >= 2 })
	f.evict(testApp, testID)
	waitFor(t, 5*time.Second, "re-registration after 404", func() bool { return f.get(testApp, testID) != nil })
	if !strings.Contains(logs.String(), "registering it again") {
		t.Errorf("re-registration not logged:\n%s", logs)
	}

	if err := e.Offline(ctx); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	if f.get(testApp, testID) != nil {
		t.Fatal("instance still registered after Offline")
	}
	n := len(f.requests())
	time.Sleep(5 * cfg.Heartbeat)
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if after := f.requestLines()[n:]; len(after) != 0 {
		t.Fatalf("requests after Offline: %q", after)
	}
	if err := e.Online(ctx); !errors.Is(err, errStopping) {
		t.Fatalf("Online after Offline = %v, want errStopping", err)
	}

	allowed := []string{
		"POST /eureka/v2/apps/ORDERS", // register, and again after eviction
		"GET /eureka/v2" + testPath,   // the override check
		"PUT /eureka/v2" + testPath,   // heartbeats
		"DELETE /eureka/v2" + testPath,
	}
	for _, l := range f.requestLines() {
		if !slices.Contains(allowed, l) {
			t.Errorf("unexpected request %s", l)
		}
	}
}

// In register mode a re-registration still carries the override of an
// earlier drain (the server re-applies it), so Online clears it too.
func TestRegisterModeClearsReappliedOverride(t *testing.T) {
	f := newFakeEureka(t, "/eureka")
	f.setOverride(testID, "OUT_OF_SERVICE")
	e := mustNew(t, testConfig("register", f.URL()), nil)
	ctx := ctxFor(t, 5*time.Second)
	if err := e.Online(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /eureka/apps/ORDERS", "GET /eureka" + testPath, "DELETE /eureka" + testPath + "/status?value=UP"}
	if got := f.requestLines(); !slices.Equal(got, want) {
		t.Fatalf("requests:\n got %q\nwant %q", got, want)
	}
	if in := f.get(testApp, testID); in.Status != "UP" {
		t.Fatalf("status %s, want UP", in.Status)
	}
	// Close without Offline (the app died on its own) still deregisters.
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if f.get(testApp, testID) != nil {
		t.Fatal("Close left the instance registered")
	}
}

func TestServerErrorsAreBoundedAndFailedOver(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	hanging := func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return true
	}
	failing := func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "boom", http.StatusServiceUnavailable)
		return true
	}
	// A listener that is closed again: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/eureka"
	ln.Close()

	tests := []struct {
		name     string
		first    func(http.ResponseWriter, *http.Request) bool // nil: a healthy server
		second   bool                                          // a healthy second server
		refused  bool                                          // first URL refuses connections
		deadline time.Duration
		wantErr  string
		maxTook  time.Duration
	}{
		{name: "503 only", first: failing, deadline: 3 * time.Second, wantErr: "HTTP 503", maxTook: 2 * time.Second},
		{name: "hanging only", first: hanging, deadline: 500 * time.Millisecond, wantErr: "deadline exceeded", maxTook: 2 * time.Second},
		{name: "503 then healthy", first: failing, second: true, deadline: 3 * time.Second, maxTook: 2 * time.Second},
		// The hanging server gets half of the deadline, the second the rest.
		{name: "hanging then healthy", first: hanging, second: true, deadline: 2 * time.Second, maxTook: 1900 * time.Millisecond},
		{name: "refused then healthy", refused: true, second: true, deadline: 3 * time.Second, maxTook: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var urls []string
			if tt.refused {
				urls = append(urls, refused)
			} else {
				bad := newFakeEureka(t, "/eureka")
				bad.hook = tt.first
				urls = append(urls, bad.URL())
			}
			var good *fakeEureka
			if tt.second {
				good = newFakeEureka(t, "/eureka")
				good.put(testApp, testID, "UP")
				urls = append(urls, good.URL())
			}
			log, logs := testLogger()
			e := mustNew(t, testConfig("mark", urls...), log)
			start := time.Now()
			err := e.Offline(ctxFor(t, tt.deadline))
			took := time.Since(start)
			if took > tt.maxTook {
				t.Errorf("Offline took %v, want at most %v", took, tt.maxTook)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Offline: %v", err)
				}
				if in := good.get(testApp, testID); in.Status != "OUT_OF_SERVICE" {
					t.Fatalf("second server not updated: %+v", in)
				}
				// The server that answered is tried first next time.
				good.reset()
				if err := e.Close(ctxFor(t, time.Second)); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Offline = %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(logs.String(), "boom") {
				t.Errorf("response body leaked into logs")
			}
		})
	}
}

func TestFailoverSticksToTheServerThatAnswered(t *testing.T) {
	bad := newFakeEureka(t, "/eureka")
	bad.hook = func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusInternalServerError)
		return true
	}
	good := newFakeEureka(t, "/eureka")
	good.put(testApp, testID, "UP")
	e := mustNew(t, testConfig("mark", bad.URL(), good.URL()), nil)
	ctx := ctxFor(t, 5*time.Second)
	for i := 0; i < 3; i++ {
		if err := e.Online(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(bad.requests()); n != 1 {
		t.Fatalf("failed server got %d requests, want 1 (then the good one sticks)", n)
	}
	if n := len(good.requests()); n != 3 {
		t.Fatalf("good server got %d requests, want 3", n)
	}
}

// Offline must not race a slow Online: the OUT_OF_SERVICE write has to be
// the last one the server sees.
func TestOfflineCutsShortAnOnlineInFlight(t *testing.T) {
	f := newFakeEureka(t, "/eureka")
	f.put(testApp, testID, "UP")
	f.setOverride(testID, "OUT_OF_SERVICE")
	f.put(testApp, testID, "UP")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	entered := make(chan struct{}, 1)
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet {
			return false
		}
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}
	e := mustNew(t, testConfig("mark", f.URL()), nil)
	onlineErr := make(chan error, 1)
	go func() { onlineErr <- e.Online(ctxFor(t, time.Minute)) }()
	<-entered
	start := time.Now()
	if err := e.Offline(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Offline waited %v for the Online in flight", took)
	}
	if err := <-onlineErr; err == nil {
		t.Fatal("Online in flight succeeded after Offline began")
	}
	lines := f.requestLines()
	if last := lines[len(lines)-1]; last != "PUT /eureka"+testPath+"/status?value=OUT_OF_SERVICE" {
		t.Fatalf("last request %q; all: %q", last, lines)
	}
	if err := e.Online(ctxFor(t, time.Second)); !errors.Is(err, errStopping) {
		t.Fatalf("Online after Offline = %v, want errStopping", err)
	}
}

// Credentials reach the server only as an Authorization header: never in a
// URL, a log record (ours or fargo's) or an error, and nothing reaches
// stderr from fargo.
func TestCredentialsNeverLeak(t *testing.T) {
	const user, secret = "eureka-admin", "s3cr3t-Pa55"
	f := newFakeEureka(t, "/eureka")
	f.user, f.pass = user, secret
	f.put(testApp, testID, "UP")
	down := newFakeEureka(t, "/eureka")
	down.hook = func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	}
	withCreds := func(u string) string { return strings.Replace(u, "http://", "http://"+user+":"+secret+"@", 1) }

	log, logs := testLogger()
	// Userinfo in the URLs, as a caller bypassing config.Parse might pass.
	cfg := testConfig("mark", withCreds(down.URL()), withCreds(f.URL()))
	e := mustNew(t, cfg, log)
	ctx := ctxFor(t, 10*time.Second)

	var errs []error
	errs = append(errs, e.Online(ctx), e.Offline(ctx))
	// Wrong password: 401 from the server.
	cfgBad := testConfig("mark", f.URL())
	cfgBad.Username, cfgBad.Password = user, "wrong-"+secret
	bad := mustNew(t, cfgBad, log)
	errs = append(errs, bad.Offline(ctx))
	// Every server down.
	cfgDown := testConfig("mark", withCreds(down.URL()))
	errs = append(errs, mustNew(t, cfgDown, log).Offline(ctx))

	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("Online, Offline with credentials: %v, %v", errs[0], errs[1])
	}
	if errs[2] == nil || !strings.Contains(errs[2].Error(), "401") {
		t.Fatalf("wrong password: %v, want a 401 error", errs[2])
	}
	if errs[3] == nil {
		t.Fatal("all servers down: no error")
	}
	for _, r := range f.requests() {
		if strings.Contains(r.Path+r.Query, secret) {
			t.Errorf("secret in request line %s", r)
		}
	}

	// fargo itself, handed a URL with credentials, logs it at DEBUG with
	// userinfo: that must come out redacted in our log and not on stderr.
	stderr := captureStderr(t, func() {
		conn := fargo.NewConn(withCreds(f.URL()))
		_, _ = conn.GetApp(testApp) // the answer does not matter, its logging does
	})
	out := logs.String()
	if !strings.Contains(out, `"module":"fargo"`) {
		t.Errorf("fargo's records were not routed into slog:\n%s", out)
	}
	if !strings.Contains(out, "xxxxx@") {
		t.Errorf("fargo's URL with userinfo not seen redacted in:\n%s", out)
	}
	for _, where := range []struct{ name, text string }{{"log", out}, {"stderr", stderr}} {
		if strings.Contains(where.text, secret) {
			t.Errorf("secret in %s:\n%s", where.name, where.text)
		}
	}
	if strings.TrimSpace(stderr) != "" {
		t.Errorf("fargo wrote to stderr: %q", stderr)
	}
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("secret in error %q", err)
		}
	}
}

// captureStderr runs fn with file descriptor 2 redirected to a file, which
// catches writes by any package holding its own *os.File for stderr.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Dup3(int(tmp.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			_ = syscall.Dup3(saved, 2, 0)
			_ = syscall.Close(saved)
		}()
		fn()
	}()
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseInstance(t *testing.T) {
	tests := []struct {
		name, body         string
		status, overridden string
	}{
		{"json eureka 1.9+", `{"instance":{"instanceId":"a","status":"OUT_OF_SERVICE","overriddenStatus":"OUT_OF_SERVICE","port":{"$":8080,"@enabled":"true"}}}`, "OUT_OF_SERVICE", "OUT_OF_SERVICE"},
		{"json legacy", `{"instance":{"instanceId":"a","status":"UP","overriddenstatus":"UNKNOWN"}}`, "UP", "UNKNOWN"},
		{"xml legacy", `<instance><instanceId>a</instanceId><status>UP</status><overriddenstatus>OUT_OF_SERVICE</overriddenstatus></instance>`, "UP", "OUT_OF_SERVICE"},
		{"xml polaris", `<?xml version="1.0"?><instance><status>OUT_OF_SERVICE</status><overriddenStatus>UNKNOWN</overriddenStatus></instance>`, "OUT_OF_SERVICE", "UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInstance([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.status || got.OverriddenStatus != tt.overridden {
				t.Fatalf("got %+v, want status %s overridden %s", got, tt.status, tt.overridden)
			}
		})
	}
	for _, bad := range []string{``, `{}`, `{"instance":`, `<instance`} {
		if _, err := parseInstance([]byte(bad)); err == nil {
			t.Errorf("parseInstance(%q) succeeded", bad)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll.Within(context.Background(), d, 20*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
