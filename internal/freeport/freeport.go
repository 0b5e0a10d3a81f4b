// Package freeport picks TCP ports for servers that tests and benchmarks
// start. Ports come from Low to High-1, below the kernel's ephemeral range
// (32768 and up by default): no client socket, of this process or a test
// running in parallel, can take such a port between the pick and the bind,
// or share it and show up as the server's traffic.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// The range Pick chooses from.
const (
	Low  = 20000
	High = 30000
)

// Free reports whether nothing listens on ip:port right now.
func Free(ip string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Pick returns a port that was free on ip a moment ago, chosen at random
// from Low to High-1.
func Pick(ip string) (int, error) {
	for range 100 {
		if port := Low + rand.IntN(High-Low); Free(ip, port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("freeport: no free port on %s in %d-%d", ip, Low, High-1)
}

// Must is Pick failing t instead of returning an error.
func Must(t testing.TB, ip string) int {
	t.Helper()
	port, err := Pick(ip)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
