package nacos

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/redact"
	"github.com/gracefulinit/gracefulinit/internal/registry"
)

const testPassword = "hunter2-pa55"

func contractConfig(addrs ...string) *Options {
	return &Options{
		Timeout:   2 * time.Second,
		Service:   "svc",
		IP:        "10.1.2.3",
		Port:      8080,
		Addrs:     addrs,
		Namespace: "public",
		Group:     "DEFAULT_GROUP",
		Cluster:   "DEFAULT",
		Offline:   "weight",
		Mode:      "mark",
		Weight:    2,
	}
}

func newContract(t *testing.T, cfg *Options) (registry.Registry, *logSink) {
	t.Helper()
	sink := newLogSink(t)
	r, err := New(*cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	return r, sink
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// route is "METHOD path" of a request, for sequence checks.
func routes(reqs []fakeReq) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

func TestContractDialects(t *testing.T) {
	type want struct {
		// Requests of a first Offline, and of a second one.
		first, second []string
		// Parameters every write must carry, beyond ip and port.
		writeParams map[string]string
		// Offline leaves the instance out of every read (Polaris's list
		// hides disabled instances, and there is no detail read): Online
		// cannot see it, and says so after hiddenAfter. Polaris resets
		// enabled when the app registers again.
		hidden bool
	}
	v1 := func(enabled string) map[string]string {
		return map[string]string{"namespaceId": "public", "serviceName": "DEFAULT_GROUP@@svc",
			"clusterName": "DEFAULT", "ephemeral": "true", "weight": "0", "enabled": enabled}
	}
	v3 := func(enabled string) map[string]string {
		return map[string]string{"namespaceId": "public", "serviceName": "DEFAULT_GROUP@@svc",
			"cluster": "DEFAULT", "weight": "0", "enabled": enabled}
	}
	cases := []struct {
		dialect, offline string
		want
	}{
		{"nacos2", "weight", want{
			first:       []string{"GET /nacos/v1/ns/instance", "PATCH /nacos/v1/ns/instance"},
			second:      []string{"GET /nacos/v1/ns/instance"},
			writeParams: v1("true"),
		}},
		{"nacos2", "both", want{
			first: []string{"GET /nacos/v1/ns/instance", "PATCH /nacos/v1/ns/instance"},
			// The detail read cannot show enabled=false: write again.
			second:      []string{"GET /nacos/v1/ns/instance", "PATCH /nacos/v1/ns/instance"},
			writeParams: v1("false"),
		}},
		{"polaris", "weight", want{
			// A server without the detail read has no PATCH either: the
			// write goes straight to PUT, saving a round trip at shutdown.
			first: []string{"GET /nacos/v1/ns/instance", "GET /nacos/v1/ns/instance/list",
				"PUT /nacos/v1/ns/instance"},
			second:      []string{"GET /nacos/v1/ns/instance/list"},
			writeParams: v1("true"),
		}},
		{"polaris", "both", want{
			first: []string{"GET /nacos/v1/ns/instance", "GET /nacos/v1/ns/instance/list",
				"PUT /nacos/v1/ns/instance"},
			second:      []string{"GET /nacos/v1/ns/instance/list"},
			writeParams: v1("false"),
			hidden:      true,
		}},
		{"nacos3", "weight", want{
			first: []string{"GET /nacos/v1/ns/instance", "GET /nacos/v3/admin/ns/instance",
				"PUT /nacos/v3/admin/ns/instance/partial"},
			second:      []string{"GET /nacos/v3/admin/ns/instance"},
			writeParams: v3("true"),
		}},
		{"nacos3", "both", want{
			first: []string{"GET /nacos/v1/ns/instance", "GET /nacos/v3/admin/ns/instance",
				"PUT /nacos/v3/admin/ns/instance/partial"},
			second:      []string{"GET /nacos/v3/admin/ns/instance"},
			writeParams: v3("false"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.dialect+"/"+tc.offline, func(t *testing.T) {
			f := newFake(t, tc.dialect)
			cfg := contractConfig(f.srv.URL)
			cfg.Offline = tc.offline
			r, _ := newContract(t, cfg)
			clock := time.Now()
			r.(*mark).now = func() time.Time { return clock }
			ctx := ctxFor(t, 5*time.Second)

			if err := r.Offline(ctx); err != nil {
				t.Fatalf("Offline: %v", err)
			}
			if got := routes(f.requests()); strings.Join(got, ",") != strings.Join(tc.first, ",") {
				t.Fatalf("requests:\n got %q\nwant %q", got, tc.first)
			}
			_, weight, enabled, md := f.state()
			if weight != 0 || enabled != (tc.offline == "weight") || md["k"] != "v" {
				t.Fatalf("after Offline: weight %v enabled %v metadata %v", weight, enabled, md)
			}
			w := f.writes()
			last := w[len(w)-1]
			for k, v := range tc.writeParams {
				if got := last.query.Get(k); got != v {
					t.Errorf("write %s %s: %s=%q, want %q", last.method, last.path, k, got, v)
				}
			}
			if last.query.Get("ip") != "10.1.2.3" || last.query.Get("port") != "8080" {
				t.Errorf("write names %s:%s", last.query.Get("ip"), last.query.Get("port"))
			}
			if !strings.HasPrefix(last.contentType, "application/x-www-form-urlencoded") {
				t.Errorf("write Content-Type %q", last.contentType)
			}
			// A partial update resets what it does not carry, a PUT
			// replaces metadata: the current metadata always goes back.
			var sent map[string]string
			if err := json.Unmarshal([]byte(last.query.Get("metadata")), &sent); err != nil || sent["k"] != "v" {
				t.Errorf("%s metadata %q", last.method, last.query.Get("metadata"))
			}

			n := len(f.requests())
			if err := r.Offline(ctx); err != nil {
				t.Fatalf("second Offline: %v", err)
			}
			if got := routes(f.requests()[n:]); strings.Join(got, ",") != strings.Join(tc.second, ",") {
				t.Fatalf("second Offline requests:\n got %q\nwant %q", got, tc.second)
			}

			// The restart trap: Online puts the configured weight back,
			// and enabled where a read can show it.
			if tc.hidden {
				n = len(f.writes())
				for _, wait := range []time.Duration{0, hiddenAfter} {
					clock = clock.Add(wait)
					err := r.Online(ctx)
					if err == nil || len(f.writes()) != n {
						t.Fatalf("Online of a hidden instance: %v, writes %q; want an error and no write", err, routes(f.writes()[n:]))
					}
					if hint := strings.Contains(err.Error(), "cannot show a disabled instance"); hint != (wait > 0) {
						t.Fatalf("Online after %v out of sight: %v", wait, err)
					}
				}
				// The app registers again: Polaris resets enabled, and
				// the weight-0 override stays, as on Nacos.
				f.set(true, 0, true)
			}
			if err := r.Online(ctx); err != nil {
				t.Fatalf("Online: %v", err)
			}
			if _, weight, enabled, _ = f.state(); weight != 2 || !enabled {
				t.Fatalf("after Online: weight %v enabled %v", weight, enabled)
			}
			n = len(f.writes())
			if err := r.Online(ctx); err != nil {
				t.Fatalf("second Online: %v", err)
			}
			if extra := len(f.writes()) - n; extra > 0 && !(tc.dialect == "nacos2" && tc.offline == "both") {
				// Only the 1.x/2.x detail read leaves enabled unknown,
				// so only there Online asserts it each time.
				t.Fatalf("Online of an instance in rotation wrote: %q", routes(f.writes()[n:]))
			}

			// Not registered: Offline says not-found (once reads have had
			// time to show Online's write), Online a retryable error.
			f.set(false, 1, true)
			clock = clock.Add(readLag)
			n = len(f.writes())
			err := r.Offline(ctx)
			if !errors.Is(err, registry.ErrNotFound) || !strings.Contains(err.Error(), "10.1.2.4:8080:DEFAULT") {
				t.Fatalf("Offline of an unregistered instance: %v, want not-found naming what the server holds", err)
			}
			if len(f.writes()) != n {
				t.Fatalf("Offline wrote for an unregistered instance: %q", routes(f.writes()[n:]))
			}
			n = len(f.writes())
			if err := r.Online(ctx); err == nil || !strings.Contains(err.Error(), "not registered") {
				t.Fatalf("Online of an unregistered instance: %v", err)
			}
			if len(f.writes()) != n {
				t.Fatalf("Online wrote for an unregistered instance: %q", routes(f.writes()[n:]))
			}
		})
	}
}

// Where the app registered decides where gracefulinit looks: an instance
// registered without a cluster name (Polaris keeps ""), or in a cluster
// --nacos-cluster does not name, is found by ip and port and written with
// the cluster the server holds; a configured non-default cluster must match.
func TestContractClusters(t *testing.T) {
	cases := []struct {
		name             string
		dialect          string
		held, configured string // cluster held by the server, --nacos-cluster
		found            bool
		wantWriteCluster string // cluster parameter of the write, when found
	}{
		{"polaris/no cluster name", "polaris", "", "", true, ""},
		{"polaris/no cluster name, DEFAULT configured", "polaris", "", "DEFAULT", true, ""},
		{"polaris/DEFAULT", "polaris", "DEFAULT", "", true, "DEFAULT"},
		{"polaris/other cluster, not configured", "polaris", "BJ", "", true, "BJ"},
		{"polaris/other cluster configured", "polaris", "BJ", "BJ", true, "BJ"},
		{"polaris/wrong cluster configured", "polaris", "BJ", "SH", false, ""},
		{"nacos2/DEFAULT", "nacos2", "DEFAULT", "", true, "DEFAULT"},
		{"nacos2/other cluster, not configured", "nacos2", "BJ", "", true, "BJ"},
		{"nacos2/other cluster configured", "nacos2", "BJ", "BJ", true, "BJ"},
		{"nacos2/wrong cluster configured", "nacos2", "BJ", "SH", false, ""},
		{"nacos3/DEFAULT", "nacos3", "DEFAULT", "", true, "DEFAULT"},
		{"nacos3/other cluster, not configured", "nacos3", "BJ", "", true, "BJ"},
		{"nacos3/other cluster configured", "nacos3", "BJ", "BJ", true, "BJ"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.dialect)
			f.cluster = tc.held
			cfg := contractConfig(f.srv.URL)
			cfg.Cluster = tc.configured
			cfg.Offline = "both"
			r, sink := newContract(t, cfg)
			err := r.Offline(ctxFor(t, 5*time.Second))
			for _, q := range f.requests() {
				if q.path == "/nacos/v1/ns/instance/list" && q.query.Has("clusters") {
					t.Errorf("list read filtered by clusters=%q on the server", q.query.Get("clusters"))
				}
			}
			if !tc.found {
				if !errors.Is(err, registry.ErrNotFound) {
					t.Fatalf("Offline: %v, want not-found", err)
				}
				if !strings.Contains(sink.String(), "server_holds=\"10.1.2.3:8080:"+tc.held) {
					t.Fatalf("the not-found warning does not say what the server holds:\n%s", sink.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Offline: %v", err)
			}
			if _, weight, enabled, _ := f.state(); weight != 0 || enabled {
				t.Fatalf("after Offline: weight %v enabled %v", weight, enabled)
			}
			w := f.writes()
			last := w[len(w)-1]
			got := last.query.Get("clusterName")
			if tc.dialect == "nacos3" {
				got = last.query.Get("cluster")
			}
			if got != tc.wantWriteCluster {
				t.Fatalf("write cluster %q, want %q", got, tc.wantWriteCluster)
			}
		})
	}
}

func TestContractDisable(t *testing.T) {
	f := newFake(t, "nacos2")
	cfg := contractConfig(f.srv.URL)
	cfg.Offline = "disable"
	r, _ := newContract(t, cfg)
	ctx := ctxFor(t, 5*time.Second)
	if err := r.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	w := f.writes()
	if len(w) != 1 || w[0].method != http.MethodPatch || w[0].query.Get("enabled") != "false" || w[0].query.Get("weight") != "1" {
		t.Fatalf("disable wrote %+v", w)
	}
	// The 1.x/2.x detail read cannot show enabled=false: Online asserts it.
	if err := r.Online(ctx); err != nil {
		t.Fatal(err)
	}
	if _, weight, enabled, _ := f.state(); weight != 1 || !enabled {
		t.Fatalf("after Online: weight %v enabled %v", weight, enabled)
	}
}

func TestContractAuth(t *testing.T) {
	f := newFake(t, "nacos2")
	f.user, f.pass, f.ttl = "gi", testPassword, 18000
	cfg := contractConfig(f.srv.URL)
	cfg.Username, cfg.Password = "gi", testPassword
	r, sink := newContract(t, cfg)
	ctx := ctxFor(t, 10*time.Second)

	// No login until a call needs one; then one login for many calls.
	if len(f.requests()) != 0 {
		t.Fatal("New talked to the server")
	}
	for i := 0; i < 3; i++ {
		if err := r.Offline(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Online(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if f.logins != 1 {
		t.Fatalf("%d logins for 6 calls, want 1 (token reuse)", f.logins)
	}
	for _, q := range f.requests() {
		if strings.Contains(q.path, "/auth/") {
			if q.query.Get("password") != "" || q.form.Get("password") != testPassword || q.form.Get("username") != "gi" {
				t.Fatalf("login must post the credentials in the body: query %v", q.query)
			}
			continue
		}
		if q.query.Get("accessToken") != "tok-1-s3cr3t" {
			t.Fatalf("%s %s without the token", q.method, q.path)
		}
	}

	// The server forgets the token (restart with a new secret): 403, then
	// one login and a retry.
	f.mu.Lock()
	f.token = "rotated"
	f.mu.Unlock()
	if err := r.Offline(ctx); err != nil {
		t.Fatalf("Offline after token rotation: %v", err)
	}
	if f.logins != 2 {
		t.Fatalf("logins %d after a 403, want 2", f.logins)
	}

	// Expiry: a short TTL makes the next call log in again before use.
	f.mu.Lock()
	f.ttl = 1
	f.mu.Unlock()
	m := r.(*mark)
	m.mu.Lock()
	m.tokenRefresh = time.Time{} // force the next login to pick up the short TTL
	m.mu.Unlock()
	if err := r.Online(ctx); err != nil {
		t.Fatal(err)
	}
	before := f.logins
	time.Sleep(1100 * time.Millisecond)
	if err := r.Online(ctx); err != nil {
		t.Fatal(err)
	}
	if f.logins != before+1 {
		t.Fatalf("logins %d after the token expired, want %d", f.logins, before+1)
	}

	// Wrong password: an error naming the user and the answer, never the secret.
	f.mu.Lock()
	f.pass = "other"
	f.token = "rotated-again"
	f.mu.Unlock()
	err := r.Offline(ctx)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), `"gi"`) {
		t.Fatalf("bad credentials: %v", err)
	}
	for _, s := range []string{err.Error(), sink.String()} {
		if strings.Contains(s, testPassword) || strings.Contains(s, "s3cr3t") {
			t.Fatalf("secret leaked: %s", s)
		}
	}
}

// A server without a login endpoint (Polaris) gets requests without a token
// rather than a failed shutdown.
func TestContractNoAuthEndpoint(t *testing.T) {
	f := newFake(t, "polaris")
	cfg := contractConfig(f.srv.URL)
	cfg.Username, cfg.Password = "gi", testPassword
	r, sink := newContract(t, cfg)
	if err := r.Offline(ctxFor(t, 3*time.Second)); err != nil {
		t.Fatalf("Offline: %v", err)
	}
	if _, weight, _, _ := f.state(); weight != 0 {
		t.Fatalf("weight %v", weight)
	}
	for _, q := range f.requests() {
		if q.query.Get("accessToken") != "" {
			t.Fatalf("%s %s sent a token", q.method, q.path)
		}
	}
	if !strings.Contains(sink.String(), "no login endpoint") {
		t.Fatal("no warning about the missing login endpoint")
	}
}

func TestContractErrors(t *testing.T) {
	hang := func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	}
	cases := []struct {
		name     string
		hook     func(w http.ResponseWriter, r *http.Request) bool
		deadline time.Duration
		want     []string // in the error
	}{
		{
			name: "5xx with secrets in the body",
			hook: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/auth/") {
					return false
				}
				http.Error(w, `{"error":"boom","password":"`+testPassword+`","accessToken":"`+r.URL.Query().Get("accessToken")+`"}`, http.StatusServiceUnavailable)
				return true
			},
			deadline: 3 * time.Second,
			want:     []string{"503", "boom", "/nacos/v1/ns/instance"},
		},
		{
			name:     "hanging server",
			hook:     hang,
			deadline: 700 * time.Millisecond,
			want:     []string{"deadline exceeded"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, "nacos2")
			f.user, f.pass = "gi", testPassword
			f.hook = tc.hook
			cfg := contractConfig(f.srv.URL)
			cfg.Username, cfg.Password = "gi", testPassword
			r, sink := newContract(t, cfg)
			for _, call := range []func(context.Context) error{r.Offline, r.Online} {
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				start := time.Now()
				err := call(ctx)
				took := time.Since(start)
				cancel()
				if err == nil {
					t.Fatal("no error")
				}
				if took > tc.deadline+time.Second {
					t.Fatalf("took %v with a %v deadline", took, tc.deadline)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				for _, s := range []string{err.Error(), sink.String()} {
					if strings.Contains(s, testPassword) || strings.Contains(s, "s3cr3t") {
						t.Fatalf("secret leaked: %s", s)
					}
				}
				t.Logf("error: %v (after %v)", err, took.Round(time.Millisecond))
			}
		})
	}
}

func TestContractFailover(t *testing.T) {
	// A refused connection, a server answering 503, and a hanging one all
	// give way to the next address, within one call's deadline.
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := "http://" + l.Addr().String()
		l.Close()
		return addr
	}
	cases := []struct {
		name  string
		first func(t *testing.T) (addr string, hits func() int)
	}{
		{"refused", func(t *testing.T) (string, func() int) { return refused(t), func() int { return 0 } }},
		{"503", func(t *testing.T) (string, func() int) {
			f := newFake(t, "nacos2")
			f.hook = func(w http.ResponseWriter, r *http.Request) bool {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return true
			}
			return f.srv.URL, func() int { return len(f.requests()) }
		}},
		{"hanging", func(t *testing.T) (string, func() int) {
			f := newFake(t, "nacos2")
			f.hook = func(w http.ResponseWriter, r *http.Request) bool { <-r.Context().Done(); return true }
			return f.srv.URL, func() int { return len(f.requests()) }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first, firstHits := tc.first(t)
			good := newFake(t, "nacos2")
			r, _ := newContract(t, contractConfig(first, good.srv.URL))
			start := time.Now()
			if err := r.Offline(ctxFor(t, 3*time.Second)); err != nil {
				t.Fatalf("Offline: %v", err)
			}
			t.Logf("Offline with a %s first server took %v", tc.name, time.Since(start).Round(time.Millisecond))
			if _, weight, _, _ := good.state(); weight != 0 {
				t.Fatalf("second server weight %v", weight)
			}
			// The server that answered is tried first from now on.
			hits := firstHits()
			if err := r.Online(ctxFor(t, 3*time.Second)); err != nil {
				t.Fatalf("Online: %v", err)
			}
			if firstHits() != hits {
				t.Fatal("the failed server was tried again before the one that answered")
			}
		})
	}
}

// Userinfo in an address must not reach errors or logs, even when the
// server is unreachable (net/http's own errors print the URL).
func TestContractUserinfoNotLeaked(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r, sink := newContract(t, contractConfig("http://gi:"+testPassword+"@"+addr))
	err = r.Offline(ctxFor(t, 2*time.Second))
	if err == nil {
		t.Fatal("Offline against a closed port succeeded")
	}
	for _, s := range []string{err.Error(), sink.String()} {
		if strings.Contains(s, testPassword) {
			t.Fatalf("password leaked: %s", s)
		}
	}
	t.Logf("error: %v", err)
}

// Basic-auth credentials built from an address's userinfo reach the server
// in the Authorization header; a server (or a proxy in front of it) that
// echoes them in an error body must not put them in our errors or logs.
// httptest: no real Nacos echoes its request headers.
func TestContractUserinfoEchoScrubbed(t *testing.T) {
	f := newFake(t, "nacos2")
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		user, pass, _ := r.BasicAuth()
		http.Error(w, "denied: Authorization: "+r.Header.Get("Authorization")+" ("+r.Header.Get("Authorization")[6:]+") user "+user+" password "+pass, http.StatusForbidden)
		return true
	}
	u, _ := url.Parse(f.srv.URL)
	u.User = url.UserPassword("gi", testPassword)
	r, sink := newContract(t, contractConfig(u.String()))
	err := r.Offline(ctxFor(t, 2*time.Second))
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Offline: %v, want the 403", err)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("gi:" + testPassword))
	for _, s := range []string{err.Error(), sink.String()} {
		if strings.Contains(s, testPassword) || strings.Contains(s, basic) {
			t.Fatalf("credentials leaked: %s", s)
		}
	}
	t.Logf("error: %v", err)
}

