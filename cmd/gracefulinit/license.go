package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/gracefulinit/gracefulinit"
)

// licenseText is what -l prints, as tini's -l prints tini's license:
// gracefulinit's license (the repository's LICENSE, embedded), then the
// modules this very binary links, read from its build information, whose
// license texts ship beside it.
func licenseText() string {
	var b strings.Builder
	b.WriteString("gracefulinit is licensed under the Apache License, Version 2.0:\n\n")
	b.WriteString(gracefulinit.License)
	b.WriteString("\ngracefulinit contains no code from tini (MIT License, Copyright (c) 2015\n")
	b.WriteString("Thomas Orozco); it accepts tini's flags.\n\n")
	b.WriteString("This binary links the Go standard library and runtime (" + runtime.Version() + ", BSD-3-Clause)")
	info, ok := debug.ReadBuildInfo()
	if ok && len(info.Deps) > 0 {
		b.WriteString(" and these modules,\neach under its own license")
	}
	b.WriteString(". Their license texts are in THIRD_PARTY_LICENSES,\n")
	b.WriteString("beside the release binaries and at /THIRD_PARTY_LICENSES in the image.\n")
	if ok {
		for _, d := range info.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			fmt.Fprintf(&b, "  %s %s\n", d.Path, d.Version)
		}
	}
	return b.String()
}
