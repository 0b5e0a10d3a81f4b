package nacos

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeNacos reproduces, for contract tests, the answers of the server
// dialects a real test server cannot show (Nacos 1.x/2.x PATCH, 3.x 410s,
// auth, 5xx, hangs). Its rules follow registries.md; Polaris's quirks are
// also checked against the real Polaris in the *_polaris_test.go files.
type fakeNacos struct {
	dialect string // nacos2 (also 1.x), nacos3, polaris

	mu         sync.Mutex
	registered bool
	cluster    string // as the server holds it; Polaris keeps "" for a gRPC registration without one
	weight     float64
	enabled    bool
	metadata   map[string]string
	reqs       []fakeReq

	// Auth, when user is set.
	user, pass string
	token      string
	ttl        int
	logins     int

	// hook, when set, answers a request first (code != 0).
	hook func(w http.ResponseWriter, r *http.Request) bool

	srv *httptest.Server
}

type fakeReq struct {
	method, path string
	query        url.Values
	form         url.Values // body of form posts
	contentType  string
}

func newFake(t *testing.T, dialect string) *fakeNacos {
	f := &fakeNacos{dialect: dialect, registered: true, cluster: "DEFAULT", weight: 1, enabled: true, metadata: map[string]string{"k": "v"}, ttl: 18000}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNacos) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

// writes are the requests that change state.
func (f *fakeNacos) writes() []fakeReq {
	var w []fakeReq
	for _, r := range f.requests() {
		if r.method != http.MethodGet && !strings.Contains(r.path, "/auth/") {
			w = append(w, r)
		}
	}
	return w
}

func (f *fakeNacos) state() (bool, float64, bool, map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registered, f.weight, f.enabled, f.metadata
}

func (f *fakeNacos) set(registered bool, weight float64, enabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registered, f.weight, f.enabled = registered, weight, enabled
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeNacos) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeReq{method: r.Method, path: r.URL.Path, query: r.URL.Query(), form: form, contentType: r.Header.Get("Content-Type")})
	hook := f.hook
	f.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	if strings.Contains(r.URL.Path, "/auth/") && f.dialect == "polaris" {
		http.Error(w, "404: Page Not Found", http.StatusNotFound)
		return
	}
	if r.URL.Path == "/nacos/v1/auth/login" {
		if r.Method != http.MethodPost || form.Get("username") != f.user || form.Get("password") != f.pass || f.user == "" {
			http.Error(w, "unknown user!", http.StatusForbidden)
			return
		}
		f.logins++
		f.token = fmt.Sprintf("tok-%d-s3cr3t", f.logins)
		writeJSON(w, 200, map[string]any{"accessToken": f.token, "tokenTtl": f.ttl, "globalAdmin": false})
		return
	}
	if f.user != "" && q.Get("accessToken") != f.token {
		http.Error(w, "token invalid!", http.StatusForbidden)
		return
	}
	if q.Get("serviceName") != "DEFAULT_GROUP@@svc" && !(strings.HasPrefix(r.URL.Path, "/nacos/v3/admin/ns/instance") && r.Method == http.MethodGet) {
		http.Error(w, "unexpected serviceName "+q.Get("serviceName"), http.StatusBadRequest)
		return
	}
	if q.Get("ip") != "" && (q.Get("ip") != "10.1.2.3" || q.Get("port") != "8080") {
		http.Error(w, "no matched ip found!", http.StatusNotFound)
		return
	}
	key := r.Method + " " + r.URL.Path
	switch f.dialect {
	case "nacos2":
		switch key {
		case "GET /nacos/v1/ns/instance":
			// The detail read matches the cluster exactly (an empty
			// one is DEFAULT), shows disabled instances too, but not
			// their enabled flag.
			if !f.registered || clusterOr(q.Get("clusterName")) != f.cluster {
				http.Error(w, "no matched ip found!", http.StatusNotFound)
				return
			}
			writeJSON(w, 200, map[string]any{"service": "DEFAULT_GROUP@@svc", "ip": "10.1.2.3", "port": 8080,
				"clusterName": f.cluster, "weight": f.weight, "healthy": true, "instanceId": "x", "metadata": f.metadata})
		case "GET /nacos/v1/ns/instance/list":
			f.serveList(w, q)
		case "PATCH /nacos/v1/ns/instance":
			if !f.registered || clusterOr(q.Get("clusterName")) != f.cluster {
				http.Error(w, "no matched ip found!", http.StatusNotFound)
				return
			}
			f.patch(q)
			f.putMetadata(q)
			_, _ = io.WriteString(w, "ok")
		default:
			http.Error(w, "unexpected "+key, http.StatusTeapot)
		}
	case "polaris":
		switch key {
		case "GET /nacos/v1/ns/instance", "PATCH /nacos/v1/ns/instance":
			http.Error(w, "405: Method Not Allowed", http.StatusMethodNotAllowed)
		case "GET /nacos/v1/ns/instance/list":
			f.serveList(w, q)
		case "PUT /nacos/v1/ns/instance":
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
				http.Error(w, "415: Unsupported Media Type", http.StatusUnsupportedMediaType)
				return
			}
			if !q.Has("metadata") {
				writeJSON(w, 500, map[string]any{"ErrCode": 400, "ErrMsg": "metadata format incorrect:"})
				return
			}
			if !f.registered {
				writeJSON(w, 500, map[string]any{"ErrCode": 500, "ErrMsg": "not found instances"})
				return
			}
			weight, _ := strconv.ParseFloat(q.Get("weight"), 64)
			enabled := q.Get("enabled") == "true"
			md := map[string]string{}
			_ = json.Unmarshal([]byte(q.Get("metadata")), &md)
			if weight == f.weight && enabled == f.enabled && fmt.Sprint(md) == fmt.Sprint(f.metadata) {
				writeJSON(w, 500, map[string]any{"ErrCode": 500, "ErrMsg": "update data is no change, no need to update"})
				return
			}
			// Polaris finds the instance by ip and port; over HTTP an
			// empty cluster name becomes DEFAULT.
			f.weight, f.enabled, f.metadata, f.cluster = weight, enabled, md, clusterOr(q.Get("clusterName"))
			_, _ = io.WriteString(w, "ok")
		default:
			http.Error(w, "unexpected "+key, http.StatusTeapot)
		}
	case "nacos3":
		switch key {
		case "GET /nacos/v1/ns/instance", "PATCH /nacos/v1/ns/instance", "PUT /nacos/v1/ns/instance":
			http.Error(w, "api is deprecated", http.StatusGone)
		case "GET /nacos/v1/ns/instance/list":
			f.serveList(w, q)
		case "GET /nacos/v3/admin/ns/instance":
			if q.Get("serviceName") != "svc" || q.Get("groupName") != "DEFAULT_GROUP" {
				writeJSON(w, 400, map[string]any{"code": 10000, "message": "bad params"})
				return
			}
			if !f.registered || clusterOr(q.Get("clusterName")) != f.cluster {
				writeJSON(w, 404, map[string]any{"code": 20004, "message": "instance not found"})
				return
			}
			writeJSON(w, 200, map[string]any{"code": 0, "message": "success", "data": map[string]any{
				"serviceName": "DEFAULT_GROUP@@svc", "ip": "10.1.2.3", "port": 8080, "clusterName": f.cluster,
				"weight": f.weight, "healthy": true, "enabled": f.enabled, "instanceId": "x", "metadata": f.metadata}})
		case "PUT /nacos/v3/admin/ns/instance/partial":
			if _, ok := q["metadata"]; !ok || q.Get("cluster") == "" {
				writeJSON(w, 400, map[string]any{"code": 10000, "message": "Required parameter missing"})
				return
			}
			if !f.registered || q.Get("cluster") != f.cluster {
				writeJSON(w, 404, map[string]any{"code": 20004, "message": "instance not found"})
				return
			}
			f.patch(q)
			f.putMetadata(q)
			writeJSON(w, 200, map[string]any{"code": 0, "message": "success", "data": "ok"})
		default:
			http.Error(w, "unexpected "+key, http.StatusTeapot)
		}
	}
}

