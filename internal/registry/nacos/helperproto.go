package nacos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The pipe protocol between PID 1 and gracefulinit-nacos, the helper that
// runs nacos-sdk-go for register mode. JSON, one object per line.
//
// PID 1 writes to the helper's stdin:
//
//	line 1:  HelperConfig, everything the SDK needs (the password travels
//	         here, never in argv or the environment)
//	then:    HelperRequest {"id":N,"op":"online"|"offline"|"close","timeout_ms":T}
//	EOF:     PID 1 is done or gone: the helper deregisters, closes the SDK
//	         client and exits 0 (bounded by the registry timeout)
//
// The helper writes to its stdout, each line at most HelperLineMax bytes:
//
//	HelperReply {"reply":N,"error":"..."}: the answer to request N, an empty
//	            error meaning success; requests may be answered out of order.
//	            The line starts with {"reply": as encoding/json writes it,
//	            which is how PID 1 tells it from a record without decoding
//	            every record of a flood
//	otherwise:  one of its log records as slog's JSON handler writes it
//	            ("level", "msg", attributes), which PID 1 logs as its own,
//	            redacted and rate-limited
//
// Its stderr carries only what crashes it (a Go panic, the SDK's
// log.Fatalf); PID 1 keeps the crash line and the last line to say why it
// died. A stdout line over HelperLineMax breaks the protocol: PID 1 kills
// the helper. A stderr line over helperErrLineMax is cut, never fatal.
//
// Before the app starts, PID 1 runs "gracefulinit-nacos --version" and
// refuses a helper whose version (the second word of that line) is not its
// own: the two files are copied separately, and the protocol is only
// promised between builds of one release.

// HelperName is the helper's file name, looked for next to gracefulinit.
const HelperName = "gracefulinit-nacos"

// HelperConfig configures the helper's SDK client and the instance it registers.
type HelperConfig struct {
	Servers   []HelperServer    `json:"servers"`
	Namespace string            `json:"namespace"`
	Group     string            `json:"group"`
	Service   string            `json:"service"`
	Cluster   string            `json:"cluster"`
	IP        string            `json:"ip"`
	Port      int               `json:"port"`
	Weight    float64           `json:"weight"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Username  string            `json:"username,omitempty"`
	Password  string            `json:"password,omitempty"` // secret: never log
	CacheDir  string            `json:"cache_dir"`
	TimeoutMs int64             `json:"timeout_ms"` // the SDK's request timeout
	Debug     bool              `json:"debug"`      // log at debug level
}

// HelperServer is one Nacos server as the SDK addresses it.
type HelperServer struct {
	Scheme      string `json:"scheme"`
	Host        string `json:"host"`
	Port        uint64 `json:"port"`
	ContextPath string `json:"context_path"`
}

// HelperRequest asks the helper for one registry step.
type HelperRequest struct {
	ID        uint64 `json:"id"`
	Op        string `json:"op"`
	TimeoutMs int64  `json:"timeout_ms,omitempty"` // 0: no bound but the helper's own
}

// HelperReply answers the request with the same id.
type HelperReply struct {
	Reply uint64 `json:"reply"`
	Error string `json:"error,omitempty"`
}

// InstanceString names the instance in logs and errors, as mark mode does.
func (c *HelperConfig) InstanceString() string {
	return instanceKey{namespace: c.Namespace, group: c.Group, service: c.Service, cluster: c.Cluster, ip: c.IP, port: c.Port}.String()
}

// HelperLineMax bounds a line on the helper's stdout, a reply or a record.
const HelperLineMax = 1 << 20

// helperErrLineMax bounds a line of the helper's stderr PID 1 looks at; the
// rest of a longer line is read and dropped.
const helperErrLineMax = 64 << 10

var replyPrefix = []byte(`{"reply":`)

// parseReply reads a reply line. ok is false for anything else: a log
// record, or garbage, which the caller relays as text and never trusts.
func parseReply(line []byte) (rep HelperReply, ok bool) {
	if !bytes.HasPrefix(line, replyPrefix) {
		return HelperReply{}, false
	}
	var r struct {
		Reply *uint64 `json:"reply"`
		Error string  `json:"error"`
	}
	if json.Unmarshal(line, &r) != nil || r.Reply == nil {
		return HelperReply{}, false
	}
	return HelperReply{Reply: *r.Reply, Error: r.Error}, true
}

// lineReader splits a pipe into lines of at most max bytes, without
// their newline. It never stops reading on its own: a longer line comes
// back cut to max with long set, and the next call skips what is left
// of it, so the writer is never left with a pipe nobody reads.
type lineReader struct {
	br       *bufio.Reader
	max      int
	buf      []byte
	skipping bool // the last line was cut: its rest is still to be read
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, min(max, 64<<10)), max: max}
}

// next returns the next line, valid until the following call. At the end
// of input it returns the last unterminated line first, then err (io.EOF,
// or the read's error).
func (l *lineReader) next() (line []byte, long bool, err error) {
	for l.skipping {
		_, err := l.br.ReadSlice('\n')
		switch err {
		case nil:
			l.skipping = false
		case bufio.ErrBufferFull:
		default:
			l.skipping = false
			return nil, false, err
		}
	}
	l.buf = l.buf[:0]
	for {
		frag, err := l.br.ReadSlice('\n')
		complete := err == nil
		if complete {
			frag = frag[:len(frag)-1]
		}
		if len(l.buf)+len(frag) > l.max {
			l.buf = append(l.buf, frag[:l.max-len(l.buf)]...)
			l.skipping = err == bufio.ErrBufferFull
			return l.buf, true, nil
		}
		if complete && len(l.buf) == 0 {
			return frag, false, nil // the common case: no copy
		}
		l.buf = append(l.buf, frag...)
		switch {
		case complete:
			return l.buf, false, nil
		case err == bufio.ErrBufferFull:
			continue
		case len(l.buf) > 0:
			// The last line, unterminated: the error comes with the next call.
			return l.buf, false, nil
		default:
			return nil, false, err
		}
	}
}

// helperVersion reads the version out of "gracefulinit-nacos --version":
// "gracefulinit-nacos VERSION (commit C)".
func helperVersion(out string) (string, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != HelperName {
		return "", fmt.Errorf("it answered --version with %q, not %q", truncate(line, 80), HelperName+" VERSION")
	}
	return f[1], nil
}

// truncate cuts s to n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
