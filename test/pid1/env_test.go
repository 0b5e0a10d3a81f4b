package pid1_test

import (
	"strings"
	"testing"
)

var pid1Mode = mode{"pid1", true}

// TestEnvActionVariablesNeverStopTheApp: GRACEFULINIT_VERSION=v1.0.0 (an
// image pinning its download, as tini's README does with TINI_VERSION)
// made gracefulinit exit 1 without running the app; _VERSION=1, _LICENSE=1
// and _CHECK=1 exited 0 without it. The app runs, and one WARN names the
// variable.
func TestEnvActionVariablesNeverStopTheApp(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{"GRACEFULINIT_VERSION=v1.0.0", "GRACEFULINIT_VERSION=1", "GRACEFULINIT_LICENSE=1", "GRACEFULINIT_CHECK=1", "GRACEFULINIT_DRAN=3s"} {
		t.Run(kv, func(t *testing.T) {
			t.Parallel()
			res := mustRun(t, pid1Mode, []string{kv}, "--", "sh", "-c", "echo app-ran; exit 7")
			if res.code != 7 || !strings.Contains(res.stdout, "app-ran") {
				t.Fatalf("%s: exit %d, stdout %q, stderr %q; want the app run (exit 7)", kv, res.code, res.stdout, res.stderr)
			}
			name, _, _ := strings.Cut(kv, "=")
			var warns []string
			for _, l := range lines(res.stderr) {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, name) {
					warns = append(warns, l)
				}
			}
			if len(warns) != 1 {
				t.Fatalf("%s: want one WARN line naming it, got %q (stderr %q)", kv, warns, res.stderr)
			}
		})
	}
}

// TestEnvListsSplitOnNewlines: a list variable split on newlines (a YAML
// block scalar) kept only its first entry, silently.
func TestEnvListsSplitOnNewlines(t *testing.T) {
	t.Parallel()
	res := mustRun(t, pid1Mode, []string{
		"GRACEFULINIT_DRAIN_IGNORE=10.0.0.0/8\n192.168.0.0/16\n",
		"GRACEFULINIT_NACOS_ADDR=http://127.0.0.1:1\nhttp://127.0.0.1:2",
	}, "--check", "--registry", "nacos", "--service", "s", "--ip", "10.0.0.1", "--port", "8080", "--registry-timeout", "1s", "--", "app")
	for _, want := range []string{"left out: 10.0.0.0/8, 192.168.0.0/16", "nacos http://127.0.0.1:1", "nacos http://127.0.0.1:2"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("--check lacks %q:\n%s", want, res.stdout)
		}
	}
}

// TestEnvControlCharacters: a newline in a single value is refused with
// one line naming the variable, and the app never starts; --check quotes
// a command-line value holding one instead of printing a forged line.
func TestEnvControlCharacters(t *testing.T) {
	t.Parallel()
	res := mustRun(t, pid1Mode, []string{"GRACEFULINIT_SERVICE=orders\nlevel=INFO msg=forged"}, "--", "sh", "-c", "echo app-ran")
	if res.code == 0 || strings.Contains(res.stdout, "app-ran") || strings.Contains(res.stderr, "forged") ||
		!strings.Contains(lines(res.stderr)[0], "GRACEFULINIT_SERVICE holds a line break") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want a one-line refusal naming the variable", res.code, res.stdout, res.stderr)
	}
	res = mustRun(t, pid1Mode, nil, "--check", "--service", "orders\nlevel=INFO msg=forged", "--", "app")
	for _, l := range lines(res.stdout) {
		if strings.HasPrefix(l, "level=INFO msg=forged") {
			t.Fatalf("--check printed a raw newline from a value:\n%s", res.stdout)
		}
	}
	if !strings.Contains(res.stdout, `"orders\nlevel=INFO msg=forged"`) {
		t.Fatalf("--check does not show the value quoted:\n%s", res.stdout)
	}
}
