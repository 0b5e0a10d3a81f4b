package nacos

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// FuzzHelperOutput feeds PID 1's reader of the helper's output whatever a
// broken or hostile helper might write: split into lines with a bound
// (each at most max bytes, none holding a newline, and, when none was
// cut, exactly the input again), each line tried as a reply and relayed
// as a record, and the version line parsed. Whatever the bytes: no panic,
// and the password never reaches the log, however the record spells it.
func FuzzHelperOutput(f *testing.F) {
	const pw = "s3cr3t-pw" // the seeds' password
	// The seed corpus is in testdata/fuzz/FuzzHelperOutput: replies, records
	// holding the password (plain, escaped), a flood, garbage, a line over the bound.
	f.Fuzz(func(t *testing.T, data []byte, max uint8) {
		limit := int(max) + 1
		lr := newLineReader(bytes.NewReader(data), limit)
		var lines [][]byte
		cut := false
		for {
			line, long, err := lr.next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("read error %v from a bytes.Reader", err)
				}
				break
			}
			if len(line) > limit || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line %q: over %d bytes or holding a newline", line, limit)
			}
			cut = cut || long
			lines = append(lines, bytes.Clone(line))
			if len(lines) > len(data)+1 {
				t.Fatalf("%d lines out of %d bytes", len(lines), len(data))
			}
		}
		if !cut {
			joined := bytes.Join(lines, []byte("\n"))
			if len(lines) > 0 && bytes.HasSuffix(data, []byte("\n")) {
				joined = append(joined, '\n')
			}
			if !bytes.Equal(joined, data) {
				t.Fatalf("lines %q do not make the input %q again", lines, data)
			}
		}
		var out bytes.Buffer
		rl := newRelay(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), pw)
		for _, line := range lines {
			if rep, ok := parseReply(line); ok {
				if b, err := json.Marshal(rep); err != nil || !bytes.HasPrefix(b, replyPrefix) {
					t.Fatalf("reply %+v from %q does not encode as a reply: %s %v", rep, line, b, err)
				}
				continue
			}
			rl.print(relayed{kind: relayRecord, text: string(line)})
			rl.print(relayed{kind: relayStderr, text: string(line)})
		}
		if strings.Contains(out.String(), pw) {
			t.Fatalf("the password reached the log:\n%s", out.String())
		}
		_, _ = helperVersion(string(data))
	})
}

// TestLineReaderCutsAndSkips: a line over the bound comes back cut, the
// rest of it is skipped, and the next line is whole.
func TestLineReaderCutsAndSkips(t *testing.T) {
	in := strings.Repeat("a", 100) + "\nnext\n" + strings.Repeat("b", 40)
	lr := newLineReader(strings.NewReader(in), 16)
	type got struct {
		line string
		long bool
	}
	var all []got
	for {
		line, long, err := lr.next()
		if err != nil {
			break
		}
		all = append(all, got{string(line), long})
	}
	want := []got{{strings.Repeat("a", 16), true}, {"next", false}, {strings.Repeat("b", 16), true}}
	if len(all) != len(want) {
		t.Fatalf("lines %v, want %v", all, want)
	}
	for i := range want {
		if all[i] != want[i] {
			t.Errorf("line %d: %v, want %v", i, all[i], want[i])
		}
	}
}