// patch applies a partial update (v1 PATCH, v3 partial PUT), which starts
// from weight 1 / enabled true for the fields it does not send.
func (f *fakeNacos) patch(q url.Values) {
	f.weight, f.enabled = 1, true
	if v := q.Get("weight"); v != "" {
		f.weight, _ = strconv.ParseFloat(v, 64)
	}
	if v := q.Get("enabled"); v != "" {
		f.enabled = v == "true"
	}
}

// putMetadata replaces the metadata with what a write sent, if anything.
func (f *fakeNacos) putMetadata(q url.Values) {
	if md := q.Get("metadata"); strings.TrimSpace(md) != "" {
		m := map[string]string{}
		_ = json.Unmarshal([]byte(md), &m)
		f.metadata = m
	}
}

// clusterOr is a request's cluster name as Nacos reads it: empty is DEFAULT.
func clusterOr(c string) string {
	if c == "" {
		return "DEFAULT"
	}
	return c
}

// serveList hides disabled instances, as Nacos and Polaris do, and filters
// by the clusters parameter exactly, as Polaris does (so clusters=DEFAULT
// hides an instance it holds with an empty cluster name). Another instance
// of the service, at another ip, is always listed.
func (f *fakeNacos) serveList(w http.ResponseWriter, q url.Values) {
	hosts := []any{}
	want := map[string]bool{}
	for _, c := range strings.Split(q.Get("clusters"), ",") {
		if c != "" {
			want[c] = true
		}
	}
	listed := func(cluster string) bool { return len(want) == 0 || want[cluster] }
	if f.registered && f.enabled && listed(f.cluster) {
		md := map[string]string{}
		for k, v := range f.metadata {
			md[k] = v
		}
		if f.dialect == "polaris" {
			md["internal-nacos-cluster"] = f.cluster
		}
		hosts = append(hosts, map[string]any{"ip": "10.1.2.3", "port": 8080, "clusterName": f.cluster,
			"weight": f.weight, "healthy": true, "enabled": f.enabled, "ephemeral": true, "metadata": md})
	}
	if listed("DEFAULT") {
		hosts = append(hosts, map[string]any{"ip": "10.1.2.4", "port": 8080, "clusterName": "DEFAULT",
			"weight": 1, "healthy": true, "enabled": true, "ephemeral": true, "metadata": map[string]string{}})
	}
	writeJSON(w, 200, map[string]any{"name": "DEFAULT_GROUP@@svc", "hosts": hosts})
}

// logSink collects a test's log output and forwards it to t.Log while the
// test runs; the SDK's global logger can outlive a test, and t.Log after the
// end panics.
type logSink struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
	buf  strings.Builder
}

func newLogSink(t *testing.T) *logSink {
	l := &logSink{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
