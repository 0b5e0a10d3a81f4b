package eureka

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeEureka implements the part of the Netflix Eureka REST API gracefulinit
// uses, with the server's semantics as read from Netflix/eureka
// (ApplicationResource, InstanceResource, AbstractInstanceRegistry): app
// names are upper-cased, instance ids are case-sensitive, unknown instances
// answer 404, and a status override lives in a map keyed by instance id that
// survives re-registration and is removed only by DELETE .../status or by
// deregistration. It exists for the request contract and for error shapes a
// real server will not produce; behaviour against a real server is tested
// with Polaris in polaris_test.go.
type fakeEureka struct {
	t    testing.TB
	base string // "/eureka" or "/eureka/v2"
	// user and pass, if set, are required as basic auth (Spring Security's
	// usual protection of a Eureka server); others get 401.
	user, pass string
	// overriddenKey is the JSON key of the override in GET answers:
	// "overriddenstatus" before Eureka 1.9, "overriddenStatus" after.
	overriddenKey string
	// hook, if set, may answer a request itself (fault injection); it
	// returns true if it did.
	hook func(w http.ResponseWriter, r *http.Request) bool

	srv *httptest.Server

	mu        sync.Mutex
	reqs      []fakeReq
	instances map[string]*fakeInstance // key: APP/id
	overrides map[string]string        // key: id, as in overriddenInstanceStatusMap
}

type fakeReq struct {
	Method, Path, Query string
	Auth                string
}

func (r fakeReq) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s
}

type fakeInstance struct {
	App, ID              string
	Status, Overridden   string
	Doc                  map[string]any // the registered document
	Renewals, Registered int
}

func newFakeEureka(t testing.TB, base string) *fakeEureka {
	f := &fakeEureka{
		t:             t,
		base:          base,
		overriddenKey: "overriddenstatus",
		instances:     map[string]*fakeInstance{},
		overrides:     map[string]string{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the service URL a client is configured with.
func (f *fakeEureka) URL() string { return f.srv.URL + f.base }

func (f *fakeEureka) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

func (f *fakeEureka) requestLines() []string {
	var out []string
	for _, r := range f.requests() {
		out = append(out, r.String())
	}
	return out
}

func (f *fakeEureka) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = nil
}

// put registers an instance directly, as the app itself would have.
func (f *fakeEureka) put(app, id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registerLocked(strings.ToUpper(app), id, status, map[string]any{"instanceId": id, "app": strings.ToUpper(app)})
}

// putAt registers instance id of app at ip with port in the given JSON shape.
func (f *fakeEureka) putAt(app, id, ip string, port any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registerLocked(app, id, "UP", map[string]any{"instanceId": id, "app": app, "ipAddr": ip, "port": port})
}

func (f *fakeEureka) registerLocked(app, id, status string, doc map[string]any) {
	in := &fakeInstance{App: app, ID: id, Status: status, Overridden: "UNKNOWN", Doc: doc}
	if old := f.instances[app+"/"+id]; old != nil {
		in.Registered = old.Registered
	}
	in.Registered++
	// AbstractInstanceRegistry.register: an override recorded for the id is
	// applied to the new registration, status included.
	if ov, ok := f.overrides[id]; ok {
		in.Overridden = ov
		in.Status = ov
	}
	f.instances[app+"/"+id] = in
}

func (f *fakeEureka) get(app, id string) *fakeInstance {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.instances[strings.ToUpper(app)+"/"+id]
	if in == nil {
		return nil
	}
	cp := *in
	return &cp
}

// evict drops an instance the way lease expiry does (the override stays).
func (f *fakeEureka) evict(app, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.instances, strings.ToUpper(app)+"/"+id)
}

func (f *fakeEureka) setOverride(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.overrides[id] = status
}

func (f *fakeEureka) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeReq{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")})
	f.mu.Unlock()
	if f.hook != nil && f.hook(w, r) {
		return
	}
	if f.user != "" || f.pass != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != f.user || p != f.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="Realm"`)
			http.Error(w, `{"error":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
	}
	rest, ok := strings.CutPrefix(r.URL.Path, f.base+"/apps/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(rest, "/")
	app := strings.ToUpper(parts[0])
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		// Netflix's shape: the port as {"$": n, "@enabled": "true"}.
		var list []map[string]any
		for _, in := range f.instances {
			if in.App != app {
				continue
			}
			doc := map[string]any{"instanceId": in.ID, "app": app, "status": in.Status, f.overriddenKey: in.Overridden}
			if ip, ok := in.Doc["ipAddr"]; ok {
				doc["ipAddr"] = ip
			}
			if port, ok := in.Doc["port"]; ok {
				doc["port"] = port
			}
			list = append(list, doc)
		}
		if len(list) == 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"application": map[string]any{"name": app, "instance": list}})
	case len(parts) == 1 && r.Method == http.MethodPost:
		var body struct {
			Instance map[string]any `json:"instance"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Instance == nil {
			http.Error(w, "bad instance", http.StatusBadRequest)
			return
		}
		id, _ := body.Instance["instanceId"].(string)
		status, _ := body.Instance["status"].(string)
		f.registerLocked(app, id, status, body.Instance)
		w.WriteHeader(http.StatusNoContent)
	case len(parts) == 2:
		in := f.instances[app+"/"+parts[1]]
		if in == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		switch r.Method {
		case http.MethodGet:
			doc := map[string]any{}
			for k, v := range in.Doc {
				doc[k] = v
			}
			doc["status"] = in.Status
			doc[f.overriddenKey] = in.Overridden
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"instance": doc})
		case http.MethodPut:
			in.Renewals++
			w.WriteHeader(http.StatusOK)
		case http.MethodDelete:
			delete(f.instances, app+"/"+parts[1])
			delete(f.overrides, parts[1])
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	case len(parts) == 3 && parts[2] == "status":
		in := f.instances[app+"/"+parts[1]]
		if in == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		value := r.URL.Query().Get("value")
		switch r.Method {
		case http.MethodPut:
			// statusUpdate: an override, when the status differs.
			if in.Status != value {
				f.overrides[in.ID] = value
				in.Overridden = value
				in.Status = value
			}
		case http.MethodDelete:
			// deleteStatusOverride: the status changes only when an
			// override was there to remove.
			if _, ok := f.overrides[in.ID]; ok {
				delete(f.overrides, in.ID)
				in.Overridden = "UNKNOWN"
				in.Status = "UNKNOWN"
				if value != "" {
					in.Status = value
				}
			}
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}
