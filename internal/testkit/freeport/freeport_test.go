package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPick(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "127.77.1.2"} {
		t.Run(ip, func(t *testing.T) {
			port := Must(t, ip)
			if port < Low || port >= High {
				t.Fatalf("port %d outside %d-%d", port, Low, High-1)
			}
			if !Free(ip, port) {
				t.Fatalf("picked port %d is not free", port)
			}
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if Free(ip, port) {
				t.Fatalf("port %d reported free while listened on", port)
			}
		})
	}
}

// A port that some server listens on at one address is not handed out for
// another address, and a reserved port is not reserved twice: a drain test
// on [::1]:P then never sees another package's server on 127.0.0.1:P. Once
// the holder is gone, the port can be reserved again.
func TestReserve(t *testing.T) {
	tests := []struct {
		name   string
		listen string // the address a server holds the port on; "" for another Reserve
	}{
		{"IPv4 server", "127.0.0.1"},
		{"IPv6 server", "::1"},
		{"other loopback address", "127.0.0.9"},
		{"reserved", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var port int
			var undo func()
			if tt.listen == "" {
				// A second Reserve in this process opens the lock file
				// again, as another process would, and must fail.
				port = pickUnreserved(t)
				r, ok := Reserve(port)
				if !ok {
					t.Fatalf("Reserve(%d) failed on a free port", port)
				}
				undo = r
			} else {
				l := listenOn(t, tt.listen)
				port = l.Addr().(*net.TCPAddr).Port
				undo = func() { l.Close() }
			}
			if r, ok := Reserve(port); ok {
				r()
				t.Fatalf("Reserve(%d) succeeded while %q holds it", port, tt.listen)
			}
			undo()
			r, ok := Reserve(port)
			if !ok {
				t.Fatalf("Reserve(%d) failed once %q let it go", port, tt.listen)
			}
			r()
		})
	}
}

// listenOn listens on ip at a port of the range that no Reserve holds.
func listenOn(t *testing.T, ip string) net.Listener {
	t.Helper()
	for range 100 {
		port := pickUnreserved(t)
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err == nil {
			t.Cleanup(func() { l.Close() })
			return l
		}
	}
	t.Fatalf("cannot listen on %s", ip)
	return nil
}

// pickUnreserved returns a port of the range that is free and unreserved
// right now, without holding it.
func pickUnreserved(t *testing.T) int {
	t.Helper()
	port, release, err := pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	release()
	return port
}
