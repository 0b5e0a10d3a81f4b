// Command bench measures gracefulinit against tini-static, dumb-init and
// catatonit on this machine and prints one markdown table per section;
// `make bench` runs it after building bin/gracefulinit. The full report also goes to bin/bench.json and
// bin/bench.md.
//
//	go -C tools run ./bench/cmd/bench [-quick] [-json bin/bench.json] [-md bin/bench.md]
//
// Relative paths are taken from the repository's root, wherever it runs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
	"github.com/gracefulinit/gracefulinit/tools/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg := bench.DefaultConfig()
	flag.BoolVar(&cfg.Quick, "quick", false, "small samples: a smoke run of every section in well under a minute")
	flag.StringVar(&cfg.Gracefulinit, "gracefulinit", cfg.Gracefulinit, "the gracefulinit build")
	flag.StringVar(&cfg.TiniStatic, "tini-static", cfg.TiniStatic, "tini-static, the reference")
	flag.StringVar(&cfg.DumbInit, "dumb-init", cfg.DumbInit, "dumb-init")
	flag.StringVar(&cfg.Catatonit, "catatonit", cfg.Catatonit, "catatonit")
	jsonPath := flag.String("json", "bin/bench.json", "write the report as JSON here (empty: don't)")
	mdPath := flag.String("md", "bin/bench.md", "also write the markdown here (empty: don't)")
	only := flag.String("only", "", "comma list of sections to run: idle_rss,startup,signals,reaping,sigterm_to_exit,drain (default all)")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after this long")
	flag.Parse()
	cfg.Log = os.Stderr
	root, err := repo.Root()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	for _, p := range []*string{&cfg.Gracefulinit, jsonPath, mdPath} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	if *only != "" {
		cfg.Sections = strings.Split(*only, ",")
	}

	// Ctrl-C or a SIGTERM cancels the run; Run still kills and reaps
	// everything it started before returning.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	start := time.Now()
	rep, err := bench.Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	rep.WriteMarkdown(os.Stdout)
	if *mdPath != "" {
		if err := writeFile(*mdPath, func(f *os.File) error { rep.WriteMarkdown(f); return nil }); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	}
	if *jsonPath != "" {
		if err := writeFile(*jsonPath, func(f *os.File) error {
			enc := json.NewEncoder(f)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(os.Stderr, "bench: done in %s; wrote %s %s\n", time.Since(start).Round(time.Second), *jsonPath, *mdPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d section(s) had errors, see the report\n", len(rep.Errors))
		return 1
	}
	return 0
}

func writeFile(path string, fill func(*os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
