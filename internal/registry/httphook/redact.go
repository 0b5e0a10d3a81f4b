package httphook

import (
	"net/url"

	"github.com/gracefulinit/gracefulinit/internal/redact"
)

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
