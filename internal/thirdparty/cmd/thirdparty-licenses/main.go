// Command thirdparty-licenses writes the license files of every module
// linked into the given Go binaries to one file, for the release and the
// image to ship beside them:
//
//	go run ./internal/thirdparty/cmd/thirdparty-licenses -o dist/THIRD_PARTY_LICENSES dist/gracefulinit-*
//
// It fails, writing nothing, when a linked module has no license file.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/gracefulinit/gracefulinit/internal/thirdparty"
)

func main() {
	out := flag.String("o", "THIRD_PARTY_LICENSES", "file to write")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "thirdparty-licenses: name at least one Go binary: thirdparty-licenses -o FILE BINARY...")
		os.Exit(2)
	}
	mods, err := thirdparty.Collect(flag.Args()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var b bytes.Buffer
	if err := thirdparty.Write(&b, mods); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "thirdparty-licenses:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "thirdparty-licenses: %d modules into %s\n", len(mods), *out)
}
