// Package javaapp holds App.java, the example Spring-Boot-like service that
// the rollout harness and the container example run under gracefulinit (see
// README.md). The Go code here only tests it against a real JVM and a real
// Polaris registry server.
package javaapp
