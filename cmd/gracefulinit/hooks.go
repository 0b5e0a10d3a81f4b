package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/config"
	"github.com/gracefulinit/gracefulinit/internal/supervisor"
)

// buildHooks turns the registry settings into the supervisor's hooks, and
// returns the bound for closing them.
func buildHooks(cfg *config.Config, log *slog.Logger) (supervisor.Hooks, time.Duration, error) {
	if !cfg.HasRegistry() {
		return supervisor.NoHooks{}, cfg.RegistryTimeout, nil
	}
	return nil, 0, errors.New("registries are not wired in yet")
}
