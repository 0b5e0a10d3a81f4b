package nacos

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

// TestOnlyTheHelperLinksTheSDK: gracefulinit (PID 1) must not carry
// nacos-sdk-go, whose goroutines can panic and whose TLS set-up calls
// log.Fatalf; gracefulinit-nacos, the helper, must.
func TestOnlyTheHelperLinksTheSDK(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pkg      string
		wantsSDK bool
	}{
		{"./cmd/gracefulinit", false},
		{"./cmd/gracefulinit-nacos", true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "list", "-deps", tt.pkg)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tt.pkg, err)
			}
			links := strings.Contains(string(out), "github.com/nacos-group/nacos-sdk-go")
			if links != tt.wantsSDK {
				t.Fatalf("%s links nacos-sdk-go: %v, want %v", tt.pkg, links, tt.wantsSDK)
			}
		})
	}
}
