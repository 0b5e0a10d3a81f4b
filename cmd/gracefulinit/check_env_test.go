package main

import (
	"bytes"
	"strings"
	"testing"
)

// A hook's JSON body holding a password was printed as is by --check: the
// flag's value is CSV-quoted, which hid the "password" field from the
// redactor. From the command line and from the variable alike.
func TestCheckRedactsHookBodies(t *testing.T) {
	const body = `{"username":"nacos","password":"S3CRETPW1","apiKey":"S3CRETPW2"}`
	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flags", []string{"--offline-http", "POST http://127.0.0.1:8080/off " + body, "--online-http", "PUT http://127.0.0.1:8080/on " + body}, nil},
		{"env", nil, []string{"GRACEFULINIT_OFFLINE_HTTP", "POST http://127.0.0.1:8080/off " + body + "\nGET http://127.0.0.1:8080/b",
			"GRACEFULINIT_ONLINE_HTTP", "PUT http://127.0.0.1:8080/on " + body}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append(append([]string{"--check", "--port", "8080"}, tc.args...), "--", "app")
			code := run(args, lookupIn(tc.env...), &out, &errb)
			all := out.String() + errb.String()
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, all)
			}
			if strings.Contains(all, "S3CRET") {
				t.Fatalf("a password in a hook body leaked:\n%s", all)
			}
			if !strings.Contains(all, `"password":"xxxxx"`) || !strings.Contains(all, "POST http://127.0.0.1:8080/off") {
				t.Fatalf("want the hook shown with its password masked:\n%s", all)
			}
		})
	}
}
