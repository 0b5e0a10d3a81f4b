//go:build linux

package drain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/testkit/freeport"
)

var allConfigs = []reqConfig{
	{modeLegacy, true},
	{modeLegacy, false},
	{modeV2, true},
	{modeV2, false},
}

func (c reqConfig) String() string {
	if c.filter {
		return c.mode.String() + "+filter"
	}
	return c.mode.String()
}

func openTest(t testing.TB, ports []int, c reqConfig) *Watcher {
	t.Helper()
	w, err := openWatcher(ports, nil, []reqConfig{c}, joinGroup)
	if err != nil {
		t.Fatalf("openWatcher(%v, %s): %v", ports, c, err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

func sample(t testing.TB, w *Watcher) Sample {
	t.Helper()
	s, err := w.Sample()
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	return s
}

func TestTCPInfoOffsets(t *testing.T) {
	var ti unix.TCPInfo
	if got := unsafe.Offsetof(ti.Last_data_recv); got != offLastDataRecv {
		t.Errorf("tcpi_last_data_recv at %d, want %d", got, offLastDataRecv)
	}
	if got := unsafe.Offsetof(ti.Bytes_received); got != offBytesReceived {
		t.Errorf("tcpi_bytes_received at %d, want %d", got, offBytesReceived)
	}
}

func TestNewWatcherPrefersOneDump(t *testing.T) {
	t.Parallel()
	srv := startServer(t, families[0], serveRead)
	w, err := NewWatcher([]int{srv.port})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	if w.cfg != (reqConfig{modeLegacy, true}) || len(w.reqs) != 1 {
		t.Errorf("config %s with %d requests, want one filtered TCPDIAG_GETSOCK request", w.cfg, len(w.reqs))
	}
}

// TestWatcherCounts checks what a sample sees, for every way of asking and
// every address family: only the watched ports, listeners apart, and the
// connections that are new since the previous sample.
func TestWatcherCounts(t *testing.T) {
	t.Parallel()
	for _, c := range allConfigs {
		for _, f := range families {
			t.Run(c.String()+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, f, serveRead)
				other := startServer(t, f, serveRead)
				for range 3 {
					dial(t, srv)
					dial(t, other)
				}
				ports := []int{srv.port}
				w := openTest(t, ports, c)
				s := sample(t, w)
				if s.Listeners != 1 || s.Conns < 3 || s.At.IsZero() {
					t.Errorf("first sample %+v, want 1 listener and 3 connections", s)
				}
				time.Sleep(20 * time.Millisecond) // let the accept loop catch up
				s = sample(t, w)
				if s.Listeners != 1 || s.Conns != 3 || s.New != 0 {
					t.Errorf("second sample %+v, want 1 listener, 3 connections, none new", s)
				}
				dial(t, srv)
				dial(t, other)
				s = sample(t, w)
				if s.Conns != 4 || s.New != 1 {
					t.Errorf("after one more connection: %+v, want 4 connections, 1 new", s)
				}
			})
		}
	}
}

// TestWatcherPortRanges watches ranges of ports through the kernel filter:
// p..p+1 and p+5, with a listener on p+3 between them that is not watched.
// The ports lie below the ephemeral range, so no client socket of a
// parallel test can fall into them.
func TestWatcherPortRanges(t *testing.T) {
	t.Parallel()
	lns, p := listenRun(t, []int{0, 1, 3, 5})
	srv := func(i int) *server {
		s := &server{ln: lns[i], port: lns[i].Addr().(*net.TCPAddr).Port}
		s.addr = lns[i].Addr().String()
		return s
	}
	// Nobody accepts: connections wait in the accept queues.
	for i, n := range []int{1, 2, 4, 8} {
		for range n {
			dial(t, srv(i))
		}
	}
	for _, c := range allConfigs {
		t.Run(c.String(), func(t *testing.T) {
			w := openTest(t, []int{p, p + 1, p + 5}, c)
			s := sample(t, w)
			if s.Listeners != 3 || s.Conns != 1+2+8 {
				t.Errorf("sample %+v, want 3 listeners and 11 connections", s)
			}
			// The kernel applied the filter: it described only the
			// watched sockets, not the 15 client ends or the listener
			// and 4 connections on p+3.
			watched := s.Listeners + s.Conns + s.Closed
			if c.filter && w.described != watched {
				t.Errorf("kernel described %d sockets, want only the %d watched", w.described, watched)
			}
			if !c.filter && w.described < watched+15+5 {
				t.Errorf("kernel described %d sockets without a filter, want at least %d", w.described, watched+15+5)
			}
		})
	}
}

// listenRun listens on 127.0.0.1 at p+offsets for some p in 20000-29999
// whose ports no other test of this process has used, with the run from
// p+offsets[0] to its last reserved across processes (see listenLow).
func listenRun(t *testing.T, offsets []int) ([]net.Listener, int) {
	t.Helper()
	usedPorts.Lock()
	defer usedPorts.Unlock()
next:
	for range 100 {
		p := 20000 + rand.IntN(10000-offsets[len(offsets)-1])
		for o := offsets[0]; o <= offsets[len(offsets)-1]; o++ {
			if usedPorts.m[p+o] {
				continue next
			}
		}
		var releases []func()
		releaseAll := func() {
			for _, r := range releases {
				r()
			}
		}
		for o := offsets[0]; o <= offsets[len(offsets)-1]; o++ {
			r, ok := freeport.Reserve(p + o)
			if !ok {
				releaseAll()
				continue next
			}
			releases = append(releases, r)
		}
		var lns []net.Listener
		for _, o := range offsets {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+o))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(offsets) {
			for o := offsets[0]; o <= offsets[len(offsets)-1]; o++ {
				usedPorts.m[p+o] = true
			}
			t.Cleanup(func() {
				for _, ln := range lns {
					_ = ln.Close()
				}
				releaseAll()
			})
			return lns, p
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
		releaseAll()
	}
	t.Fatal("no free run of ports in 20000-29999")
	return nil, 0
}

func TestWatcherActivity(t *testing.T) {
	t.Parallel()
	for _, c := range []reqConfig{{modeLegacy, true}, {modeV2, true}} {
		for _, f := range families {
			t.Run(c.String()+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, f, serveRead)
				conn := dial(t, srv)
				sent := sendSpan(t, conn)
				// Longer than lateSlack: a request dated to the sample
				// that saw it is caught.
				const wait = 2 * lateSlack
				time.Sleep(wait)

				// An existing connection's last request is dated, not
				// merely noticed.
				w := openTest(t, []int{srv.port}, c)
				s := sample(t, w)
				stamped(t, "first sample: LastActivity, the request", s.LastActivity, sent, 0)

				// Nothing happens: nothing changes.
				time.Sleep(150 * time.Millisecond)
				if s2 := sample(t, w); !s2.LastActivity.Equal(s.LastActivity) {
					t.Errorf("idle: LastActivity moved from %v to %v", s.LastActivity, s2.LastActivity)
				}

				// A request between samples is dated to when it arrived.
				time.Sleep(50 * time.Millisecond)
				sent = sendSpan(t, conn)
				time.Sleep(wait)
				s = sample(t, w)
				stamped(t, "request: LastActivity, the request", s.LastActivity, sent, 0)

				// The client closing its idle connection is no request.
				time.Sleep(50 * time.Millisecond)
				if err := conn.Close(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
				if s2 := sample(t, w); !s2.LastActivity.Equal(s.LastActivity) {
					t.Errorf("client close: LastActivity moved by %s", s2.LastActivity.Sub(s.LastActivity))
				}
			})
		}
	}
}

