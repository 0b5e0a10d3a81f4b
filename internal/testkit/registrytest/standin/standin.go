// Package standin provides the apps and consumers that registry tests put
// around gracefulinit: real nacos-sdk-go and fargo clients and a Nacos 1.x
// style HTTP client, talking to a real registry (registrytest's Polaris).
// A stand-in app registers an instance the way a Spring Cloud app does; a
// stand-in consumer is the judge of which instances get traffic.
//
// Everything here fails the test it is given (or returns an error); nothing
// logs outside the test.
package standin
