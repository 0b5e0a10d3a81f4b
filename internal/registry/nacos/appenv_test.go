package nacos

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestAppEnv: the app is told to register at weight 0; a weight the
// environment gives is the app's own and becomes the weight Online puts
// back; weight 0 there tells the app already; a value that is not a weight
// is left to the app, with a WARN.
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
		{"user weight zero: told already", map[string]string{EnvWeight: "0"}, nil, 2, true, "level=INFO"},
		{"user weight -0: told already", map[string]string{EnvWeight: "-0"}, nil, 2, true, "level=INFO"},
		{"user weight negative", map[string]string{EnvWeight: "-1"}, nil, 2, false, "level=WARN"},
		{"user weight NaN", map[string]string{EnvWeight: "NaN"}, nil, 2, false, "level=WARN"},
		{"user weight Inf", map[string]string{EnvWeight: "+Inf"}, nil, 2, false, "level=WARN"},
		{"user weight over the maximum", map[string]string{EnvWeight: "10001"}, nil, 2, false, "level=WARN"},
		{"user weight garbage", map[string]string{EnvWeight: "heavy"}, nil, 2, false, "level=WARN"},
		{"user weight under --nacos-weight's minimum", map[string]string{EnvWeight: "0.001"}, nil, 2, false, "level=WARN"},
		{"user weight at the minimum", map[string]string{EnvWeight: "0.01"}, []string{"SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT=0"}, 0.01, true, "level=INFO"},
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

// FuzzAppEnv feeds AppEnv whatever the environment gives for the app's
// weight: no panic; either the value is left to the app (nothing added)
// or the app is told weight 0 and the weight put back is one Nacos
// accepts (finite, above 0, at most 10000), never the environment's value
// echoed in a log.
func FuzzAppEnv(f *testing.F) {
	for _, s := range []string{"", "1", "0", "-1", "2.5", " 3 ", "NaN", "+Inf", "1e309", "10000", "10000.0001", "0x10", "1_000", "\x00", "5\nlevel=ERROR"} {
		f.Add(s, true)
	}
	f.Add("", false)
	f.Fuzz(func(t *testing.T, v string, set bool) {
		var buf bytes.Buffer
		m := newMark(Options{Service: "s", IP: "10.0.0.1", Port: 8080}.withDefaults(), nil, slog.New(slog.NewJSONHandler(&buf, nil)))
		got := m.AppEnv(func(k string) (string, bool) { return v, set && k == EnvWeight })
		switch {
		case len(got) == 0:
			// Told only by the environment's own weight 0.
			w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if zero := set && err == nil && w == 0; m.told != zero {
				t.Fatalf("nothing added, told %v, for %q", m.told, v)
			}
		case len(got) == 1 && got[0] == EnvWeight+"=0":
			if !m.told || math.IsNaN(m.weight) || math.IsInf(m.weight, 0) || m.weight < minWeight || m.weight > maxWeight {
				t.Fatalf("told %v with weight %v to put back", m.told, m.weight)
			}
		default:
			t.Fatalf("AppEnv = %q", got)
		}
		// A refused value is never echoed (it may carry anything): the
		// WARN has fixed fields only.
		if len(got) == 0 && set && !m.told {
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("one JSON record: %v: %s", err, buf.String())
			}
			delete(rec, "time")
			want := map[string]any{"level": "WARN", "variable": EnvWeight, "want": "0 (out of rotation), or a number from 0.01 to 10000",
				"msg": "nacos: the environment sets the app's weight to a value gracefulinit cannot restore; left as it is, so the app registers itself with it and the hold takes it out only when it sees it"}
			if !maps.Equal(rec, want) {
				t.Fatalf("WARN %v, want only %v", rec, want)
			}
		}
	})
}
