//go:build deps

package main

// Linked, never called: their package initialisation is what is measured.
import (
	_ "github.com/hudl/fargo"
)
