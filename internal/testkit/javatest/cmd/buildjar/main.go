// Command buildjar compiles a directory of Java sources into a runnable jar
// with the plain JDK, for the Makefile and scripts:
//
//	go run ./internal/javatest/cmd/buildjar [-main CLASS] SRC_DIR OUT.jar
//	go run ./internal/javatest/cmd/buildjar -cached [-main CLASS] SRC_DIR
//
// Without -main the main class is the one class declaring main. With -cached
// the jar is built into (or found in) the shared test cache and its path is
// printed instead of writing OUT.jar.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gracefulinit/gracefulinit/internal/testkit/javatest"
)

func main() {
	mainClass := flag.String("main", "", "fully qualified main class (default: the one class declaring main)")
	cached := flag.Bool("cached", false, "build into the shared cache and print the jar's path")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: buildjar [-main CLASS] SRC_DIR OUT.jar\n       buildjar -cached [-main CLASS] SRC_DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *cached, *mainClass, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "buildjar:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cached bool, mainClass string, args []string) error {
	if cached {
		if len(args) != 1 {
			return fmt.Errorf("-cached takes exactly one SRC_DIR")
		}
		jar, err := javatest.Cached(ctx, args[0], mainClass)
		if err != nil {
			return err
		}
		fmt.Println(jar)
		return nil
	}
	if len(args) != 2 {
		return fmt.Errorf("want SRC_DIR OUT.jar (see -h)")
	}
	return javatest.Build(ctx, args[0], mainClass, args[1])
}
