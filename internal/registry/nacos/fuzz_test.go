package nacos

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fuzzAnswers is what the fuzz server says to each read, swapped per input.
type fuzzAnswers struct {
	detailStatus int
	detail, list []byte
}

// FuzzMarkAnswers feeds the mark step's readers (the 1.x/2.x detail, the
// instance list, the 3.x admin detail) whatever a server might answer, and
// runs Offline and Online through them. Whatever the answers: no panic,
// each call ends within its deadline, and every weight written is a finite
// number Nacos accepts (0 or the configured weight). httptest: the point is
// answers no real server gives.
func FuzzMarkAnswers(f *testing.F) {
	f.Add(uint8(0), []byte(`{"weight":1,"healthy":true,"enabled":true,"metadata":{"a":"b"}}`), []byte(`{"hosts":[]}`))
	var cur atomic.Pointer[fuzzAnswers]
	var mu sync.Mutex
	var weights []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := cur.Load()
		if r.Method != http.MethodGet {
			_ = r.ParseForm()
			mu.Lock()
			if v, ok := r.Form["weight"]; ok {
				weights = append(weights, v...)
			}
			mu.Unlock()
			io.WriteString(w, "ok")
			return
		}
		switch r.URL.Path {
		case "/nacos/v1/ns/instance":
			w.WriteHeader(a.detailStatus)
			w.Write(a.detail)
		case "/nacos/v1/ns/instance/list":
			w.Write(a.list)
		case "/nacos/v3/admin/ns/instance":
			w.Write(a.detail)
		default:
			http.NotFound(w, r)
		}
	}))
	f.Cleanup(srv.Close)
	statuses := []int{http.StatusOK, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone, http.StatusServiceUnavailable}
	cfg := &Options{
		Timeout: time.Second, Service: "svc", IP: "10.1.2.3", Port: 8080,
		Addrs: []string{srv.URL}, Namespace: "public", Group: "DEFAULT_GROUP", Cluster: "DEFAULT",
		Offline: "weight", Mode: "mark", Weight: 2,
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, status uint8, detail, list []byte) {
		cur.Store(&fuzzAnswers{detailStatus: statuses[int(status)%len(statuses)], detail: detail, list: list})
		mu.Lock()
		weights = weights[:0]
		mu.Unlock()
		r, err := New(*cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []func(context.Context) error{r.Offline, r.Online} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			start := time.Now()
			_ = call(ctx)
			cancel()
			if took := time.Since(start); took > 4*time.Second {
				t.Fatalf("a call took %v with a 2s deadline", took)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, v := range weights {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || (n != 0 && n != 2) || strings.ContainsAny(v, "eE") {
				t.Fatalf("wrote weight %q: want 0 or the configured 2", v)
			}
		}
	})
}