// TestWatcherShortConnection checks that a connection opened, served and
// closed by the server between two samples still counts: it leaves a new
// TIME_WAIT socket, whose age the kernel reports, or a FIN_WAIT2 one while
// the client has not closed its end.
func TestWatcherShortConnection(t *testing.T) {
	t.Parallel()
	for _, f := range families {
		for _, clientCloses := range []bool{true, false} {
			name := f.name + "/TIME_WAIT"
			if !clientCloses {
				name = f.name + "/FIN_WAIT2"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				srv := startServer(t, f, serveWriteClose)
				w := openTest(t, []int{srv.port}, reqConfig{modeLegacy, true})
				before := sample(t, w)

				conn := dial(t, srv)
				if _, err := io.ReadAll(conn); err != nil {
					t.Fatal(err)
				}
				closed := span{before: time.Now()}
				if clientCloses {
					_ = conn.Close()
				}
				closed.after = time.Now()
				// Longer than lateSlack: a close dated to the sample that
				// saw it, not by its timer, is caught.
				time.Sleep(2 * lateSlack)
				s := sample(t, w)
				// Closed may include leftovers of an earlier user of the port.
				if s.New != 1 || s.Closed < 1 || s.Conns != 0 {
					t.Errorf("sample %+v, want 1 new closed socket", s)
				}
				if s.LastActivity.Before(before.At.Add(-stampSlack)) {
					t.Fatalf("LastActivity %v before the previous sample at %v", s.LastActivity, before.At)
				}
				if clientCloses {
					// Dated by the TIME_WAIT timer.
					stamped(t, "LastActivity: the close", s.LastActivity, closed, 0)
				} else if s.LastActivity.Before(closed.after) || s.LastActivity.After(s.At) {
					// No age to go by: dated to the sample, the safe side.
					t.Errorf("LastActivity %v, want the sample's time %v", s.LastActivity, s.At)
				}

				// Seen once, it is old news.
				time.Sleep(50 * time.Millisecond)
				if s2 := sample(t, w); s2.New != 0 || !s2.LastActivity.Equal(s.LastActivity) {
					t.Errorf("next sample %+v, want nothing new", s2)
				}
			})
		}
	}
}

