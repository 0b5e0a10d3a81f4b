package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/health"
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

// --check said "all checks passed" when --health-addr was taken; start-up
// then failed. A port served by a running gracefulinit's health server
// (--check run inside the container) is no problem.
func TestCheckHealthAddr(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	ours, err := health.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ours.Serve()
	t.Cleanup(func() { ours.Close(context.Background()) })
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	for _, tc := range []struct {
		name, addr string
		code       int
		want       string
	}{
		{"taken", taken.Addr().String(), 1, "PROBLEM: --health-addr " + taken.Addr().String()},
		{"served by gracefulinit", ours.Addr().String(), 0, "served by a running gracefulinit"},
		{"free", freeAddr, 0, "health address " + freeAddr + " is free"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"--check", "--health-addr", tc.addr, "--", "app"}, lookupIn(), &out, &errb)
			all := out.String() + errb.String()
			if code != tc.code || !strings.Contains(all, tc.want) || (code != 0) == strings.Contains(all, "all checks passed") {
				t.Fatalf("exit %d, want %d and %q:\n%s", code, tc.code, tc.want, all)
			}
		})
	}
}

// A misspelt variable is named by --check (and by a WARN at start), never
// refused.
func TestCheckNamesUnknownVariables(t *testing.T) {
	t.Setenv("GRACEFULINIT_DRAN", "3s")
	t.Setenv("GRACEFULINIT_VERSION", "v1.0.0")
	var out, errb bytes.Buffer
	code := run([]string{"--check", "--", "app"}, lookupIn(), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "set nothing") || !strings.Contains(out.String(), "GRACEFULINIT_DRAN, GRACEFULINIT_VERSION") ||
		!strings.Contains(errb.String(), "level=WARN") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
}