func TestParseServer(t *testing.T) {
	cases := []struct {
		in, display, ctx, host string
		port                   uint64
		bad                    bool
	}{
		{in: "nacos:8848", display: "http://nacos:8848", ctx: "/nacos", host: "nacos", port: 8848},
		{in: "http://10.0.0.1:8848/", display: "http://10.0.0.1:8848", ctx: "/nacos", host: "10.0.0.1", port: 8848},
		{in: "https://u:" + testPassword + "@nacos.example/custom/", display: "https://nacos.example:443", ctx: "/custom", host: "nacos.example", port: 443},
		{in: "http://nacos", display: "http://nacos:8848", ctx: "/nacos", host: "nacos", port: 8848},
		{in: "ftp://nacos:21", bad: true},
		{in: "http://:8848", bad: true},
	}
	for _, tc := range cases {
		s, err := parseServer(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted", tc.in)
			} else if strings.Contains(err.Error(), testPassword) {
				t.Errorf("%q: error leaks the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if s.display != tc.display || s.contextPath != tc.ctx || s.host != tc.host || s.port != tc.port {
			t.Errorf("%q: got %+v", tc.in, s)
		}
	}
}

func TestScrubSecrets(t *testing.T) {
	in := `login failed: params:{"username":"gi","password":"` + testPassword + `"} url=/x?accessToken=eyJabc.def&b=1 header:{"accessToken":"eyJxyz"} ` + url.QueryEscape(testPassword+"&")
	out := redact.Text(in, testPassword+"&", testPassword)
	for _, leak := range []string{testPassword, "eyJabc", "eyJxyz"} {
		if strings.Contains(out, leak) {
			t.Fatalf("%q survived: %s", leak, out)
		}
	}
	if !strings.Contains(out, `"username":"gi"`) {
		t.Fatalf("over-scrubbed: %s", out)
	}
}

func TestNewRejects(t *testing.T) {
	base := func() *Options { return contractConfig("http://127.0.0.1:8848") }
	cases := []struct {
		name string
		mut  func(*Options)
	}{
		{"no address", func(c *Options) { c.Addrs = nil }},
		{"no service", func(c *Options) { c.Service = "" }},
		{"bad ip", func(c *Options) { c.IP = "pod-1" }},
		{"no port", func(c *Options) { c.Port = 0 }},
		{"bad mode", func(c *Options) { c.Mode = "both" }},
		{"bad address", func(c *Options) { c.Addrs = []string{"ftp://x"} }},
	}
	for _, tc := range cases {
		cfg := base()
		tc.mut(cfg)
		if _, err := New(*cfg, nil); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// The backend owns its defaults, the same for mark and register mode.
func TestOptionsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Options
		want Options
	}{
		{"zero", Options{}, Options{Namespace: "public", Group: "DEFAULT_GROUP", Cluster: "DEFAULT", Mode: "mark", Offline: "both", Weight: 1, Timeout: 5 * time.Second}},
		{"set", Options{Namespace: "ns", Group: "G", Cluster: "c1", Mode: "register", Offline: "weight", Weight: 3, Timeout: time.Second},
			Options{Namespace: "ns", Group: "G", Cluster: "c1", Mode: "register", Offline: "weight", Weight: 3, Timeout: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("withDefaults = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestContractTold: on the real servers' dialects (Nacos 1.x/2.x: the
// detail read, which does not show enabled, and PATCH; 3.x: the admin
// API), an app told to register itself at weight 0 is held (disabled as
// --nacos-offline both says), put in rotation at the weight its
// environment gave, and put back by Keep when it registers again at
// weight 0; a weight above 0 is left to Keep alone.
func TestContractTold(t *testing.T) {
	for _, dialect := range []string{"nacos2", "nacos3"} {
		t.Run(dialect, func(t *testing.T) {
			f := newFake(t, dialect)
			f.set(true, 0, true) // the told registration
			cfg := contractConfig(f.srv.URL)
			cfg.Offline = "both"
			r, sink := newContract(t, cfg)
			m := r.(*mark)
			env := m.AppEnv(func(k string) (string, bool) { return "2.5", k == EnvWeight })
			if len(env) != 1 || env[0] != EnvWeight+"=0" {
				t.Fatalf("AppEnv = %q", env)
			}
			ctx := ctxFor(t, 10*time.Second)
			if st, err := m.Hold(ctx); err != nil || st != registry.HoldRegisteredOut {
				t.Fatalf("Hold = %v, %v; want HoldRegisteredOut", st, err)
			}
			if _, weight, enabled, _ := f.state(); weight != 0 || enabled {
				t.Fatalf("held: weight %v enabled %v, want 0 and disabled", weight, enabled)
			}
			if err := m.Online(ctx); err != nil {
				t.Fatal(err)
			}
			if _, weight, enabled, _ := f.state(); weight != 2.5 || !enabled {
				t.Fatalf("online: weight %v enabled %v, want the environment's 2.5, enabled", weight, enabled)
			}
			if strings.Contains(sink.String(), "stale offline mark") {
				t.Errorf("the told registration was taken for a stale mark:\n%s", sink.String())
			}
			n := len(f.writes())
			if put, err := m.Keep(ctx); err != nil || put {
				t.Fatalf("Keep in rotation = %v, %v", put, err)
			}
			if len(f.writes()) != n {
				t.Fatalf("Keep wrote with the instance in rotation: %+v", f.writes()[n:])
			}
			f.set(true, 0, true) // registered again, as told
			if put, err := m.Keep(ctx); err != nil || !put {
				t.Fatalf("Keep after a registration again = %v, %v", put, err)
			}
			if _, weight, enabled, _ := f.state(); weight != 2.5 || !enabled {
				t.Fatalf("kept: weight %v enabled %v, want 2.5, enabled", weight, enabled)
			}
			if err := m.Offline(ctx); err != nil {
				t.Fatal(err)
			}
			f.set(true, 0, true)
			n = len(f.writes())
			if put, err := m.Keep(ctx); err != nil || put || len(f.writes()) != n {
				t.Fatalf("Keep after Offline = %v, %v, writes %+v", put, err, f.writes()[n:])
			}
		})
	}
}

// TestContractHoldAnswerLost: the hold's write lands but its answer never
// comes (a registry slower than --registry-timeout). On Polaris the list
// then hides the disabled instance and nothing else shows it: Online must
// still put it back, from what the hold saw, rather than wait forever for
// an app "not registered yet".
func TestContractHoldAnswerLost(t *testing.T) {
	f := newFake(t, "polaris")
	cfg := contractConfig(f.srv.URL)
	cfg.Offline = "both"
	cfg.Timeout = 300 * time.Millisecond
	m := toldMark(t, f, cfg)
	var lost atomic.Bool
	lost.Store(true)
	f.hook = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !lost.Load() {
			return false
		}
		f.mu.Lock()
		f.enabled, f.weight = r.URL.Query().Get("enabled") == "true", 0
		f.mu.Unlock()
		time.Sleep(time.Second) // answered after the caller gave up
		return true
	}
	ctx := ctxFor(t, 10*time.Second)
	for range 2 { // the first look learns Polaris's dialect
		hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		_, _ = m.Hold(hctx)
		cancel()
	}
	if _, _, enabled, _ := f.state(); enabled {
		t.Fatal("the hold's write did not land: the test does not test the lost answer")
	}
	lost.Store(false)
	if err := m.Online(ctx); err != nil {
		t.Fatalf("Online with the instance disabled by a write whose answer was lost: %v", err)
	}
	if _, weight, enabled, _ := f.state(); weight != cfg.Weight || !enabled {
		t.Fatalf("after Online: weight %v enabled %v, want %v and enabled", weight, enabled, cfg.Weight)
	}
}

// TestContractOfflineAfterOwnPut: a stop soon after gracefulinit put the
// instance in rotation (Online, or Keep putting a told app back) meets a
// server whose list still shows the state from before that write (Polaris
// rebuilds its read cache every second): the instance hidden as the hold
// disabled it, or at the told weight 0. The offline step must still take it
// out, not report it not found or already out while the write it cannot
// see yet keeps it in rotation through the drain.
func TestContractOfflineAfterOwnPut(t *testing.T) {
	for _, tc := range []struct {
		name, offline string
		keep          bool // the last write was Keep's, not Online's
		lost          bool // Online's write lands, its answer is lost (a registry slower than the timeout)
	}{
		{"both, after online", "both", false, false},
		{"weight, after online", "weight", false, false},
		{"weight, after keep", "weight", true, false},
		{"both, after keep", "both", true, false},
		{"both, online's answer lost", "both", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, "polaris")
			cfg := contractConfig(f.srv.URL)
			cfg.Offline = tc.offline
			m := toldMark(t, f, cfg)
			// stale > 0: the list answers from snap (the state before the
			// last write), that many more times.
			var stale atomic.Int32
			var snapWeight float64
			var snapEnabled bool
			var lost atomic.Bool
			f.hook = func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPut && lost.Load() {
					f.mu.Lock()
					f.enabled = r.URL.Query().Get("enabled") == "true"
					f.weight, _ = strconv.ParseFloat(r.URL.Query().Get("weight"), 64)
					f.mu.Unlock()
					time.Sleep(time.Second) // answered after the caller gave up
					return true
				}
				if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/instance/list") || stale.Add(-1) < 0 {
					return false
				}
				hosts := []any{}
				if snapEnabled {
					hosts = append(hosts, map[string]any{"ip": "10.1.2.3", "port": 8080, "clusterName": "DEFAULT",
						"weight": snapWeight, "healthy": true, "enabled": true, "metadata": map[string]string{"k": "v"}})
				}
				writeJSON(w, 200, map[string]any{"name": "DEFAULT_GROUP@@svc", "hosts": hosts})
				return true
			}
			snapshot := func() {
				_, snapWeight, snapEnabled, _ = f.state()
			}
			ctx := ctxFor(t, 20*time.Second)
			for range 2 { // the first look learns Polaris's dialect
				if _, err := m.Hold(ctx); err != nil {
					t.Fatal(err)
				}
			}
			snapshot()
			lost.Store(tc.lost)
			octx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := m.Online(octx)
			cancel()
			lost.Store(false)
			if (err != nil) != tc.lost {
				t.Fatalf("Online: %v", err)
			}
			if tc.keep {
				f.set(true, 0, true) // registered again, as told
				snapshot()
				if put, err := m.Keep(ctx); err != nil || !put {
					t.Fatalf("Keep = %v, %v", put, err)
				}
			}
			if _, weight, enabled, _ := f.state(); weight != cfg.Weight || !enabled {
				t.Fatalf("before the stop: weight %v enabled %v, want in rotation", weight, enabled)
			}
			stale.Store(1) // the offline step's first read is from before the write
			set := &registry.Set{Registries: []registry.Registry{m}, Timeout: cfg.Timeout, RetryMin: 50 * time.Millisecond,
				Log: newLogSink(t).logger()}
			if err := set.Offline(ctx); err != nil {
				t.Fatalf("Offline: %v", err)
			}
			_, weight, enabled, _ := f.state()
			if weight != 0 && enabled || tc.offline == "both" && (weight != 0 || enabled) {
				t.Fatalf("after the offline step: weight %v enabled %v: still in rotation", weight, enabled)
			}
		})
	}
}

// TestContractUserToldItself: an environment that already sets the app's
// weight to 0 tells the app what gracefulinit would: it registers at
// weight 0, is put in rotation at --nacos-weight once ready, and, when it
// registers again at weight 0, is put back like a told app. Left alone, it
// stayed out of rotation for good while the pod reported ready.
func TestContractUserToldItself(t *testing.T) {
	for _, v := range []string{"0", " 0.0 "} {
		t.Run(v, func(t *testing.T) {
			f := newFake(t, "nacos2")
			f.set(true, 0, true) // the app registered at the environment's weight 0
			cfg := contractConfig(f.srv.URL)
			cfg.Offline = "both"
			r, _ := newContract(t, cfg)
			m := r.(*mark)
			if env := m.AppEnv(func(k string) (string, bool) { return v, k == EnvWeight }); len(env) != 0 {
				t.Fatalf("AppEnv = %q: the user's variable is overridden", env)
			}
			ctx := ctxFor(t, 10*time.Second)
			if st, err := m.Hold(ctx); err != nil || st != registry.HoldRegisteredOut {
				t.Fatalf("Hold = %v, %v; want HoldRegisteredOut", st, err)
			}
			if err := m.Online(ctx); err != nil {
				t.Fatal(err)
			}
			f.set(true, 0, true) // registered again, at weight 0 as its environment says
			if put, err := m.Keep(ctx); err != nil || !put {
				t.Fatalf("Keep after a registration again = %v, %v", put, err)
			}
			if _, weight, enabled, _ := f.state(); weight != cfg.Weight || !enabled {
				t.Fatalf("kept: weight %v enabled %v, want %v, enabled", weight, enabled, cfg.Weight)
			}
		})
	}
}

// TestContractOnlineWriteBeforeOffline: a stop that comes while Online's
// write is on its way (the server slow to apply it) must not let that
// write land after the offline step's: cut short on the client, it is
// still applied by the server, beside the offline step's read and write,
// and the pod would be back in rotation through the drain. The offline
// step waits for the write's answer, then takes the instance out.
func TestContractOnlineWriteBeforeOffline(t *testing.T) {
	for _, dialect := range []string{"nacos2", "polaris"} {
		t.Run(dialect, func(t *testing.T) {
			f := newFake(t, dialect)
			cfg := contractConfig(f.srv.URL)
			cfg.Offline = "both"
			m := toldMark(t, f, cfg)
			ctx := ctxFor(t, 20*time.Second)
			for range 2 { // the first look learns the dialect
				if _, err := m.Hold(ctx); err != nil {
					t.Fatal(err)
				}
			}
			writing := make(chan struct{})
			var once sync.Once
			f.hook = func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodGet && r.URL.Query().Get("enabled") == "true" {
					once.Do(func() { close(writing) })
					time.Sleep(500 * time.Millisecond) // then applied, whether the client waits or not
				}
				return false
			}
			octx, stop := context.WithCancel(ctx)
			online := make(chan error, 1)
			go func() { online <- m.Online(octx) }()
			select {
			case <-writing:
			case err := <-online:
				t.Fatalf("Online returned before its write: %v", err)
			}
			stop() // the stop sequence begins: Online's context ends, the offline step starts
			set := &registry.Set{Registries: []registry.Registry{m}, Timeout: cfg.Timeout, RetryMin: 50 * time.Millisecond,
				Log: newLogSink(t).logger()}
			if err := set.Offline(ctx); err != nil {
				t.Fatalf("Offline: %v", err)
			}
			<-online
			time.Sleep(700 * time.Millisecond) // every write applied
			if _, weight, enabled, _ := f.state(); weight != 0 || enabled {
				t.Fatalf("after the offline step: weight %v enabled %v: back in rotation", weight, enabled)
			}
		})
	}
}

