package main

import (
	"slices"
	"testing"
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
