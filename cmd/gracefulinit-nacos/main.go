// Command gracefulinit-nacos runs nacos-sdk-go for gracefulinit's
// --nacos-mode register, as a separate process that gracefulinit (PID 1)
// starts, talks to over its stdin and stdout, and restarts if it dies.
//
// The SDK can panic in goroutines it starts (a login answer without
// tokenTtl) and ends its process with log.Fatalf on bad TLS settings;
// here that ends this helper, not the container's init. It is not meant
// to be run by hand: ship it next to /gracefulinit.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/registry/nacos/nacossdk"
)

// Set by the Makefile through -ldflags -X.
var (
	version = "dev"
	commit  = ""
)

func main() {
	// gracefulinit runs this before the app starts and refuses a helper
	// whose version (the second word) is not its own: keep the format.
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Printf("gracefulinit-nacos %s (commit %s)\n", version, commit)
		return
	}
	// The protocol gets its own descriptor, and fd 1 becomes stderr: the
	// SDK prints to stdout here and there, which must not garble replies.
	fd, err := unix.Dup(1)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gracefulinit-nacos: dup stdout: %v\n", err)
		os.Exit(2)
	}
	if err := unix.Dup2(2, 1); err != nil {
		fmt.Fprintf(os.Stderr, "gracefulinit-nacos: redirect stdout: %v\n", err)
		os.Exit(2)
	}
	unix.CloseOnExec(fd)
	proto := os.NewFile(uintptr(fd), "protocol")
	os.Exit(nacossdk.Serve(os.Stdin, proto, os.Stderr))
}
