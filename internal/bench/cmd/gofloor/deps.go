//go:build deps

package main

// Linked, never called: their package initialisation is what is measured.
import (
	_ "github.com/hudl/fargo"
	_ "github.com/nacos-group/nacos-sdk-go/v2/clients"
	_ "github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
)
