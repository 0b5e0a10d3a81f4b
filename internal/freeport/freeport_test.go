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
