// Package redact hides credentials in text bound for a log line, an error or
// --check's output. It is the one place that knows what a credential looks
// like; every URL or secret-bearing message is printed through it.
package redact

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Mask replaces a hidden value.
const Mask = "xxxxx"

// MinSecret is the shortest known secret masked wherever it occurs. Shorter
// ones are masked only as a whole word: a one-letter password must not
// rewrite every word that contains the letter.
const MinSecret = 4

// secretKey is the name of a field or parameter holding a credential:
// any name that ends in one of these words (db_password, client_secret,
// apiKey, X-Auth-Token).
const secretKey = `[A-Za-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret|token|api_?key|credentials?|private_?key)`

var (
	// A URL's userinfo password: scheme://user:PASSWORD@.
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)([^\s/?#@]+)@`)
	// key=VALUE in a query string or form, as servers and SDKs echo them.
	paramRE = regexp.MustCompile(`(?i)(` + secretKey + `=)([^&\s"',;]+)`)
	// "key":"VALUE" in JSON answers and hook bodies.
	jsonRE = regexp.MustCompile(`(?i)("` + secretKey + `"\s*:\s*")((?:[^"\\]|\\.)*)"`)
	// "key":VALUE, a number or a bare word, in JSON.
	jsonBareRE = regexp.MustCompile(`(?i)("` + secretKey + `"\s*:\s*)([^"\s,}\]][^\s,}\]]*)`)
	// An echoed Authorization header, with or without its scheme word.
	authRE = regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*["']?(?:(?:basic|bearer|digest|token)\s+)?)([^"'\s,;}\]]+)`)
	// Where a new URL starts inside a list: a scheme after a separator.
	nextURLRE = regexp.MustCompile(`[,\s\[][A-Za-z][A-Za-z0-9+.-]*://`)
)

// Text returns s with every credential-shaped part masked (a URL's userinfo
// password, password and token parameters, an Authorization value) and every
// occurrence of the given secrets, also in their URL-, JSON- and Go-quoted
// forms. Secrets of MinSecret bytes or more never appear in the result.
func Text(s string, secrets ...string) string {
	forms := known(secrets)
	// Known secrets first, so a password holding "@" or "/" is masked
	// whole before the patterns cut it; and again after, in case a
	// pattern's mask completed one.
	s = maskKnown(s, forms)
	s = userinfoRE.ReplaceAllString(s, "${1}"+Mask+"@")
	s = paramRE.ReplaceAllString(s, "${1}"+Mask)
	s = jsonRE.ReplaceAllString(s, `${1}`+Mask+`"`)
	s = jsonBareRE.ReplaceAllString(s, `${1}`+Mask)
	s = authRE.ReplaceAllString(s, "${1}"+Mask)
	return maskKnown(s, forms)
}

func maskKnown(s string, forms []string) string {
	if len(forms) == 0 {
		return s
	}
	// The mask shares no byte with any secret, so masking one occurrence can
	// never complete another.
	mask := maskFor(forms)
	for {
		before := s
		for _, f := range forms {
			if len(f) >= MinSecret {
				s = strings.ReplaceAll(s, f, mask)
			}
		}
		for _, f := range forms {
			if len(f) < MinSecret {
				s = replaceWords(s, f, mask)
			}
		}
		// With a mask of bytes no secret holds, one pass is enough; the
		// empty mask may join halves into a new occurrence.
		if mask != "" || s == before {
			return s
		}
	}
}

// URL returns raw, a URL or a list of them as a user typed it, fit to print:
// passwords in userinfo are masked even when raw does not parse (a space or
// a bad escape in the password).
func URL(raw string) string { return Text(raw, Secrets(raw)...) }

// Err returns err's message scrubbed, without *url.Error's "Op URL:" prefix:
// callers name the request themselves, with a URL they printed through URL.
func Err(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return errors.New(Text(err.Error(), secrets...))
}

// Secrets returns the passwords that raw, a URL or a list of URLs (comma or
// space separated, with or without a scheme), carries in its userinfo,
// found the way a person reads it: up to the last "@" of each URL, whether
// or not it parses. Callers pass them to Text to scrub messages that quote raw.
func Secrets(raw string) []string {
	var out []string
	for _, e := range splitURLs(raw) {
		at := strings.LastIndex(e, "@")
		if at < 0 {
			continue
		}
		info := e[:at]
		if i := strings.Index(info, "://"); i >= 0 {
			info = info[i+3:]
		}
		_, pw, ok := strings.Cut(info, ":")
		if !ok || pw == "" {
			continue
		}
		out = append(out, pw)
		if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
			out = append(out, dec)
		}
	}
	return out
}

// BasicAuth is the Authorization value a client sends for user and
// password; servers sometimes echo it, so it is a secret too.
func BasicAuth(user, password string) string {
	if password == "" {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

func splitURLs(raw string) []string {
	var out []string
	for {
		loc := nextURLRE.FindStringIndex(raw[min(1, len(raw)):])
		if loc == nil {
			return append(out, raw)
		}
		cut := loc[0] + min(1, len(raw))
		out = append(out, raw[:cut])
		raw = raw[cut+1:]
	}
}

// known expands secrets into the forms they take in messages, longest
// first so a form is masked whole before any shorter one inside it.
func known(secrets []string) []string {
	seen := map[string]bool{}
	var forms []string
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		add(strings.TrimPrefix(url.UserPassword("", s).String(), ":"))
		add(strings.Trim(strconv.Quote(s), `"`))
		if b, err := json.Marshal(s); err == nil {
			add(strings.Trim(string(b), `"`))
		}
	}
	for i := 1; i < len(forms); i++ {
		for j := i; j > 0 && len(forms[j]) > len(forms[j-1]); j-- {
			forms[j], forms[j-1] = forms[j-1], forms[j]
		}
	}
	return forms
}

// maskFor picks a mask byte that occurs in no form, "x" when it can. Should
// the secrets hold every byte, the mask is empty and Text masks until
// nothing is left to mask.
func maskFor(forms []string) string {
	var used [256]bool
	for _, f := range forms {
		for i := 0; i < len(f); i++ {
			used[f[i]] = true
		}
	}
	for _, c := range []byte("xXzZqQ*#~_") {
		if !used[c] {
			return strings.Repeat(string(c), len(Mask))
		}
	}
	for c := 0x21; c < 0x7f; c++ {
		if !used[c] {
			return strings.Repeat(string(rune(c)), len(Mask))
		}
	}
	return ""
}

// replaceWords masks occurrences of w that stand as a word of their own:
// not preceded or followed by a letter or digit.
func replaceWords(s, w, mask string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, w)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(w)
		if (i == 0 || !isWordByte(s[i-1])) && (end == len(s) || !isWordByte(s[end])) {
			b.WriteString(s[:i])
			b.WriteString(mask)
		} else {
			b.WriteString(s[:i+1])
			end = i + 1
		}
		s = s[end:]
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
