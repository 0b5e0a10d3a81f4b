package nacos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracefulinit/gracefulinit/internal/config"
)

// TestHelperPath: register mode finds its helper or says, in one line,
// what to copy where; mark mode never looks for it.
func TestHelperPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "gracefulinit-nacos")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name, mode, helper string
		wantErr            []string // substrings of the one-line error; nil: no error
	}{
		{"found", "register", exe, nil},
		{"missing", "register", missing, []string{missing, "no such file", "copy gracefulinit-nacos", "--nacos-helper"}},
		{"not executable", "register", plain, []string{plain, "chmod +x"}},
		{"a directory", "register", dir, []string{dir, "not an executable file"}},
		{"mark mode ignores it", "mark", missing, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{
				Service: "svc", IP: "10.0.0.1", Ports: []int{8080},
				Nacos: config.Nacos{Addrs: []string{"http://127.0.0.1:8848"}, Mode: tt.mode, Weight: 1, Helper: tt.helper},
			}
			_, err := New(cfg, nil)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted a register mode without a usable helper")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestHelperEnvDropsOwnSettings(t *testing.T) {
	got := helperEnv([]string{"PATH=/bin", "GRACEFULINIT_NACOS_PASSWORD=x", "nacos_remote_client_rpc_tls_enable=true", "GRACEFULINIT_GRACE_PERIOD=30s"})
	want := []string{"PATH=/bin", "nacos_remote_client_rpc_tls_enable=true"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("helperEnv = %v, want %v", got, want)
	}
}
