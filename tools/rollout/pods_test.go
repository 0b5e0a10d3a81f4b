package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// TestCommandVariants: each gracefulinit variant's flags, before the "--"
// that starts the app's command; gi-look is gi with the app not told.
func TestCommandVariants(t *testing.T) {
	cfg, err := parseFlags([]string{"-preset", "quick"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		variant   string
		want, not []string
	}{
		{"gi", []string{"--drain-ip", "--health-addr"}, []string{"--registry-hold-env=false"}},
		{"gi-look", []string{"--drain-ip", "--health-addr", "--registry-hold-env=false"}, nil},
		{"today", []string{"--drain-ip", "--health-addr"}, []string{"--registry-hold-env=false"}},
		{"fixed", []string{"--drain"}, []string{"--registry-hold-env=false", "--drain-ip"}},
	} {
		for _, reg := range []string{"nacos", nacosGRPC, "eureka"} {
			spec := podSpec{cfg: cfg, variant: c.variant, registry: reg, service: "svc", ip: "127.61.1.1", jar: "app.jar", init: "/bin/gracefulinit"}
			argv := spec.command()
			end := slices.Index(argv, "--")
			if argv[0] != "/bin/gracefulinit" || end < 0 {
				t.Fatalf("%s/%s: %q: want gracefulinit's flags, then -- and the app", reg, c.variant, argv)
			}
			flags := argv[:end]
			for _, f := range c.want {
				if !slices.Contains(flags, f) {
					t.Errorf("%s/%s: no %s in %q", reg, c.variant, f, flags)
				}
			}
			for _, f := range c.not {
				if slices.Contains(flags, f) {
					t.Errorf("%s/%s: %s in %q", reg, c.variant, f, flags)
				}
			}
		}
	}
	if _, err := parseFlags([]string{"-variants", "tini,gi-look"}); err != nil {
		t.Errorf("-variants tini,gi-look: %v", err)
	}
}

// TestToldWeight reads the weight a told app registers with from the
// environment of a real descendant process, as the nacos-grpc pods do.
func TestToldWeight(t *testing.T) {
	for _, c := range []struct {
		env     []string
		want    float64
		wantErr bool
	}{
		{nil, 1, false},
		{[]string{envWeight + "=0"}, 0, false},
		{[]string{envWeight + "=2.5"}, 2.5, false},
		{[]string{envWeight + "=NaN"}, 0, true},
		{[]string{envWeight + "=-1"}, 0, true},
	} {
		// sh (the init's place) starts sleep (the app's) with the
		// variables, and waits for it.
		cmd := exec.Command("sh", "-c", "env \"$@\" sleep 30; :", "sh")
		cmd.Args = append(cmd.Args, c.env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		w, err := toldWeight(ctx, cmd.Process.Pid, "sleep")
		cancel()
		if (err != nil) != c.wantErr || err == nil && w != c.want {
			t.Errorf("%q: weight %v, error %v; want %v (error %t)", c.env, w, err, c.want, c.wantErr)
		}
		_ = cmd.Process.Kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := toldWeight(ctx, os.Getpid(), "no-such-process-name"); err == nil {
		t.Errorf("no such descendant: no error")
	}
}

func TestEnvironValue(t *testing.T) {
	env := []byte("A=1\x00" + envWeight + "=0\x00B=x=y\x00")
	for _, c := range []struct {
		key, want string
		ok        bool
	}{{envWeight, "0", true}, {"B", "x=y", true}, {"C", "", false}, {"A=1", "", false}} {
		if v, ok := environValue(env, c.key); v != c.want || ok != c.ok {
			t.Errorf("%s: %q %t, want %q %t", c.key, v, ok, c.want, c.ok)
		}
	}
}
