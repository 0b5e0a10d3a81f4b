package main

// license is what -l prints, as tini's -l prints tini's license. The
// repository carries no license file yet; this says so rather than
// claiming terms nobody chose.
const license = `gracefulinit is distributed without a license file of its own; its terms
are those of its source repository, github.com/gracefulinit/gracefulinit.
It contains no code from tini (MIT License, Copyright (c) 2015 Thomas Orozco);
it accepts tini's flags. The Go modules it links keep their own licenses
(go version -m shows which are built in).
`
