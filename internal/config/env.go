package config

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/spf13/pflag"
)

// actionFlags do something else than run the app. They are never read
// from the environment: GRACEFULINIT_VERSION=v1.0.0, the way tini's README
// pins its download (ENV TINI_VERSION), or a leftover _CHECK=1 must not
// stop the app from running.
var actionFlags = []string{"help", "version", "license", "check"}

// listTypes are the flag kinds that hold a list: their variables take
// entries separated by commas or newlines (a YAML block scalar).
// stringArray (the HTTP hooks) takes one entry per line only, since a body
// may hold commas.
var listTypes = []string{"stringSlice", "intSlice", "ipSlice", "stringToString"}

// envValues turns variable name's value into what is given to the flag's
// Set: one value, or for a list one value per line, joined by commas for
// the kinds that split on commas themselves. A value holding a control
// character (a newline in a single value, an escape sequence) is refused
// with one line naming the variable and the character, never echoing it:
// printed, it could forge a log line.
func envValues(name, kind, v string) ([]string, error) {
	var entries []string
	switch {
	case kind == "stringArray" || slices.Contains(listTypes, kind):
		for _, l := range strings.Split(v, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				entries = append(entries, l)
			}
		}
	default:
		// A trailing newline is what a ConfigMap's block scalar leaves.
		if l := strings.TrimRight(v, "\r\n"); l != "" {
			entries = []string{l}
		}
	}
	for _, e := range entries {
		if i, r, ok := controlChar(e, kind == "stringArray"); ok {
			what := fmt.Sprintf("a control character (%U) at byte %d", r, i)
			fix := "remove it"
			if r == '\n' || r == '\r' {
				what, fix = "a line break", "it takes one value; lists take one entry per line or comma"
			}
			return nil, fmt.Errorf("%s holds %s: %s", name, what, fix)
		}
	}
	if slices.Contains(listTypes, kind) && len(entries) > 1 {
		return []string{strings.Join(entries, ",")}, nil
	}
	return entries, nil
}

// controlChar finds the first control character in s (a tab is allowed
// where allowTab: an HTTP body may hold one).
func controlChar(s string, allowTab bool) (int, rune, bool) {
	for i, r := range s {
		if unicode.IsControl(r) && !(allowTab && r == '\t') {
			return i, r, true
		}
	}
	return 0, 0, false
}

// UnknownEnv returns the GRACEFULINIT_* variables of environ (as
// os.Environ) that set nothing: misspelt, or an action flag's, which only
// the command line gives. gracefulinit warns of them and runs on.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	FlagSet(&Config{}, nil).VisitAll(func(f *pflag.Flag) {
		if !slices.Contains(actionFlags, f.Name) {
			known[EnvName(f.Name)] = true
		}
	})
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && !known[name] {
			out = append(out, quoteName(name))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// quoteName prints a variable's name as is, unless it holds bytes that
// could forge a log line.
func quoteName(name string) string {
	if _, _, bad := controlChar(name, false); bad {
		return fmt.Sprintf("%q", name)
	}
	return name
}

// FromEnv reports whether the named flag is read from its variable:
// every flag but the actions.
func FromEnv(flag string) bool { return !slices.Contains(actionFlags, flag) }
