package nacossdk

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

const testPassword = "hunter2-pa55"

// The SDK's HTTP agent logs request parameters and headers on failures;
// the adapter must drop secrets before they reach our log.
func TestSDKLogScrubs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: dropTime}))
	l := &sdkLog{log: log, secrets: []string{testPassword}}
	l.Errorf("request method[%s],request path[%s],header:[%s],params:[%s],status code error:%d",
		"POST", "/nacos/v1/auth/login", `{"accessToken":"eyJsecret"}`, `{"username":"gi","password":"`+testPassword+`"}`, 403)
	l.Info("plain ", "line")
	out := buf.String()
	for _, leak := range []string{testPassword, "eyJsecret"} {
		if strings.Contains(out, leak) {
			t.Fatalf("%q reached the log: %s", leak, out)
		}
	}
	// Levels move one step down: SDK errors are warnings, its info is debug.
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "level=DEBUG msg=\"plain line\"") {
		t.Fatalf("levels: %s", out)
	}
}
