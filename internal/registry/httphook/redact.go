package httphook

import (
	"net/url"

	"github.com/gracefulinit/gracefulinit/internal/redact"
)

// redactURL is how a hook's URL is printed: userinfo passwords masked.
func redactURL(raw string) string { return redact.URL(raw) }

// scrub masks credentials in s, and the password of the hook's URL (also
// as the basic-auth value net/http derives from it) wherever a server
// echoes it.
func scrub(s, rawURL string) string {
	secrets := redact.Secrets(rawURL)
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, redact.BasicAuth(u.User.Username(), pw))
		}
	}
	return redact.Text(s, secrets...)
}
