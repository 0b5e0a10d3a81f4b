package redact

import (
	"strings"
	"testing"
)

// FuzzText: no secret of MinSecret bytes or more survives Text, whatever
// the text and whatever the secrets hold.
func FuzzText(f *testing.F) {
	f.Add("login failed for S3CRETPW", "S3CRETPW", "")
	f.Fuzz(func(t *testing.T, s, sec1, sec2 string) {
		got := Text(s, sec1, sec2)
		for _, sec := range []string{sec1, sec2} {
			if len(sec) >= MinSecret && strings.Contains(got, sec) {
				t.Fatalf("Text(%q, %q, %q) = %q holds %q", s, sec1, sec2, got, sec)
			}
		}
	})
}

// FuzzURL: a password in a URL's userinfo never survives URL, alone or in a
// list, parseable or not. Only passwords that could be told apart from the
// rest of the output are checked: one holding a byte that nothing but the
// password itself can put there.
func FuzzURL(f *testing.F) {
	f.Add("alice", "S3CRETPW", "host:8848")
	f.Fuzz(func(t *testing.T, user, pw, host string) {
		user, host = plain(user), plain(host)
		if host == "" || len(pw) < MinSecret || strings.Contains(pw, "://") {
			return
		}
		rest := "http://" + user + ":@" + host + "/p," + Mask
		distinct := false
		for i := 0; i < len(pw); i++ {
			if !strings.Contains(rest, pw[i:i+1]) {
				distinct = true
			}
		}
		if !distinct {
			return
		}
		one := "http://" + user + ":" + pw + "@" + host + "/p"
		for _, raw := range []string{one, one + "," + one, "[" + one + "," + one + "]", user + ":" + pw + "@" + host} {
			if got := URL(raw); strings.Contains(got, pw) {
				t.Fatalf("URL(%q) = %q holds the password %q", raw, got, pw)
			}
		}
	})
}

// plain keeps the bytes a host name or user name is made of, so the fuzzed
// password is the only free part of the URL.
func plain(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return -1
	}, s)
}
