package config

import "github.com/spf13/pflag"

// sectionKey is the flag annotation naming the --help section a flag is
// printed under.
const sectionKey = "gracefulinit/section"

// endSection puts every flag defined so far that has no section yet under
// title: FlagSet calls it after each group, so a flag added to a group
// lands in that group's section.
func endSection(fs *pflag.FlagSet, title string) {
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[sectionKey]; !ok {
			_ = fs.SetAnnotation(f.Name, sectionKey, []string{title})
		}
	})
}

// Section is one heading of --help and of the README's flag table.
type Section struct {
	Title string
	Flags []*pflag.Flag // in definition order
}

// Sections groups fs's flags under their headings, in definition order; a
// flag defined after the last heading goes under "Other".
func Sections(fs *pflag.FlagSet) []Section {
	var out []Section
	index := map[string]int{}
	fs.VisitAll(func(f *pflag.Flag) {
		title := "Other"
		if t := f.Annotations[sectionKey]; len(t) > 0 {
			title = t[0]
		}
		i, ok := index[title]
		if !ok {
			i = len(out)
			index[title] = i
			out = append(out, Section{Title: title})
		}
		out[i].Flags = append(out[i].Flags, f)
	})
	return out
}
