// Command sizemain is the smallest program that links the nacos registry,
// built by TestBuildVariants with and without -tags nosdk to measure what
// the SDK costs and to run the nosdk binary's register mode.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/registry/nacos"
)

func main() {
	mode := "mark"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	cfg := &config.Config{
		Service: "svc",
		IP:      "10.0.0.1",
		Ports:   []int{8080},
		Nacos:   config.Nacos{Addrs: []string{"http://127.0.0.1:8848"}, Mode: mode, Weight: 1},
	}
	r, err := nacos.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(r.Name(), mode, "sdk:", nacos.SDKIncluded)
	if len(os.Args) > 2 && os.Args[2] == "wait" {
		// Idle until stdin closes, so the caller can read our RSS.
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
}
