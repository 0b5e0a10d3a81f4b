package supervisor

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/registry"
)

func TestOfflineOutcome(t *testing.T) {
	notFound := fmt.Errorf("nacos: no instance 10.0.0.5:8080 in DEFAULT_GROUP@@orders: %w", registry.ErrNotFound)
	down := errors.New("eureka: connection refused")
	tests := []struct {
		name     string
		res      *offlineResult
		started  bool
		want     string
		wantTook string
	}{
		{"no offline step", nil, false, "none", "-"},
		{"still running at exit", nil, true, "unfinished", "-"},
		{"done", &offlineResult{took: 42 * time.Millisecond}, true, "ok", "42ms"},
		{"instance not found", &offlineResult{err: notFound, took: 7 * time.Millisecond}, true, "not-found: " + notFound.Error(), "7ms"},
		{"registry failed", &offlineResult{err: down, took: time.Second}, true, "failed: " + down.Error(), "1s"},
		{"one not found, one failed", &offlineResult{err: errors.Join(notFound, down), took: time.Second}, true, "failed: " + errors.Join(notFound, down).Error(), "1s"},
		{"both not found", &offlineResult{err: errors.Join(notFound, notFound), took: time.Second}, true, "not-found: " + errors.Join(notFound, notFound).Error(), "1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, took := offlineOutcome(tt.res, tt.started)
			if got != tt.want || took != tt.wantTook {
				t.Fatalf("offlineOutcome = %q, %q; want %q, %q", got, took, tt.want, tt.wantTook)
			}
		})
	}
}
