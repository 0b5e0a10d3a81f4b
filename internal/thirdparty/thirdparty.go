// Package thirdparty collects the license files of every module linked into
// Go binaries, from the binaries' own build information and the module
// cache: the list is what the linker used, never kept by hand.
package thirdparty

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/gracefulinit/gracefulinit"
)

// Module is one linked module and its license files.
type Module struct {
	Path, Version string
	Dir           string   // where its files were read
	LinkedInto    []string // base names of the binaries that link it
	Files         []File
}

// File is one license, copying or notice file of a module.
type File struct {
	Name string
	Text []byte
}

// licenseName matches the file names a module's terms are kept in, at its
// root: LICENSE, LICENCE, COPYING, NOTICE, PATENTS, with any suffix
// (LICENSE.txt, LICENSE-MIT, COPYING.LESSER).
var licenseName = regexp.MustCompile(`(?i)^(licen[cs]e|copying|notice|patents)([._-].*)?$`)

// Collect reads the build information of each binary and returns the Go
// toolchain (its standard library and runtime are linked into every
// binary) followed by every dependency module, sorted by path, with its
// license files. It returns an error naming every module it found no
// license file for, so a release cannot ship without one.
func Collect(binaries ...string) ([]Module, error) {
	type key struct{ path, version string }
	mods := map[key]*Module{}
	var goVersion string
	for _, bin := range binaries {
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			return nil, fmt.Errorf("thirdparty: %s: %w", bin, err)
		}
		goVersion = info.GoVersion
		for _, d := range info.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			if d.Version == "" {
				return nil, fmt.Errorf("thirdparty: %s links %s from a local directory: its license cannot be read from the module cache", bin, d.Path)
			}
			k := key{d.Path, d.Version}
			m := mods[k]
			if m == nil {
				m = &Module{Path: d.Path, Version: d.Version}
				mods[k] = m
			}
			m.LinkedInto = append(m.LinkedInto, filepath.Base(bin))
		}
	}
	list := make([]*Module, 0, len(mods))
	for _, m := range mods {
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	if err := moduleDirs(list); err != nil {
		return nil, err
	}
	goroot, err := goEnv("GOROOT")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(binaries))
	for i, b := range binaries {
		names[i] = filepath.Base(b)
	}
	out := []Module{{Path: "Go standard library and runtime", Version: goVersion, Dir: goroot, LinkedInto: names}}
	for _, m := range list {
		out = append(out, *m)
	}
	return withLicenses(out)
}

// withLicenses reads each module's license files from its Dir, or its
// declaration when it ships none, and fails naming every module left
// without one.
func withLicenses(mods []Module) ([]Module, error) {
	var missing []string
	for i := range mods {
		files, err := ReadLicenses(mods[i].Dir)
		if err != nil {
			return nil, err
		}
		if d, ok := declared[mods[i].Path]; ok && len(files) == 0 {
			files = []File{d.file()}
		}
		if len(files) == 0 {
			missing = append(missing, fmt.Sprintf("%s@%s (in %s)", mods[i].Path, mods[i].Version, mods[i].Dir))
		}
		mods[i].Files = files
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("thirdparty: no LICENSE, COPYING or NOTICE file for %d linked module(s): %s", len(missing), strings.Join(missing, ", "))
	}
	return mods, nil
}

// ReadLicenses returns the license files at the root of dir, sorted by name.
func ReadLicenses(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("thirdparty: %w", err)
	}
	var files []File
	for _, e := range entries {
		if !e.Type().IsRegular() || !licenseName.MatchString(e.Name()) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("thirdparty: %w", err)
		}
		files = append(files, File{Name: e.Name(), Text: text})
	}
	return files, nil
}

// file is what the license file says for a module that ships none: where
// its license is declared, then the license's text.
func (d declaration) file() File {
	text := fmt.Sprintf("This module carries no license file. It is licensed under %s, as %s states:\n%s\n\n",
		d.License, d.Source, d.Copyright)
	if d.License == "Apache-2.0" {
		text += gracefulinit.License
	}
	return File{Name: "declared license", Text: []byte(text)}
}

// moduleDirs finds each module in the module cache with go mod download,
// which reads the cache first and fetches only what is missing there.
func moduleDirs(mods []*Module) error {
	if len(mods) == 0 {
		return nil
	}
	args := []string{"mod", "download", "-json"}
	for _, m := range mods {
		args = append(args, m.Path+"@"+m.Version)
	}
	cmd := exec.Command("go", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	dirs := map[string]string{}
	var failed []string
	dec := json.NewDecoder(&stdout)
	for {
		var r struct{ Path, Version, Dir, Error string }
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("thirdparty: go mod download: %v\n%s", err, stderr.Bytes())
		}
		if r.Error != "" {
			failed = append(failed, r.Error)
		}
		dirs[r.Path+"@"+r.Version] = r.Dir
	}
	if len(failed) > 0 {
		return fmt.Errorf("thirdparty: go mod download: %s", strings.Join(failed, "; "))
	}
	for _, m := range mods {
		m.Dir = dirs[m.Path+"@"+m.Version]
		if m.Dir == "" {
			return fmt.Errorf("thirdparty: go mod download did not report %s@%s (%v)\n%s", m.Path, m.Version, runErr, stderr.Bytes())
		}
	}
	return nil
}

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("thirdparty: go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Write prints mods as one text file: for each module a header naming it,
// its version and the binaries that link it, then each license file whole.
func Write(w io.Writer, mods []Module) error {
	var b bytes.Buffer
	b.WriteString("Third-party software linked into the gracefulinit binaries, with the\n")
	b.WriteString("license files each module ships (generated from the binaries' build\n")
	b.WriteString("information by internal/thirdparty).\n")
	for _, m := range mods {
		fmt.Fprintf(&b, "\n%s\n%s %s\nLinked into: %s\n", strings.Repeat("=", 78), m.Path, m.Version, strings.Join(m.LinkedInto, ", "))
		for _, f := range m.Files {
			fmt.Fprintf(&b, "\n---- %s ----\n\n", f.Name)
			b.Write(f.Text)
			if !bytes.HasSuffix(f.Text, []byte("\n")) {
				b.WriteByte('\n')
			}
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