func TestWatcherNoListener(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: reserve it, then free it.
	ln := listenLow(t, "127.0.0.1")
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	w := openTest(t, []int{port}, reqConfig{modeLegacy, true})
	if s := sample(t, w); s.Listeners != 0 || s.Conns != 0 || !s.LastActivity.IsZero() || s.At.IsZero() {
		t.Errorf("sample %+v, want nothing but a time", s)
	}

	// Run warns, once, and still drains until quiet.
	log, buf := testLogger(t)
	res := RunDetailed(t.Context(), Options{Policy: Policy{Max: 5 * time.Second, Quiet: 200 * time.Millisecond}, Ports: []int{port}}, log)
	if res.Reason != ReasonAllQuiet || res.Fallback {
		t.Errorf("result %+v, want ReasonAllQuiet", res)
	}
	if n := countLines(buf.String(), "nothing listens on the watched ports"); n != 1 {
		t.Errorf("%d warnings about the missing listener, want 1:\n%s", n, buf)
	}
}

func TestWatcherClose(t *testing.T) {
	t.Parallel()
	w, err := NewWatcher([]int{8080})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Sample(); err == nil {
		t.Error("Sample after Close succeeded")
	}
}

func TestMakePorts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ports   []int
		want    []portRange
		wantErr string
	}{
		{[]int{8080}, []portRange{{8080, 8080}}, ""},
		{[]int{8081, 8080, 9090, 8080, 8082}, []portRange{{8080, 8082}, {9090, 9090}}, ""},
		{[]int{1, 65535}, []portRange{{1, 1}, {65535, 65535}}, ""},
		{nil, nil, "no ports"},
		{[]int{0}, nil, "port 0 out of range"},
		{[]int{8080, 65536}, nil, "port 65536 out of range"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.ports), func(t *testing.T) {
			set, ranges, err := makePorts(tt.ports)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ranges) != fmt.Sprint(tt.want) {
				t.Errorf("ranges = %v, want %v", ranges, tt.want)
			}
			for _, p := range tt.ports {
				if !set.has(uint16(p)) {
					t.Errorf("set lacks %d", p)
				}
			}
			if set.has(8079) || set.has(9091) {
				t.Error("set has a port it should not")
			}
		})
	}
}

