package drain

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TestLimitAddrs: two apps on one port at different loopback addresses, as
// pods sharing a network namespace. Traffic to one must not keep the
// other's drain going.
func TestLimitAddrs(t *testing.T) {
	lnA, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnA.Close() })
	port := lnA.Addr().(*net.TCPAddr).Port
	lnB, err := net.Listen("tcp", "127.0.0.3:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnB.Close() })
	for _, ln := range []net.Listener{lnA, lnB} {
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
			}
		}(ln)
	}

	tests := []struct {
		name       string
		addrs      []netip.Addr
		wantActive bool
	}{
		{"limited to the idle app", []netip.Addr{netip.MustParseAddr("127.0.0.2")}, false},
		{"limited to the busy app", []netip.Addr{netip.MustParseAddr("127.0.0.3")}, true},
		{"IPv4-mapped form matches", []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.3")}, true},
		{"no limit sees both", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWatcher([]int{port})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			w.LimitAddrs(tt.addrs)
			if _, err := w.Sample(); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", lnB.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			s, err := w.Sample()
			if err != nil {
				t.Fatal(err)
			}
			if got := s.New > 0; got != tt.wantActive {
				t.Fatalf("new connections seen = %d, want activity %v", s.New, tt.wantActive)
			}
		})
	}
}
