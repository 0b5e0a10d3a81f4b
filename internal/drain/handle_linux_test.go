//go:build linux

package drain

import (
	"encoding/binary"
	"testing"
	"time"
)

// sock is one socket as a dump describes it.
type sock struct {
	state    byte
	port     uint16
	cookie   uint64
	expires  time.Duration // time left on the socket's timer
	info     bool          // a full socket, with tcp_info
	old      bool          // tcp_info of a kernel before 4.1, without tcpi_bytes_received
	lastRecv time.Duration // tcpi_last_data_recv
	bytes    uint64        // tcpi_bytes_received
	segs     uint32        // tcpi_data_segs_in
	out      uint64        // tcpi_bytes_sent
	segsOut  uint32        // tcpi_data_segs_out
}

func (s sock) msg() []byte {
	m := make([]byte, diagMsgLen)
	m[offState] = s.state
	binary.BigEndian.PutUint16(m[offSport:], s.port)
	binary.NativeEndian.PutUint32(m[offCookie:], uint32(s.cookie))
	binary.NativeEndian.PutUint32(m[offCookie+4:], uint32(s.cookie>>32))
	binary.NativeEndian.PutUint32(m[offExpires:], uint32(s.expires.Milliseconds()))
	if !s.info {
		return m
	}
	n := 232
	if s.old {
		n = 104
	}
	info := make([]byte, n)
	binary.NativeEndian.PutUint32(info[offLastDataRecv:], uint32(s.lastRecv.Milliseconds()))
	if !s.old {
		binary.NativeEndian.PutUint64(info[offBytesReceived:], s.bytes)
		binary.NativeEndian.PutUint32(info[offDataSegsIn:], s.segs)
		binary.NativeEndian.PutUint32(info[offDataSegsOut:], s.segsOut)
		binary.NativeEndian.PutUint64(info[offBytesSent:], s.out)
	}
	// An 8-byte pad attribute first, as nla_reserve_64bit may add.
	m = binary.NativeEndian.AppendUint16(m, 8)
	m = binary.NativeEndian.AppendUint16(m, 0)
	m = append(m, 0, 0, 0, 0)
	m = binary.NativeEndian.AppendUint16(m, uint16(4+len(info)))
	m = binary.NativeEndian.AppendUint16(m, attrInfo)
	return append(m, info...)
}

