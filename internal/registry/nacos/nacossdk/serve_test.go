package nacossdk

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry/nacos"
)

// TestServeProtocol drives the helper's side of the pipe with requests that
// need no server: each gets exactly one reply with its id, a bad line is
// logged and skipped, and EOF ends Serve with 0.
func TestServeProtocol(t *testing.T) {
	cfg := nacos.HelperConfig{
		Servers:   []nacos.HelperServer{{Scheme: "http", Host: "127.0.0.1", Port: 1, ContextPath: "/nacos"}},
		Namespace: "public", Group: "DEFAULT_GROUP", Service: "svc", Cluster: "DEFAULT",
		IP: "10.0.0.1", Port: 8080, Weight: 1, Password: testPassword, CacheDir: t.TempDir(), TimeoutMs: 1000,
	}
	line, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := strings.Join([]string{
		string(line),
		`{"id":1,"op":"offline"}`,
		`not json`,
		`{"id":2,"op":"jump"}`,
		`{"id":3,"op":"close"}`,
	}, "\n") + "\n"
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		c := Serve(strings.NewReader(in), pw, io.Discard)
		pw.Close()
		code <- c
	}()
	replies := map[uint64]string{}
	var logs []map[string]any
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("helper wrote a line that is not JSON: %q", sc.Text())
		}
		if id, ok := m["reply"].(float64); ok {
			if _, dup := replies[uint64(id)]; dup {
				t.Errorf("two replies for request %v", id)
			}
			e, _ := m["error"].(string)
			replies[uint64(id)] = e
			continue
		}
		if _, ok := m["time"]; ok {
			t.Errorf("log record carries its own time (PID 1 adds one): %v", m)
		}
		logs = append(logs, m)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("Serve returned %d, want 0 at EOF", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return at EOF")
	}
	want := map[uint64]string{1: "", 2: `unknown op "jump"`, 3: ""}
	for id, e := range want {
		got, ok := replies[id]
		if !ok || got != e {
			t.Errorf("reply %d: %q (present %v), want %q", id, got, ok, e)
		}
	}
	if len(replies) != len(want) {
		t.Errorf("replies %v, want %v", replies, want)
	}
	var badLine bool
	for _, l := range logs {
		if strings.Contains(l["msg"].(string), "bad request line") && l["level"] == "WARN" {
			badLine = true
		}
		if strings.Contains(strings.Join(strings.Fields(strings.TrimSpace(stringify(l))), " "), testPassword) {
			t.Errorf("password in a log record: %v", l)
		}
	}
	if !badLine {
		t.Errorf("no WARN for the bad request line: %v", logs)
	}
}

func TestServeNoConfig(t *testing.T) {
	var errw strings.Builder
	if c := Serve(strings.NewReader(""), io.Discard, &errw); c != 2 {
		t.Fatalf("Serve without configuration = %d, want 2", c)
	}
	if !strings.Contains(errw.String(), "started by gracefulinit --nacos-mode register") {
		t.Fatalf("message %q does not say who starts the helper", errw.String())
	}
}

func stringify(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}