// TestContractHoldOtherCluster: the app registered in a cluster that
// --nacos-cluster does not name (found by ip and port in the list). The
// hold disables its registration, which the list then hides, and the
// detail read, asked for the configured cluster, does not find: Online
// must put back what the hold took out, from what the hold saw, rather
// than wait forever for an app "no longer registered" (the pod never
// turned ready).
func TestContractHoldOtherCluster(t *testing.T) {
	for _, dialect := range []string{"nacos2", "nacos3", "polaris"} {
		t.Run(dialect, func(t *testing.T) {
			f := newFake(t, dialect)
			f.cluster = "BJ"
			cfg := contractConfig(f.srv.URL)
			cfg.Cluster = ""
			cfg.Offline = "both"
			m := toldMark(t, f, cfg)
			ctx := ctxFor(t, 10*time.Second)
			for range 2 { // the first look learns the dialect
				if _, err := m.Hold(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, enabled, _ := f.state(); enabled {
				t.Fatal("the hold did not disable the registration: the test does not test the hidden instance")
			}
			if err := m.Online(ctx); err != nil {
				t.Fatalf("Online: %v", err)
			}
			if _, weight, enabled, _ := f.state(); weight != cfg.Weight || !enabled {
				t.Fatalf("after Online: weight %v enabled %v, want %v and enabled", weight, enabled, cfg.Weight)
			}
		})
	}
}

// toldMark is mark mode for cfg on f, whose app registered itself at
// weight 0 as AppEnv told it (an environment without the variable).
func toldMark(t *testing.T, f *fakeNacos, cfg *Options) *mark {
	t.Helper()
	f.set(true, 0, true)
	r, _ := newContract(t, cfg)
	m := r.(*mark)
	if env := m.AppEnv(func(string) (string, bool) { return "", false }); len(env) != 1 {
		t.Fatalf("AppEnv = %q, want the app told", env)
	}
	return m
}
