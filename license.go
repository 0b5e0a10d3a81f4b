// Package gracefulinit carries the project's license text, embedded from
// LICENSE so the binary's -l and the third-party license file print the
// very file the repository ships.
package gracefulinit

import _ "embed"

// License is the Apache License 2.0, the text of LICENSE.
//
//go:embed LICENSE
var License string
