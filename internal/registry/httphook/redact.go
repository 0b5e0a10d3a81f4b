package httphook

import "net/url"

// redactURL and scrub are placeholders until internal/redact lands.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func scrub(s, rawURL string) string {
	_ = rawURL
	return s
}
