package main

import (
	"fmt"
	"io"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/supervisor"
)

func check(cfg *config.Config, hooks supervisor.Hooks, w io.Writer) int {
	fmt.Fprintln(w, "check: not implemented yet")
	return 1
}
