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
	for _, line := range strings.Split(table.String(), "\n")[2:] {
		if line == "" {
			continue
		}
		name := strings.Trim(strings.Split(strings.Split(line, "|")[1], "`--")[1], "` ")
		if !strings.Contains(out.String(), "--"+name) {
			t.Errorf("--help does not mention --%s", name)
		}
	}
}
