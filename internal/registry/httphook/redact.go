package httphook

import "github.com/gracefulinit/gracefulinit/internal/redact"

// redactURL is how a hook's URL is printed: userinfo passwords masked.
func redactURL(raw string) string { return redact.URL(raw) }

// scrub masks credentials in s, and the password of the hook's URL
// wherever a server echoes it.
func scrub(s, rawURL string) string { return redact.Text(s, redact.Secrets(rawURL)...) }
