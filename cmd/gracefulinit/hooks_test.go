package main

import (
	"io"
	"os"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/config"
)

// The Eureka instance id nobody set is Spring Cloud's hostname:service:port,
// worked out by the backend when the configuration resolves its options.
func TestEurekaInstanceIDDefault(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, host + ":orders:8080"},
		{"explicit", []string{"--eureka-instance-id", "10.0.0.9:8080"}, "10.0.0.9:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--registry", "eureka", "--eureka-url", "http://user:pw@eureka:8761/eureka/", "--service", "orders", "--port", "8080", "--ip", "10.0.0.9"}, tt.args...)
			cfg, err := config.Parse(append(args, "--", "x"), lookupIn(), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Eureka.InstanceID; got != tt.want {
				t.Fatalf("instance id %q, want %q", got, tt.want)
			}
		})
	}
}
