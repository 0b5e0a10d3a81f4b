package nacos

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// TestAppEnv: the app is told to register at weight 0; a weight the
// environment gives is the app's own and becomes the weight Online puts
// back; a value that is not a weight is left to the app, with a WARN.
func TestAppEnv(t *testing.T) {
	for _, tc := range []struct {
		name       string
		env        map[string]string
		want       []string
		wantWeight float64
		wantTold   bool
		wantLog    string
	}{
		{"unset", nil, []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0"}, 2, true, ""},
		{"user weight adopted", map[string]string{EnvWeight: " 3.5 "}, []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0"}, 3.5, true, "level=INFO"},
		{"user weight zero", map[string]string{EnvWeight: "0"}, nil, 2, false, "level=WARN"},
		{"user weight NaN", map[string]string{EnvWeight: "NaN"}, nil, 2, false, "level=WARN"},
		{"user weight Inf", map[string]string{EnvWeight: "+Inf"}, nil, 2, false, "level=WARN"},
		{"user weight over the maximum", map[string]string{EnvWeight: "10001"}, nil, 2, false, "level=WARN"},
		{"user weight garbage", map[string]string{EnvWeight: "heavy"}, nil, 2, false, "level=WARN"},
		{"user weight empty", map[string]string{EnvWeight: ""}, nil, 2, false, "level=WARN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			m := newMark(Options{Service: "s", IP: "10.0.0.1", Port: 8080, Weight: 2}.withDefaults(), nil, slog.New(slog.NewTextHandler(&buf, nil)))
			got := m.AppEnv(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if !slices.Equal(got, tc.want) {
				t.Errorf("AppEnv = %q, want %q", got, tc.want)
			}
			if m.weight != tc.wantWeight || m.told != tc.wantTold {
				t.Errorf("weight %v told %v, want %v %v", m.weight, m.told, tc.wantWeight, tc.wantTold)
			}
			if tc.wantLog != "" && !strings.Contains(buf.String(), tc.wantLog) || tc.wantLog == "" && buf.Len() > 0 {
				t.Errorf("log %q, want %q", buf.String(), tc.wantLog)
			}
			if strings.Contains(buf.String(), "heavy") {
				t.Errorf("the user's value is echoed: %s", buf.String())
			}
		})
	}
}
