package redact

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://u:p@h:1/x", "http://u:xxxxx@h:1/x"},
		{"http://h:1/x", "http://h:1/x"},
		{"http://u@h", "http://u@h"},
		// The list form, as the flag holds it and as pflag prints it.
		{"http://alice:S3CRETPW@host:8848,http://bob:hunter22@h2:8848", "http://alice:xxxxx@host:8848,http://bob:xxxxx@h2:8848"},
		{"[http://alice:S3CRETPW@host:8848,http://bob:hunter22@h2:8848]", "[http://alice:xxxxx@host:8848,http://bob:xxxxx@h2:8848]"},
		// URLs that do not parse.
		{"http://alice:S3CRETPW@h:1/%zz", "http://alice:xxxxx@h:1/%zz"},
		{"http://alice:S3 CRET PW@h:1", "http://alice:xxxxx@h:1"},
		{"http://alice:S3/CRET@h:1", "http://alice:xxxxx@h:1"},
		{"http://alice:S3@CRET@h:1", "http://alice:xxxxx@h:1"},
		// No scheme, as --nacos-addr allows.
		{"alice:S3CRETPW@nacos:8848", "alice:xxxxx@nacos:8848"},
		// A password holding the mask's letter.
		{"http://alice:xyzzy123@h", "http://alice:xxxxx@h"},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	basic := BasicAuth("alice", "S3CRETPW")
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"userinfo in a message", `parse "http://alice:S3CRETPW@h:1/%zz": invalid URL escape "%zz"`, nil, `parse "http://alice:xxxxx@h:1/%zz": invalid URL escape "%zz"`},
		{"echoed Authorization header", `401 Unauthorized: header Authorization: Basic ` + basic + ` refused`, nil, `401 Unauthorized: header Authorization: Basic xxxxx refused`},
		{"basic credentials echoed bare", `{"error":"bad credentials ` + basic + `"}`, []string{basic}, `{"error":"bad credentials XXXXX"}`},
		{"token parameter", `GET /nacos/v1/ns/instance?accessToken=eyJhbGci.x.y&ip=1`, nil, `GET /nacos/v1/ns/instance?accessToken=xxxxx&ip=1`},
		{"json token", `{"accessToken":"eyJhbGci","tokenTtl":18000}`, nil, `{"accessToken":"xxxxx","tokenTtl":18000}`},
		{"password parameter", `username=nacos&password=S3CRETPW`, nil, `username=nacos&password=xxxxx`},
		{"known secret anywhere", `login failed for S3CRETPW at host`, []string{"S3CRETPW"}, `login failed for xxxxx at host`},
		{"known secret url-escaped", `q=S3%2BCRET%26`, []string{"S3+CRET&"}, `q=xxxxx`},
		{"known secret Go-quoted", `invalid argument "a\"S3CRET"`, []string{`a"S3CRET`}, `invalid argument "xxxxx"`},
		// A one-letter password masks only itself as a word.
		{"one-letter password", `upstream p timed out; p`, []string{"p"}, `upstream xxxxx timed out; xxxxx`},
		{"short password inside words", `sleeping in the pool`, []string{"in"}, `sleeping xxxxx the pool`},
		{"no secrets, nothing changes", `dial tcp 10.0.0.1:8848: connect: connection refused`, nil, `dial tcp 10.0.0.1:8848: connect: connection refused`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.in, tt.secrets...); got != tt.want {
				t.Errorf("Text(%q, %q)\n got %q\nwant %q", tt.in, tt.secrets, got, tt.want)
			}
		})
	}
}

// A mask that would complete a secret is never used.
func TestTextMaskNeverCompletesASecret(t *testing.T) {
	for _, sec := range []string{"xxxx", "r:xxx", "xXzZqQ*#~_"} {
		in := "http://user:" + sec + "@h and " + sec + " and user:" + sec
		if got := Text(in, sec); strings.Contains(got, sec) {
			t.Errorf("Text(%q) = %q still holds %q", in, got, sec)
		}
	}
}

func TestErr(t *testing.T) {
	in := &url.Error{Op: "Get", URL: "http://h/x?accessToken=abcdef", Err: errors.New("dial tcp: refused; token=abcdef")}
	got := Err(in, "abcdef")
	if got.Error() != "dial tcp: refused; token=xxxxx" {
		t.Fatalf("Err = %q", got)
	}
	if Err(nil) != nil {
		t.Fatal("Err(nil) != nil")
	}
}
