package eureka

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseInstance: any answer body parses or fails without a panic, and
// an instance written as JSON or as XML (Eureka serves both) reads back the
// same, whatever its id and statuses hold.
func FuzzParseInstance(f *testing.F) {
	f.Add([]byte(`{"instance":{"instanceId":"h:svc:8080","status":"UP","overriddenStatus":"OUT_OF_SERVICE"}}`), "h:svc:8080", "UP", "UNKNOWN")
	f.Fuzz(func(t *testing.T, body []byte, id, status, ov string) {
		_, _ = parseInstance(body)

		want := instanceInfo{InstanceID: id, Status: status, OverriddenStatus: ov}
		for _, s := range []string{id, status, ov} {
			if !utf8.ValidString(s) {
				return // JSON would carry U+FFFD instead
			}
		}
		b, err := json.Marshal(map[string]any{"instance": map[string]string{"instanceId": id, "status": status, "overriddenStatus": ov}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := parseInstance(b); err != nil || got != want {
			t.Fatalf("JSON %s: got %+v, %v; want %+v", b, got, err, want)
		}
		if !xmlSafe(id + status + ov) {
			return
		}
		var x strings.Builder
		x.WriteString("<instance>")
		for _, kv := range [][2]string{{"instanceId", id}, {"status", status}, {"overriddenstatus", ov}} {
			x.WriteString("<" + kv[0] + ">")
			if err := xml.EscapeText(&x, []byte(kv[1])); err != nil {
				t.Fatal(err)
			}
			x.WriteString("</" + kv[0] + ">")
		}
		x.WriteString("</instance>")
		if got, err := parseInstance([]byte(x.String())); err != nil || got != want {
			t.Fatalf("XML %s: got %+v, %v; want %+v", x.String(), got, err, want)
		}
	})
}

// xmlSafe reports whether s survives XML character data unchanged: no
// characters XML forbids, and no CR (XML reads it as LF).
func xmlSafe(s string) bool {
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n':
		case r < 0x20 || r == '\r':
			return false
		case r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return false
		}
	}
	return true
}
