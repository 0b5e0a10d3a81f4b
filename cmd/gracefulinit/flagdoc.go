package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gracefulinit/gracefulinit/internal/config"
)

// flagTable renders every flag as a markdown table row: the README embeds
// exactly this, and a test fails when the two disagree.
func flagTable(w io.Writer) {
	var cfg config.Config
	fs := config.FlagSet(&cfg, io.Discard)
	fmt.Fprintln(w, "| flag | environment | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|---|")
	fs.VisitAll(func(f *pflag.Flag) {
		name := "`--" + f.Name + "`"
		if f.Shorthand != "" {
			name = "`-" + f.Shorthand + "`, " + name
		}
		def := f.DefValue
		switch def {
		case "", "[]", "0s", "false", "0":
			if f.Value.Type() != "count" && def != "0" {
				def = ""
			}
		}
		if def != "" {
			def = "`" + def + "`"
		}
		_, usage := pflag.UnquoteUsage(f)
		fmt.Fprintf(w, "| %s | `%s` | %s | %s |\n", name, config.EnvName(f.Name), def, strings.ReplaceAll(usage, "|", "\\|"))
	})
}
