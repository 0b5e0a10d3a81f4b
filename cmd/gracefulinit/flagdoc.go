package main

import (
	"cmp"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gracefulinit/gracefulinit/internal/config"
)

// flagDoc is one flag as --help and the README's table show it.
type flagDoc struct {
	name  string // "-s, --subreaper" or "--grace-period"
	arg   string // what the flag takes ("duration", "CODE"); "" for switches
	env   string
	def   string // "" when the default is a zero value or the usage states it
	usage string
}

func docOf(f *pflag.Flag) flagDoc {
	d := flagDoc{name: "--" + f.Name}
	if config.FromEnv(f.Name) {
		d.env = "`" + config.EnvName(f.Name) + "`"
	}
	if f.Shorthand != "" {
		d.name = "-" + f.Shorthand + ", " + d.name
	}
	d.arg, d.usage = pflag.UnquoteUsage(f)
	switch f.Value.Type() {
	case "bool", "count":
		d.arg = ""
	}
	switch f.DefValue {
	case "", "[]", "0s", "false", "0", "map[]", "<nil>":
		// A zero value goes without saying.
	default:
		d.def = f.DefValue
	}
	// A usage that explains its default ("default 0; the whole drain
	// budget with a registry") says it once.
	if strings.Contains(d.usage, "(default ") {
		d.def = ""
	}
	return d
}

// flagSections are the flags under their --help headings.
func flagSections() []config.Section {
	var cfg config.Config
	return config.Sections(config.FlagSet(&cfg, io.Discard))
}

// flagHelp prints every flag under its section heading, for --help.
func flagHelp(w io.Writer) {
	width := 0
	for _, s := range flagSections() {
		for _, f := range s.Flags {
			d := docOf(f)
			width = max(width, len(helpName(d)))
		}
	}
	for _, s := range flagSections() {
		fmt.Fprintf(w, "\n%s:\n", s.Title)
		for _, f := range s.Flags {
			d := docOf(f)
			line := d.usage
			if d.def != "" {
				line += " (default " + d.def + ")"
			}
			fmt.Fprintf(w, "  %-*s  %s\n", width, helpName(d), line)
		}
	}
}

// helpName is the flag's name and argument, long names lined up after the
// short ones, as pflag prints them.
func helpName(d flagDoc) string {
	n := d.name
	if strings.HasPrefix(n, "--") {
		n = "    " + n
	}
	if d.arg != "" {
		n += " " + d.arg
	}
	return n
}

// flagTable renders every flag as markdown table rows under the same
// headings as --help: the README embeds exactly this, and a test fails when
// the two disagree.
func flagTable(w io.Writer) {
	for i, s := range flagSections() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "**%s**\n\n", s.Title)
		fmt.Fprintln(w, "| flag | environment | default | meaning |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, f := range s.Flags {
			d := docOf(f)
			def := d.def
			if def != "" {
				def = "`" + def + "`"
			}
			name := "`" + strings.ReplaceAll(d.name, ", ", "`, `") + "`"
			env := cmp.Or(d.env, "(command line only)")
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, env, def, strings.ReplaceAll(d.usage, "|", "\\|"))
		}
	}
}
