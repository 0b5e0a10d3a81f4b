package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's flag table")

const (
	beginMark = "<!-- flags:begin (generated: go test ./cmd/gracefulinit -run TestREADMEFlags -update) -->\n"
	endMark   = "<!-- flags:end -->"
)

// TestREADMEFlags fails when the README's flag table and --help disagree.
func TestREADMEFlags(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the flag table markers %q ... %q", beginMark, endMark)
	}
	var want bytes.Buffer
	flagTable(&want)
	got := s[i+len(beginMark) : j]
	if got == want.String() {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i+len(beginMark)]+want.String()+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md flag table is out of date with --help; run: go test ./cmd/gracefulinit -run TestREADMEFlags -update\nwant:\n%s", want.String())
}

// TestHelpListsEveryFlag checks --help shows each flag the table documents.
func TestHelpListsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, func(string) (string, bool) { return "", false }, &out, &errOut); code != 0 {
		t.Fatalf("--help exited %d: %s", code, errOut.String())
	}
	var table bytes.Buffer
	flagTable(&table)
	rows := 0
	for _, line := range strings.Split(table.String(), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue // headings, blank lines, table headers
		}
		rows++
		name := strings.Trim(strings.Split(strings.Split(line, "|")[1], "`--")[1], "` ")
		if !strings.Contains(out.String(), "--"+name) {
			t.Errorf("--help does not mention --%s", name)
		}
	}
	if rows < 50 {
		t.Errorf("the table has %d flag rows, want every flag", rows)
	}
}

// --help prints every flag once, under its section's heading, in the
// sections' order, and says a default once (--drain's usage explains its
// own: pflag added "(default 0s)" after it).
func TestHelpSections(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, func(string) (string, bool) { return "", false }, &out, &errOut); code != 0 {
		t.Fatalf("--help exited %d: %s", code, errOut.String())
	}
	help := out.String()
	want := []string{"Core (as tini)", "Shutdown timeline and drain", "Readiness", "Registries", "Nacos", "Eureka"}
	var got []string
	section := map[string]string{} // flag -> heading it was printed under
	cur := ""
	for _, line := range strings.Split(help, "\n") {
		if title, ok := strings.CutSuffix(line, ":"); ok && !strings.HasPrefix(line, " ") && line != "" {
			got = append(got, title)
			cur = title
			continue
		}
		if f := strings.Fields(line); cur != "" && len(f) > 0 {
			name := f[0]
			if !strings.HasPrefix(name, "--") && len(f) > 1 {
				name = f[1]
			}
			if _, dup := section[name]; dup {
				t.Errorf("%s printed twice", name)
			}
			section[name] = cur
		}
	}
	for i, w := range want {
		if i >= len(got) || got[i] != w {
			t.Fatalf("sections %q, want them to start %q", got, want)
		}
	}
	for flag, title := range map[string]string{
		"--subreaper": "Core (as tini)", "--grace-period": "Shutdown timeline and drain", "--drain": "Shutdown timeline and drain",
		"--ready-http": "Readiness", "--registry": "Registries", "--nacos-addr": "Nacos", "--nacos-helper": "Nacos",
		"--eureka-url": "Eureka", "--eureka-metadata": "Eureka",
	} {
		if section[flag] != title {
			t.Errorf("%s under %q, want %q", flag, section[flag], title)
		}
	}
	for _, line := range strings.Split(help, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "--drain" {
			if n := strings.Count(line, "(default"); n != 1 {
				t.Errorf("--drain states its default %d times: %q", n, line)
			}
		}
	}
}
