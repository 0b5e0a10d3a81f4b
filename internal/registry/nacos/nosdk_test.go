//go:build nosdk

package nacos

import "testing"

func TestNoSDKRefusesRegisterMode(t *testing.T) {
	cfg := contractConfig("http://127.0.0.1:8848")
	cfg.Nacos.Mode = "register"
	_, err := New(cfg, nil)
	if err == nil || err.Error() != "nacos: register mode needs the full build; this binary was built with -tags nosdk" {
		t.Fatalf("New in register mode: %v", err)
	}
	if SDKIncluded {
		t.Fatal("SDKIncluded in a nosdk build")
	}
	cfg.Nacos.Mode = "mark"
	if _, err := New(cfg, nil); err != nil {
		t.Fatalf("mark mode in a nosdk build: %v", err)
	}
}
