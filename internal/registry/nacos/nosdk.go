//go:build nosdk

package nacos

import (
	"errors"
	"log/slog"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/registry"
)

// SDKIncluded reports whether this binary carries nacos-sdk-go (register mode).
const SDKIncluded = false

// errNoSDK is what register mode says in a binary built without the SDK.
var errNoSDK = errors.New("nacos: register mode needs the full build; this binary was built with -tags nosdk")

func newRegister(*config.Config, []server, *slog.Logger) (registry.Registry, error) {
	return nil, errNoSDK
}