func TestNewWatcherErrors(t *testing.T) {
	t.Parallel()
	if _, err := NewWatcher(nil); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("NewWatcher(nil) = %v, want a plain error", err)
	}
	// A request the kernel refuses: a filter that jumps out of bounds.
	w := &Watcher{fd: -1, ports: new(portSet), buf: make([]byte, recvBufLen),
		prev: map[uint64]connState{}, cur: map[uint64]connState{}}
	w.configure(reqConfig{modeV2, false})
	bad := newRequest(unix.SOCK_DIAG_BY_FAMILY, reqV2Len, []byte{bcSGE, 8, 200, 0, 0, 0, 0, 0})
	bad[nlmsgHdrLen] = unix.AF_INET
	bad[nlmsgHdrLen+1] = unix.IPPROTO_TCP
	w.reqs = [][]byte{bad}
	_, err := w.Sample()
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("Sample with a bad filter = %v, want EINVAL", err)
	}
	// The socket survives a refused request.
	w.configure(reqConfig{modeV2, false})
	if _, err := w.Sample(); err != nil {
		t.Errorf("Sample after a refused request: %v", err)
	}
	_ = w.Close()
}

func TestParse(t *testing.T) {
	t.Parallel()
	msg := func(typ uint16, seq uint32, body []byte) []byte {
		b := make([]byte, nlmsgHdrLen+len(body))
		binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint32(b[8:], seq)
		copy(b[nlmsgHdrLen:], body)
		return b
	}
	errno := func(e int32) []byte {
		b := make([]byte, 4)
		binary.NativeEndian.PutUint32(b, uint32(e))
		return b
	}
	tests := []struct {
		name     string
		data     []byte
		wantDone bool
		wantErr  error
	}{
		{"done", msg(unix.NLMSG_DONE, 7, errno(0)), true, nil},
		{"done with error", msg(unix.NLMSG_DONE, 7, errno(-int32(unix.ENOMEM))), true, unix.ENOMEM},
		{"error", msg(unix.NLMSG_ERROR, 7, errno(-int32(unix.ENOENT))), true, unix.ENOENT},
		{"stale done is skipped", msg(unix.NLMSG_DONE, 6, errno(0)), false, nil},
		{"short header", []byte{1, 2, 3}, false, errMalformed},
		{"length past the end", msg(unix.NLMSG_DONE, 7, errno(0))[:nlmsgHdrLen+2], false, errMalformed},
		{"short socket message", msg(tcpdiagGetsock, 7, make([]byte, 10)), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Watcher{seq: 7, reqType: tcpdiagGetsock, ports: new(portSet)}
			done, err := w.parse(tt.data, time.Now())
			if done != tt.wantDone || !errors.Is(err, tt.wantErr) {
				t.Errorf("parse = %t, %v; want %t, %v", done, err, tt.wantDone, tt.wantErr)
			}
		})
	}
}

func TestFindAttr(t *testing.T) {
	t.Parallel()
	attr := func(typ uint16, payload ...byte) []byte {
		b := make([]byte, align4(4+len(payload)))
		binary.NativeEndian.PutUint16(b[0:], uint16(4+len(payload)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		copy(b[4:], payload)
		return b
	}
	b := append(attr(8, 1), attr(attrInfo|unix.NLA_F_NESTED, 1, 2, 3, 4, 5)...)
	if got := findAttr(b, attrInfo); string(got) != "\x01\x02\x03\x04\x05" {
		t.Errorf("findAttr = %v", got)
	}
	if got := findAttr(b, 9); got != nil {
		t.Errorf("findAttr(absent) = %v", got)
	}
	if got := findAttr([]byte{200, 0, 2, 0, 1}, attrInfo); got != nil {
		t.Errorf("findAttr(truncated) = %v", got)
	}
}
