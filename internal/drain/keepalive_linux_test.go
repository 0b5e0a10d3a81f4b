//go:build linux

package drain

import (
	"testing"
	"time"
)

// step is what one sample's dump says of a connection: its counters grow
// by these since the previous sample (or the first sample's values), and
// data arrived lastRecv before the sample.
type step struct {
	in, segs     uint64 // bytes and data segments received since the previous sample
	out, segsOut uint64 // bytes and data segments sent
	lastRecv     time.Duration
}

// TestKeepaliveSequences drives the keepalive rule with recorded counter
// sequences of one long-lived connection, sampled every 100ms: which
// samples report a call.
func TestKeepaliveSequences(t *testing.T) {
	t.Parallel()
	const port = 8080
	idle := step{lastRecv: time.Minute}
	tests := []struct {
		name  string
		steps []step // after a first sample of an idle connection
		calls []bool // per step: a call reported
	}{
		{
			// HTTP/2 PING (9-byte header, 8-byte payload) and its ACK.
			name:  "HTTP/2 pings",
			steps: []step{{17, 1, 17, 1, 30 * time.Millisecond}, idle, {17, 1, 17, 1, 10 * time.Millisecond}},
			calls: []bool{false, false, false},
		},
		{
			// gRPC keepalive under TLS 1.2: 17 + 29 bytes of record.
			name:  "gRPC keepalive over TLS",
			steps: []step{{46, 1, 46, 1, 30 * time.Millisecond}},
			calls: []bool{false},
		},
		{
			// Dubbo heartbeat: a 16-byte header and a one-byte null body,
			// answered alike; three of them between two samples.
			name:  "Dubbo heartbeats, several in one sample",
			steps: []step{{51, 3, 51, 3, 5 * time.Millisecond}},
			calls: []bool{false},
		},
		{
			name:  "an HTTP/1 request and its reply",
			steps: []step{{180, 1, 1200, 1, 30 * time.Millisecond}},
			calls: []bool{true},
		},
		{
			// A small unary gRPC call (HEADERS and DATA, 44 bytes) is no
			// bigger than a ping; its reply (headers, data, trailers) is.
			name:  "a small gRPC call",
			steps: []step{{44, 1, 90, 1, 30 * time.Millisecond}},
			calls: []bool{true},
		},
		{
			// A small request whose reply the app sent only after the
			// sample: a call, dated by its arrival, once the reply shows.
			name:  "a small request answered after the sample",
			steps: []step{{40, 1, 0, 0, 30 * time.Millisecond}, {0, 0, 800, 1, 130 * time.Millisecond}},
			calls: []bool{false, true},
		},
		{
			// The same on a loaded machine: the reply two samples later.
			name:  "a small request answered two samples later",
			steps: []step{{40, 1, 0, 0, 30 * time.Millisecond}, {0, 0, 0, 0, 130 * time.Millisecond}, {0, 0, 800, 1, 230 * time.Millisecond}},
			calls: []bool{false, false, true},
		},
		{
			// A request and a ping in one sample, the ping answered at
			// once, the request two samples later.
			name:  "a request with a ping, answered two samples later",
			steps: []step{{68 + 17, 2, 17, 1, 10 * time.Millisecond}, {0, 0, 0, 0, 110 * time.Millisecond}, {0, 0, 512, 1, 210 * time.Millisecond}},
			calls: []bool{false, false, true},
		},
		{
			// A ping, then an unrelated send (a server push) two samples
			// later: the ping stays a ping.
			name:  "a ping, a push much later",
			steps: []step{{17, 1, 17, 1, 30 * time.Millisecond}, idle, {0, 0, 800, 1, 230 * time.Millisecond}},
			calls: []bool{false, false, false},
		},
		{
			name:  "a ping and a call in one sample",
			steps: []step{{17 + 300, 2, 17 + 900, 2, 5 * time.Millisecond}},
			calls: []bool{true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := memWatcher(t, port, false)
			c := sock{state: tcpEstablished, port: port, cookie: 7, info: true, lastRecv: time.Minute, bytes: 500, segs: 3, out: 4000, segsOut: 4}
			at := t0
			w.begin(at)
			w.handle(c.msg(), at)
			w.commit()
			for i, st := range tt.steps {
				at = at.Add(100 * time.Millisecond)
				c.bytes += st.in
				c.segs += uint32(st.segs)
				c.out += st.out
				c.segsOut += uint32(st.segsOut)
				c.lastRecv = st.lastRecv
				w.begin(at)
				w.handle(c.msg(), at)
				s := w.commit()
				called := len(s.Peers) == 1 && !s.Peers[0].Last.IsZero()
				if called != tt.calls[i] {
					t.Errorf("sample %d: call reported %v, want %v (%+v)", i+1, called, tt.calls[i], s.Peers)
				}
				if called {
					if want := at.Add(-st.lastRecv); !s.Peers[0].Last.Equal(want) {
						t.Errorf("sample %d: call dated %v before the sample, want %v", i+1, at.Sub(s.Peers[0].Last), st.lastRecv)
					}
				}
				if len(s.Peers) != 1 || s.Peers[0].Conns != 1 || s.Peers[0].Held != 1 {
					t.Errorf("sample %d: peers %+v, want the one held connection", i+1, s.Peers)
				}
			}
		})
	}
}
