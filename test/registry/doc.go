// Package registry holds the end-to-end registry tests: the real
// gracefulinit binary runs as PID 1 of a fresh PID namespace, supervising a
// real JVM (examples/javaapp, which registers itself in Nacos or Eureka the
// way a Spring Cloud app does), against a real Polaris server speaking the
// Nacos and Eureka protocols. Consumers are real clients too: a subscribed
// nacos-sdk-go client and a polling fargo client.
//
// The tests assert what the user sees in production: at SIGTERM consumers
// stop picking the instance while its JVM still serves, the JVM gets its stop
// signal on schedule even when the registry is down or hangs, and a restarted
// app is put back in rotation after readiness.
//
// The package has no non-test code; this file only documents it.
package registry
