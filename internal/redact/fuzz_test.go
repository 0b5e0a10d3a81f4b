package redact

import (
	"encoding/json"
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

// FuzzJSON: a credential in a JSON body (a hook's body, a server's answer)
// never survives Text, whatever its field is called among the secret names
// and whatever it holds, as a string or a number. Only values that could
// be told apart from the rest of the body are checked.
func FuzzJSON(f *testing.F) {
	f.Add(uint8(0), "S3CRETPW", false)
	f.Add(uint8(3), "p@ss\"word\\", false)
	f.Add(uint8(5), "12345678", true)
	keys := []string{"password", "Password", "db_password", "passwd", "pwd", "secret", "client_secret", "token", "accessToken", "apiKey", "api_key", "credentials", "privateKey", "passphrase"}
	f.Fuzz(func(t *testing.T, which uint8, value string, bare bool) {
		key := keys[int(which)%len(keys)]
		enc, err := json.Marshal(value)
		if err != nil {
			return
		}
		field := string(enc)
		secret := strings.Trim(field, `"`)
		if bare {
			if strings.ContainsAny(value, " \t\r\n,}]\"") || value == "" {
				return
			}
			field, secret = value, value
		}
		rest := `{"user":"alice","` + key + `":,"status":"UP"}` + Mask
		distinct := false
		for i := 0; i < len(secret); i++ {
			if !strings.Contains(rest, secret[i:i+1]) {
				distinct = true
			}
		}
		if len(secret) < MinSecret || !distinct {
			return
		}
		for _, body := range []string{
			`{"user":"alice","` + key + `":` + field + `,"status":"UP"}`,
			`{"` + key + `" : ` + field + `}`,
			`[{"status":"UP","` + key + `":` + field + `}]`,
		} {
			if got := Text(body); strings.Contains(got, secret) {
				t.Fatalf("Text(%q) = %q holds %q", body, got, secret)
			}
		}
	})
}
