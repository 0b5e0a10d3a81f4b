// Package freeport picks TCP ports for servers that tests and benchmarks
// start. Ports come from Low to High-1, below the kernel's ephemeral range
// (32768 and up by default): no client socket, of this process or a test
// running in parallel, can take such a port between the pick and the bind,
// or share it and show up as the server's traffic.
//
// A port is also reserved across processes (go test runs packages in
// parallel, each its own process): a lock file per port, held by the
// process that picked it, and a check that nothing listens on that port on
// any address. Without both, one package's server on 127.0.0.1:P and
// another's on [::1]:P could coexist, and a drain, which watches a port on
// every address, would count the other's connections.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
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

// lockDir holds one lock file per reserved port, shared by every process of
// the user on the machine.
func lockDir() string { return filepath.Join(os.TempDir(), "gracefulinit-freeport") }

// Reserve claims port for the calling process until release is called (or
// the process exits): it takes the port's lock file, which no other
// Reserve, in this process or another, can take meanwhile, and checks that
// nothing listens on the port on any address, IPv4 or IPv6. It reports
// false, holding nothing, when either fails.
func Reserve(port int) (release func(), ok bool) {
	if err := os.MkdirAll(lockDir(), 0o755); err != nil {
		return nil, false
	}
	f, err := os.OpenFile(filepath.Join(lockDir(), strconv.Itoa(port)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		f.Close()
		return nil, false
	}
	// ":port" is the dual-stack wildcard: it cannot be bound while any
	// address listens on the port, in either family.
	if !Free("", port) {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// Pick returns a port, chosen at random from Low to High-1, that was free
// on every address a moment ago and stays reserved (see Reserve) until the
// process exits.
func Pick(ip string) (int, error) {
	port, _, err := pick(ip)
	return port, err
}

func pick(ip string) (int, func(), error) {
	for range 100 {
		port := Low + rand.IntN(High-Low)
		release, ok := Reserve(port)
		if !ok {
			continue
		}
		if Free(ip, port) {
			return port, release, nil
		}
		release()
	}
	return 0, nil, fmt.Errorf("freeport: no free port on %s in %d-%d", ip, Low, High-1)
}

// Must is Pick failing t instead of returning an error; the reservation
// ends with t.
func Must(t testing.TB, ip string) int {
	t.Helper()
	port, release, err := pick(ip)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return port
}
