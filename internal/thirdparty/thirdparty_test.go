package thirdparty

import (
	"bytes"
	"debug/buildinfo"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/testkit/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.RemoveBuilt()
	os.Exit(code)
}

// The shipped binaries, built as the release builds them: every module the
// linker used has its license in the file, and the file names each one.
func TestReleaseBinariesHaveEveryLicense(t *testing.T) {
	bin := testbin.Binary(t)
	bins := []string{bin, testbin.Helper(t)}
	mods, err := Collect(bins...)
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]bool{}
	for _, b := range bins {
		info, err := buildinfo.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range info.Deps {
			linked[d.Path] = true
		}
	}
	if len(linked) < 10 {
		t.Fatalf("only %d linked modules read from %v: the build info is not what the test expects", len(linked), bins)
	}
	var out bytes.Buffer
	if err := Write(&out, mods); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range mods {
		got[m.Path] = true
		if len(m.Files) == 0 {
			t.Errorf("%s@%s: no license file", m.Path, m.Version)
		}
		for _, f := range m.Files {
			if len(bytes.TrimSpace(f.Text)) == 0 {
				t.Errorf("%s@%s: %s is empty", m.Path, m.Version, f.Name)
			}
		}
		if !strings.Contains(out.String(), "\n"+m.Path+" "+m.Version+"\n") {
			t.Errorf("the written file has no section for %s %s", m.Path, m.Version)
		}
	}
	for p := range linked {
		if !got[p] {
			t.Errorf("%s is linked but not in the license file", p)
		}
	}
	if mods[0].Path != "Go standard library and runtime" || !hasFile(mods[0], "LICENSE") {
		t.Errorf("the Go toolchain's own license comes first; got %s with %d files", mods[0].Path, len(mods[0].Files))
	}
	// Every declaration is still needed: its module is linked and ships no
	// license file of its own (else the entry is stale and must go).
	for p := range declared {
		if !linked[p] {
			t.Errorf("declared[%q]: no longer linked; remove the entry", p)
		}
	}
	for _, m := range mods {
		if _, ok := declared[m.Path]; !ok {
			continue
		}
		own, err := ReadLicenses(m.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(own) > 0 {
			t.Errorf("declared[%q]: the module now ships %s; remove the entry", m.Path, own[0].Name)
		}
	}
}

func hasFile(m Module, name string) bool {
	for _, f := range m.Files {
		if f.Name == name {
			return true
		}
	}
	return false
}

// A linked module without a license file, and not declared, fails the
// whole file, naming the module; one with a notice or a COPYING file
// does not.
func TestMissingLicenseFails(t *testing.T) {
	dir := t.TempDir()
	write := func(mod, name, text string) string {
		d := filepath.Join(dir, mod)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if name != "" {
			if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	none := write("none", "README.md", "MIT, we promise")
	copying := write("copying", "COPYING.LESSER", "LGPL text")
	notice := write("notice", "NOTICE", "notice text")
	licenseTxt := write("licensetxt", "LICENSE.txt", "BSD text")
	tests := []struct {
		name    string
		mods    []Module
		wantErr string
	}{
		{"all licensed", []Module{{Path: "example.com/a", Dir: copying}, {Path: "example.com/b", Dir: notice}, {Path: "example.com/c", Dir: licenseTxt}}, ""},
		{"one without", []Module{{Path: "example.com/a", Dir: copying}, {Path: "example.com/none", Version: "v1.2.3", Dir: none}}, "example.com/none@v1.2.3"},
		{"declared, none shipped", []Module{{Path: "github.com/alibabacloud-go/darabonba-map", Dir: none}}, ""},
		{"missing dir", []Module{{Path: "example.com/gone", Dir: filepath.Join(dir, "gone")}}, "gone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods, err := withLicenses(tc.mods)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range mods {
					if len(m.Files) != 1 {
						t.Errorf("%s: %d files, want 1", m.Path, len(m.Files))
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
			}
		})
	}
}