// TestHandle drives the activity rules with described sockets: two
// samples, 100 ms apart, each taking 1 ms.
func TestHandle(t *testing.T) {
	t.Parallel()
	const port = 8080
	est := func(c uint64, lastRecv time.Duration, bytes uint64) sock {
		return sock{state: tcpEstablished, port: port, cookie: c, info: true, lastRecv: lastRecv, bytes: bytes}
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(100 * time.Millisecond)
	// Each sample's sockets are described at its start + 1 ms.
	at0, at1 := t0.Add(time.Millisecond), t1.Add(time.Millisecond)
	tests := []struct {
		name         string
		first, then  []sock
		wantLast     time.Time // after the second sample; zero: none
		wantNew      int       // in the second sample
		wantConns    int
		wantClosed   int
		wantListener int
	}{
		{
			name:      "new connection dated by its handshake stamp",
			then:      []sock{est(1, 30*time.Millisecond, 0)},
			wantLast:  at1.Add(-30 * time.Millisecond),
			wantNew:   1,
			wantConns: 1,
		},
		{
			name:      "idle connection: last request before the first sample",
			first:     []sock{est(1, 5*time.Second, 10)},
			then:      []sock{est(1, 5*time.Second+100*time.Millisecond, 10)},
			wantLast:  at0.Add(-5 * time.Second),
			wantConns: 1,
		},
		{
			name:      "same byte count: a fresh stamp is not believed",
			first:     []sock{est(1, 5*time.Second, 10)},
			then:      []sock{est(1, 10*time.Millisecond, 10)},
			wantLast:  at0.Add(-5 * time.Second),
			wantConns: 1,
		},
		{
			name:      "request between samples dated by its stamp",
			first:     []sock{est(1, 5*time.Second, 10)},
			then:      []sock{est(1, 40*time.Millisecond, 11)},
			wantLast:  at1.Add(-40 * time.Millisecond),
			wantConns: 1,
		},
		{
			name:      "more bytes, stamp before the previous sample: its start",
			first:     []sock{est(1, 5*time.Second, 10)},
			then:      []sock{est(1, 103*time.Millisecond, 11)},
			wantLast:  t0,
			wantConns: 1,
		},
		{
			name:      "the client's FIN is no request",
			first:     []sock{est(1, 5*time.Second, 10)},
			then:      []sock{{state: tcpCloseWait, port: port, cookie: 1, info: true, lastRecv: 5100 * time.Millisecond, bytes: 11}},
			wantLast:  at0.Add(-5 * time.Second),
			wantConns: 1,
		},
		{
			name:      "a request and the FIN",
			first:     []sock{est(1, 5*time.Second, 10)},
			then:      []sock{{state: tcpCloseWait, port: port, cookie: 1, info: true, lastRecv: 20 * time.Millisecond, bytes: 13}},
			wantLast:  at1.Add(-20 * time.Millisecond),
			wantConns: 1,
		},
		{
			name:      "kernel without a byte count: the stamp decides",
			first:     []sock{{state: tcpEstablished, port: port, cookie: 1, info: true, old: true, lastRecv: 5 * time.Second}},
			then:      []sock{{state: tcpEstablished, port: port, cookie: 1, info: true, old: true, lastRecv: 50 * time.Millisecond}},
			wantLast:  at1.Add(-50 * time.Millisecond),
			wantConns: 1,
		},
		{
			name:      "new handshake: dated to the sample",
			then:      []sock{{state: tcpSynRecv, port: port, cookie: 2, expires: 900 * time.Millisecond}},
			wantLast:  at1,
			wantNew:   1,
			wantConns: 1,
		},
		{
			name:      "handshake seen before: nothing new",
			first:     []sock{{state: tcpSynRecv, port: port, cookie: 2}},
			then:      []sock{{state: tcpSynRecv, port: port, cookie: 2}},
			wantLast:  at0,
			wantConns: 1,
		},
		{
			name:       "new TIME_WAIT dated by its timer",
			then:       []sock{{state: tcpTimeWait, port: port, cookie: 3, expires: timeWaitLen - 60*time.Millisecond}},
			wantLast:   at1.Add(-60 * time.Millisecond),
			wantNew:    1,
			wantClosed: 1,
		},
		{
			name:       "new TIME_WAIT older than the previous sample: its start",
			then:       []sock{{state: tcpTimeWait, port: port, cookie: 3, expires: 50 * time.Second}},
			wantLast:   t0,
			wantNew:    1,
			wantClosed: 1,
		},
		{
			name:       "new FIN_WAIT2 mini socket: dated to the sample",
			then:       []sock{{state: tcpFinWait2, port: port, cookie: 3, expires: 30 * time.Second}},
			wantLast:   at1,
			wantNew:    1,
			wantClosed: 1,
		},
		{
			name:       "the app closing a known connection is no request",
			first:      []sock{est(1, 5*time.Second, 10)},
			then:       []sock{{state: tcpTimeWait, port: port, cookie: 1, expires: timeWaitLen - 10*time.Millisecond}},
			wantLast:   at0.Add(-5 * time.Second),
			wantClosed: 1,
		},
		{
			name:         "listeners and other ports do not count",
			then:         []sock{{state: tcpListen, port: port, cookie: 4, info: true}, est(5, 0, 100).onPort(9090)},
			wantListener: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := memWatcher(t, port, false)
			w.begin(t0)
			for _, s := range tt.first {
				w.handle(s.msg(), at0)
			}
			w.commit()
			w.begin(t1)
			for _, s := range tt.then {
				w.handle(s.msg(), at1)
			}
			got := w.commit()
			if !got.LastActivity.Equal(tt.wantLast) {
				t.Errorf("LastActivity = %s, want %s", got.LastActivity.Sub(t0), tt.wantLast.Sub(t0))
			}
			if got.New != tt.wantNew || got.Conns != tt.wantConns || got.Closed != tt.wantClosed || got.Listeners != tt.wantListener {
				t.Errorf("sample %+v, want New %d, Conns %d, Closed %d, Listeners %d",
					got, tt.wantNew, tt.wantConns, tt.wantClosed, tt.wantListener)
			}
		})
	}
}

func (s sock) onPort(p uint16) sock {
	s.port = p
	return s
}
