//go:build linux

package drain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gracefulinit/gracefulinit/internal/selfconn"
)

// Wire format of the inet_diag netlink interface (linux/inet_diag.h,
// linux/sock_diag.h). golang.org/x/sys/unix has the netlink basics and
// struct tcp_info, but not these.
const (
	tcpdiagGetsock = 18 // TCPDIAG_GETSOCK: the original request, answered for both address families in one dump
	reqBytecode    = 1  // INET_DIAG_REQ_BYTECODE
	attrInfo       = 2  // INET_DIAG_INFO: struct tcp_info
	bcJmp          = 1  // INET_DIAG_BC_JMP
	bcSGE          = 2  // INET_DIAG_BC_S_GE: local port >= op[1].no
	bcSLE          = 3  // INET_DIAG_BC_S_LE: local port <= op[1].no

	nlmsgHdrLen = unix.SizeofNlMsghdr
	reqV1Len    = 60 // struct inet_diag_req
	reqV2Len    = 56 // struct inet_diag_req_v2
	diagMsgLen  = 72 // struct inet_diag_msg

	// Offsets in struct inet_diag_msg.
	offState   = 1
	offFamily  = 0
	offSport   = 4  // id.idiag_sport, network byte order
	offSrc     = 8  // id.idiag_src[4], network byte order; IPv4 in the first word
	offCookie  = 44 // id.idiag_cookie[2], host byte order, low word first
	offExpires = 52 // ms until the socket's timer fires

	// Offsets in struct tcp_info (checked against unix.TCPInfo in a test).
	offLastDataRecv  = 52  // tcpi_last_data_recv, ms since data (or the handshake) was last received
	offBytesAcked    = 120 // tcpi_bytes_acked, since Linux 4.1
	offBytesReceived = 128 // tcpi_bytes_received, since Linux 4.1
	offDataSegsIn    = 152 // tcpi_data_segs_in, since Linux 4.6
	offDataSegsOut   = 156 // tcpi_data_segs_out, since Linux 4.6
	offBytesSent     = 200 // tcpi_bytes_sent, since Linux 4.19

	// TCP_TIMEWAIT_LEN, a kernel constant: a TIME_WAIT socket's age is this
	// minus the time left on its timer.
	timeWaitLen = 60 * time.Second

	// recvBufLen exceeds the 32 KiB the kernel ever puts in one dump
	// datagram, so a read never truncates one.
	recvBufLen = 64 << 10
	// recvTimeout bounds a read from the kernel, which answers a dump at
	// once; it only guards against the unforeseen.
	recvTimeout = 2 * time.Second
	// maxFilterRanges keeps the filter far below the 64 KiB an attribute
	// can hold; an app with more disjoint port ranges is filtered here.
	maxFilterRanges = 256
)

// TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpSynRecv     = 3
	tcpFinWait1    = 4
	tcpFinWait2    = 5
	tcpTimeWait    = 6
	tcpCloseWait   = 8
	tcpLastAck     = 9
	tcpListen      = 10
	tcpClosing     = 11
)

// stateMask asks for every state a connection to a listening port can be
// in, and the listeners themselves. SYN_SENT is left out (outgoing), as
// are CLOSE and unconnected bound sockets.
const stateMask = 1<<tcpEstablished | 1<<tcpSynRecv | 1<<tcpFinWait1 | 1<<tcpFinWait2 |
	1<<tcpTimeWait | 1<<tcpCloseWait | 1<<tcpLastAck | 1<<tcpListen | 1<<tcpClosing

// reqMode is how a sample asks the kernel.
type reqMode int

const (
	// modeLegacy sends one TCPDIAG_GETSOCK request, which the kernel answers
	// for IPv4 and IPv6 in a single walk of its socket hash tables. That
	// walk visits every bucket of the (host-wide, unless
	// tcp_child_ehash_entries is set) established table and is most of a
	// sample's cost, so one walk instead of two halves it.
	modeLegacy reqMode = iota
	// modeV2 sends one SOCK_DIAG_BY_FAMILY request (inet_diag_req_v2) per
	// address family: the documented interface, used where the legacy
	// request is refused.
	modeV2
)

func (m reqMode) String() string {
	if m == modeLegacy {
		return "TCPDIAG_GETSOCK"
	}
	return "SOCK_DIAG_BY_FAMILY"
}

// reqConfig is one way of asking that NewWatcher may try.
type reqConfig struct {
	mode   reqMode
	filter bool // send the port filter as inet_diag bytecode
}

// defaultConfigs are tried in order until one answers.
//
// The port filter runs in the kernel when it can: a socket it rejects is
// neither locked nor described (tcp_get_info takes the socket lock), so the
// app's own outgoing connections, to its database, its registry and other
// services, cost next to nothing and never contend with the app. The userspace check
// in handle stays as a guard and is the only filter when the kernel refuses
// the bytecode.
var defaultConfigs = []reqConfig{
	{modeLegacy, true},
	{modeV2, true},
	{modeV2, false},
}

// Watcher samples the TCP sockets on a set of local ports in the current
// network namespace through the kernel's sock_diag interface, IPv4 and
// IPv6, and keeps the time of the latest activity: a connection not seen
// before, or data received. A Watcher is not safe for concurrent use.
//
// Activity is dated from the kernel's own per-socket stamps, so its time is
// known to a few milliseconds whatever the sampling interval. Pooled
// keep-alive connections, the usual traffic between services, are always
// seen, and so is a connection that the app closes first between two
// samples: it leaves a TIME_WAIT socket. One that the client closes first
// (one request per connection, as curl does) leaves nothing behind for a
// dump; the Watcher learns of it from the kernel's sock_diag destroy
// messages, which it reads at each sample. Such a connection is dated from
// its tcp_info as the message was read, not sent, so up to an interval
// late. The destroy messages need CAP_NET_ADMIN in the network namespace;
// without it, a connection the client opens and closes between two samples
// goes unseen.
type Watcher struct {
	fd      int // -1 after a failed dump (reopened by the next Sample) or Close
	closed  bool
	cfg     reqConfig
	ranges  []portRange
	ports   *portSet
	reqs    [][]byte
	reqType uint16
	seq     uint32
	buf     []byte

	prev, cur map[uint64]connState // by socket cookie
	// Every socket a sample describes changed after that sample began and
	// before its At. startAt is when the current one began; prevStart when
	// the previous good one did, zero before the first.
	startAt, prevStart time.Time
	last               time.Time    // latest activity seen
	s                  Sample       // the sample being taken
	described          int          // sockets the kernel described in this sample, watched or not
	addrs              []netip.Addr // when set, only sockets with one of these local addresses count
	// isSelf reports gracefulinit's own connections; nil means
	// selfconn.Contains.
	isSelf func(peer, app netip.AddrPort) bool

	gone    *goneWatch // nil when destroyed sockets are not watched, and goneErr says why
	goneErr error

	// The peers active in the sample being taken: peerAt indexes peerBuf,
	// which the Sample returns and the next one reuses.
	peerAt  map[netip.Addr]int
	peerBuf []PeerActivity
	first   Sample // the sample NewWatcher took, with its own copy of Peers
}

// LimitAddrs makes the Watcher count only sockets whose local address is
// one of addrs (an IPv4-mapped IPv6 address matches its IPv4 form), and
// listeners on the wildcard address, which serve them all; nil counts every
// address. It is for apps that share their ports with others in one
// network namespace. It starts the watch over, as if the Watcher were new:
// what it saw on other addresses must not linger in LastActivity.
func (w *Watcher) LimitAddrs(addrs []netip.Addr) {
	w.setAddrs(addrs)
	w.forget()
}

func (w *Watcher) setAddrs(addrs []netip.Addr) {
	w.addrs = w.addrs[:0]
	for _, a := range addrs {
		w.addrs = append(w.addrs, a.Unmap())
	}
}

// localAllowed reports whether the socket in m has a watched local address.
func (w *Watcher) localAllowed(m []byte) bool {
	if len(w.addrs) == 0 {
		return true
	}
	var a netip.Addr
	switch m[offFamily] {
	case unix.AF_INET:
		a = netip.AddrFrom4([4]byte(m[offSrc : offSrc+4]))
	case unix.AF_INET6:
		a = netip.AddrFrom16([16]byte(m[offSrc : offSrc+16])).Unmap()
	default:
		return false
	}
	// Only a listener has no local address of its own; one on the wildcard
	// address accepts for the watched addresses too.
	if a.IsUnspecified() {
		return true
	}
	for _, want := range w.addrs {
		if a == want {
			return true
		}
	}
	return false
}

// connState is what a sample remembers of a socket for the next one.
type connState struct {
	kind     uint8
	state    uint8 // its TCP state
	hasBytes bool
	hasSegs  bool
	hasOut   bool
	self     bool   // one of gracefulinit's own (see selfconn)
	checks   uint8  // samples that asked selfconn about it
	bytes    uint64 // tcpi_bytes_received, less the peer's FIN
	segs     uint32 // tcpi_data_segs_in
	segsOut  uint32 // tcpi_data_segs_out
	out      uint64 // tcpi_bytes_sent (tcpi_bytes_acked before Linux 4.19)
	// keepalive is when data taken for a keepalive arrived, in the previous
	// sample; zero if none did. A reply-sized send in the next sample makes
	// it a call after all (a request whose reply was not sent yet).
	keepalive time.Time
	// owed: that data got less back than it brought, a reply still owed.
	// A keepalive is answered in kind; a small request whose reply the app
	// has not sent yet, alone or with a ping, is not. The mark then waits
	// for the reply, however many samples a loaded app takes to send it.
	owed bool
}

const (
	kindFull uint8 = iota // a full socket, with tcp_info
	kindReq               // a request socket: handshake under way
	kindTW                // a TIME_WAIT or FIN_WAIT2 mini socket
)

// NewWatcher opens a sock_diag netlink socket and takes a first sample,
// which sees the connections that already exist. Its error wraps
// ErrUnavailable when the kernel interface cannot be used.
func NewWatcher(ports []int) (*Watcher, error) {
	return openWatcher(ports, nil, defaultConfigs, joinGroup)
}

// newWatcherAddrs is NewWatcher followed by LimitAddrs, without a first
// sample of every address.
func newWatcherAddrs(ports []int, addrs []netip.Addr) (*Watcher, error) {
	return openWatcher(ports, addrs, defaultConfigs, joinGroup)
}

// openWatcher opens a Watcher that asks the kernel in the first of configs
// that works, and joins the destroy groups with join.
func openWatcher(ports []int, addrs []netip.Addr, configs []reqConfig, join joinFunc) (*Watcher, error) {
	set, ranges, err := makePorts(ports)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		fd:     -1,
		ranges: ranges,
		ports:  set,
		buf:    make([]byte, recvBufLen),
		prev:   make(map[uint64]connState, 64),
		cur:    make(map[uint64]connState, 64),
		peerAt: make(map[netip.Addr]int, 16),
	}
	w.setAddrs(addrs)
	// Subscribed before the first sample, so that no connection falls
	// between it and the subscription.
	if w.gone, err = openGone(ranges, join); err != nil {
		w.goneErr = err
	}
	var msgs []string
	for _, c := range configs {
		w.configure(c)
		s, err := w.Sample()
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("%s (filter %t): %v", c.mode, c.filter, err))
			continue
		}
		s.Peers = slices.Clone(s.Peers)
		w.first = s
		return w, nil
	}
	// Nothing more to learn from sockets that did not work.
	_ = w.closeFD()
	w.closeGone()
	return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(msgs, "; "))
}

// configure builds the requests for c and forgets what earlier samples saw.
func (w *Watcher) configure(c reqConfig) {
	w.cfg = c
	var bc []byte
	if c.filter && len(w.ranges) <= maxFilterRanges {
		bc = portFilter(w.ranges)
	}
	// One watched port goes in the request's socket id too: the kernel
	// then passes over every socket on another port at a comparison,
	// before it runs the bytecode. (A port of 0 matches all.)
	var sport uint16
	if len(w.ranges) == 1 && w.ranges[0].lo == w.ranges[0].hi {
		sport = w.ranges[0].lo
	}
	w.reqs = w.reqs[:0]
	switch c.mode {
	case modeLegacy:
		w.reqType = tcpdiagGetsock
		r := newRequest(tcpdiagGetsock, reqV1Len, bc)
		p := r[nlmsgHdrLen:]
		p[0] = unix.AF_UNSPEC
		p[3] = 1 << (attrInfo - 1)
		binary.BigEndian.PutUint16(p[4:], sport) // id.idiag_sport
		binary.NativeEndian.PutUint32(p[52:], stateMask)
		w.reqs = append(w.reqs, r)
	default:
		w.reqType = unix.SOCK_DIAG_BY_FAMILY
		for _, family := range []byte{unix.AF_INET, unix.AF_INET6} {
			r := newRequest(unix.SOCK_DIAG_BY_FAMILY, reqV2Len, bc)
			p := r[nlmsgHdrLen:]
			p[0] = family
			p[1] = unix.IPPROTO_TCP
			p[2] = 1 << (attrInfo - 1)
			binary.NativeEndian.PutUint32(p[4:], stateMask)
			binary.BigEndian.PutUint16(p[8:], sport) // id.idiag_sport
			w.reqs = append(w.reqs, r)
		}
	}
	w.forget()
}

// forget drops what earlier samples saw: the next one is a first sample.
func (w *Watcher) forget() {
	clear(w.prev)
	clear(w.cur)
	if w.gone != nil {
		clear(w.gone.prevTW)
		clear(w.gone.curTW)
		clear(w.gone.late)
	}
	w.prevStart = time.Time{}
	w.last = time.Time{}
	clear(w.peerAt)
	w.peerBuf = w.peerBuf[:0]
}

// firstSample is the sample NewWatcher took: what it saw of the
// connections that already existed.
func (w *Watcher) firstSample() Sample { return w.first }

// newRequest lays out a dump request: netlink header, a zeroed body of
// bodyLen bytes, and the bytecode attribute if bc is not nil.
func newRequest(typ uint16, bodyLen int, bc []byte) []byte {
	n := nlmsgHdrLen + bodyLen
	if bc != nil {
		n += 4 + len(bc)
	}
	r := make([]byte, n)
	binary.NativeEndian.PutUint32(r[0:], uint32(n))
	binary.NativeEndian.PutUint16(r[4:], typ)
	binary.NativeEndian.PutUint16(r[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	if bc != nil {
		a := r[nlmsgHdrLen+bodyLen:]
		binary.NativeEndian.PutUint16(a[0:], uint16(4+len(bc)))
		binary.NativeEndian.PutUint16(a[2:], reqBytecode)
		copy(a[4:], bc)
	}
	return r
}

// Sample takes one look at the sockets on the watched ports. After an
// error the next Sample starts over on a new netlink socket.
func (w *Watcher) Sample() (Sample, error) {
	if w.closed {
		return Sample{}, errors.New("drain: Sample on a closed Watcher")
	}
	if w.fd < 0 {
		if err := w.openFD(); err != nil {
			return Sample{}, err
		}
	}
	w.begin(time.Now())
	// Destroy messages first: a socket they report was gone before the
	// dump began, so what the dump shows of it is the TIME_WAIT socket it
	// left, if any, and settleGone can tell the two apart.
	w.readGone()
	for _, req := range w.reqs {
		if err := w.dump(req); err != nil {
			clear(w.cur)
			return Sample{}, err
		}
	}
	w.settleGone()
	return w.commit(), nil
}

// begin starts a sample at now.
func (w *Watcher) begin(now time.Time) {
	w.s = Sample{}
	w.described = 0
	w.startAt = now
	clear(w.cur)
	clear(w.peerAt)
	w.peerBuf = w.peerBuf[:0]
	if w.gone != nil {
		clear(w.gone.curTW)
	}
}

// commit ends a sample that saw every socket, and makes it the one the
// next compares against.
func (w *Watcher) commit() Sample {
	w.prev, w.cur = w.cur, w.prev
	if w.gone != nil {
		w.gone.prevTW, w.gone.curTW = w.gone.curTW, w.gone.prevTW
	}
	w.prevStart = w.startAt
	w.s.LastActivity = w.last
	w.s.Peers = w.peerBuf
	return w.s
}

// Close releases the netlink sockets.
func (w *Watcher) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.closeGone()
	return w.closeFD()
}

// closeGone stops watching destroyed sockets. Nothing is lost by an error
// from close here: the socket was only read.
func (w *Watcher) closeGone() {
	if w.gone == nil {
		return
	}
	_ = w.gone.close()
	w.gone = nil
	if w.goneErr == nil {
		w.goneErr = errors.New("drain: Watcher closed")
	}
}

func (w *Watcher) openFD() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("netlink receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("netlink bind: %w", err)
	}
	w.fd = fd
	return nil
}

func (w *Watcher) closeFD() error {
	if w.fd < 0 {
		return nil
	}
	err := unix.Close(w.fd)
	w.fd = -1
	return err
}

// dump sends one request and reads its answer to the end. A dump the
// kernel has begun stays pending until it is read out, and blocks the next
// request with EBUSY, so one that fails half way closes the socket: the
// next Sample opens a new one.
func (w *Watcher) dump(req []byte) error {
	w.seq++
	binary.NativeEndian.PutUint32(req[8:], w.seq)
	for {
		_, err := unix.Write(w.fd, req)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			_ = w.closeFD()
			return fmt.Errorf("sock_diag request: %w", err)
		}
		break
	}
	// The kernel fills a dump's first datagram in the write that asks for
	// it, and each next one at the end of the read that returns the one
	// before (netlink_dump_start, netlink_recvmsg). The time just after
	// that call is the earliest known to be no earlier than the datagram's
	// timestamps: reading the clock after the datagram's own read instead
	// adds that read, and the wait for the goroutine to run again, to every
	// stamp, tens of milliseconds on a loaded machine.
	filled := time.Now()
	for {
		n, err := unix.Read(w.fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			_ = w.closeFD()
			return fmt.Errorf("sock_diag read: %w", err)
		}
		at := filled
		filled = time.Now()
		w.s.At = filled
		done, err := w.parse(w.buf[:n], at)
		if done {
			return err
		}
		if err != nil {
			_ = w.closeFD()
			return err
		}
	}
}

var errMalformed = errors.New("sock_diag: malformed netlink message")

// parse handles one datagram of the current dump. done reports the dump's
// end, with its error if the kernel refused it.
func (w *Watcher) parse(b []byte, at time.Time) (done bool, err error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, errMalformed
		}
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return false, errMalformed
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		seq := binary.NativeEndian.Uint32(b[8:])
		body := b[nlmsgHdrLen:l]
		b = b[min(align4(l), len(b)):]
		if seq != w.seq {
			continue // left over from an earlier request
		}
		switch typ {
		case unix.NLMSG_DONE:
			if len(body) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(body)); e < 0 {
					return true, fmt.Errorf("sock_diag dump: %w", unix.Errno(-e))
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return true, errMalformed
			}
			if e := int32(binary.NativeEndian.Uint32(body)); e < 0 {
				return true, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
			}
		case w.reqType:
			w.handle(body, at)
		}
	}
	return false, nil
}

// handle accounts for one socket of a dump taken at at.
func (w *Watcher) handle(m []byte, at time.Time) {
	if len(m) < diagMsgLen {
		return
	}
	w.described++
	if !w.ports.has(binary.BigEndian.Uint16(m[offSport:])) || !w.localAllowed(m) {
		return
	}
	state := m[offState]
	if state == tcpListen {
		w.s.Listeners++
		return
	}
	// The cookie names a socket for its whole life (a TIME_WAIT socket
	// inherits it) and is never reused, unlike a 4-tuple.
	cookie := uint64(binary.NativeEndian.Uint32(m[offCookie:])) |
		uint64(binary.NativeEndian.Uint32(m[offCookie+4:]))<<32
	prev, seen := w.prev[cookie]
	if !seen {
		w.s.New++
	}
	info := findAttr(m[diagMsgLen:], attrInfo)
	switch {
	case len(info) >= offLastDataRecv+4:
		// A full socket. The kernel stamps it when data arrives and when
		// the handshake completes, so at - last_data_recv dates both a
		// request and a new connection, even one still in the accept queue,
		// to the jiffy rather than to the sample interval.
		w.s.Conns++
		c := connState{kind: kindFull, state: state}
		if w.ours(m, seen, prev, &c) {
			w.cur[cookie] = c
			return
		}
		t := at.Add(-time.Duration(binary.NativeEndian.Uint32(info[offLastDataRecv:])) * time.Millisecond)
		if len(info) >= offBytesReceived+8 {
			c.hasBytes = true
			c.bytes = binary.NativeEndian.Uint64(info[offBytesReceived:])
			c.out = binary.NativeEndian.Uint64(info[offBytesAcked:])
			// The peer's FIN advances the counter by one but is no request.
			if (state == tcpCloseWait || state == tcpLastAck || state == tcpClosing) && c.bytes > 0 {
				c.bytes--
			}
		}
		if len(info) >= offDataSegsOut+4 {
			c.hasSegs = true
			c.segs = binary.NativeEndian.Uint32(info[offDataSegsIn:])
			c.segsOut = binary.NativeEndian.Uint32(info[offDataSegsOut:])
		}
		if len(info) >= offBytesSent+8 {
			c.out = binary.NativeEndian.Uint64(info[offBytesSent:])
		}
		c.hasOut = c.hasBytes
		pi := w.peerIndex(peerOf(m))
		if state == tcpEstablished {
			w.peerBuf[pi].Conns++
			if seen && prev.kind == kindFull {
				w.peerBuf[pi].Held++
			}
		}
		if seen && prev.state == tcpEstablished && appClosing(state) {
			w.peerBuf[pi].AppClosed++
		}
		switch {
		case !seen || prev.kind != kindFull || !c.hasBytes || !prev.hasBytes:
			// A new connection: its handshake, and a request per data
			// segment it has received.
			w.peerBuf[pi].Opened++
			w.noteAt(pi, t, at, max(1, int(c.segs)))
		case c.bytes > prev.bytes:
			// Data arrived since the previous sample described the socket,
			// which it did after it began. The stamp is in jiffies and may
			// read a few milliseconds early; it cannot be earlier than that.
			if t.Before(w.prevStart) {
				t = w.prevStart
			}
			n := 1
			if c.hasSegs && prev.hasSegs && c.segs > prev.segs {
				n = int(c.segs - prev.segs)
			}
			if isKeepalive(prev, c) {
				c.keepalive = t
				c.owed = prev.owed || c.out-prev.out < c.bytes-prev.bytes
				break
			}
			w.noteAt(pi, t, at, n)
		case !prev.keepalive.IsZero() && replied(prev, c):
			// What looked like a keepalive got a reply-sized answer late:
			// it was a call.
			w.noteAt(pi, prev.keepalive, at, 1)
		case prev.owed && c.out == prev.out:
			// Nothing in, nothing out: the reply is still owed.
			c.keepalive, c.owed = prev.keepalive, true
		}
		// Same count as before: no data since, whatever the stamp says.
		w.cur[cookie] = c
	case state == tcpSynRecv:
		// A handshake in progress carries no timestamp; it started after
		// the previous sample, so now errs by less than an interval.
		w.s.Conns++
		c := connState{kind: kindReq, state: state}
		if w.ours(m, seen, prev, &c) {
			w.cur[cookie] = c
			return
		}
		if !seen {
			pi := w.peerIndex(peerOf(m))
			w.peerBuf[pi].Opened++
			w.noteAt(pi, at, at, 1)
		}
		w.cur[cookie] = c
	default:
		// A TIME_WAIT (or FIN_WAIT2) mini socket not seen before: a
		// connection that was opened, served and closed by the app between
		// two samples. One seen before as a full socket is the app closing
		// a connection already accounted for, such as an idle keep-alive.
		w.s.Closed++
		c := connState{kind: kindTW, state: state}
		if w.ours(m, seen, prev, &c) {
			w.cur[cookie] = c
			return
		}
		if seen && prev.state == tcpEstablished {
			w.peerBuf[w.peerIndex(peerOf(m))].AppClosed++
		}
		if !seen {
			t := at
			if state == tcpTimeWait {
				if left := time.Duration(binary.NativeEndian.Uint32(m[offExpires:])) * time.Millisecond; left < timeWaitLen {
					t = at.Add(left - timeWaitLen)
				}
				if t.Before(w.prevStart) {
					t = w.prevStart
				}
			}
			pi := w.peerIndex(peerOf(m))
			w.peerBuf[pi].Opened++
			w.noteAt(pi, t, at, 1)
			if w.gone != nil {
				// Its full socket's destroy message comes under another
				// cookie when no dump saw it alive: see settleGone.
				w.gone.curTW[tupleOf(m)] = struct{}{}
			}
		}
		w.cur[cookie] = c
	}
}

// note records n requests from peer, the latest at t, which cannot be
// later than the sample. The zero peer is activity the kernel did not
// attribute.
func (w *Watcher) note(peer netip.Addr, t, at time.Time, n int) {
	w.noteAt(w.peerIndex(peer), t, at, n)
}

// noteAt is note for the peer at index i of peerBuf.
func (w *Watcher) noteAt(i int, t, at time.Time, n int) {
	if t.After(at) {
		t = at
	}
	if t.After(w.last) {
		w.last = t
	}
	a := &w.peerBuf[i]
	if t.After(a.Last) {
		a.Last = t
	}
	a.Count += n
}

// peerIndex returns the index in peerBuf of peer's activity in the sample
// being taken, adding it if the sample has none yet.
func (w *Watcher) peerIndex(peer netip.Addr) int {
	if w.peerAt == nil {
		w.peerAt = make(map[netip.Addr]int, 16)
	}
	i, ok := w.peerAt[peer]
	if !ok {
		i = len(w.peerBuf)
		w.peerAt[peer] = i
		w.peerBuf = append(w.peerBuf, PeerActivity{Addr: peer})
	}
	return i
}

// ours reports whether the socket in m is one of gracefulinit's own
// connections to the app (selfconn), recording the answer in c. It asks
// for a socket's first two samples (selfconn knows a dial from before its
// connect; the second ask is a margin, not a need).
func (w *Watcher) ours(m []byte, seen bool, prev connState, c *connState) bool {
	if seen && (prev.self || prev.checks >= 2) {
		c.self, c.checks = prev.self, prev.checks
		return c.self
	}
	c.checks = prev.checks + 1
	c.self = w.own(netip.AddrPortFrom(peerOf(m), binary.BigEndian.Uint16(m[offDport:])),
		netip.AddrPortFrom(addrOf(m[offFamily], m[offSrc:offSrc+16]), binary.BigEndian.Uint16(m[offSport:])))
	return c.self
}

// own reports whether the app's connection from peer to its address app
// is one of gracefulinit's own.
func (w *Watcher) own(peer, app netip.AddrPort) bool {
	if w.isSelf != nil {
		return w.isSelf(peer, app)
	}
	return selfconn.Contains(peer, app)
}

// keepaliveBytes bounds the data of a keepalive, per segment each way: an
// HTTP/2 or gRPC PING frame and its ACK are 17 bytes (39 to 46 under TLS), a
// Dubbo heartbeat and its answer about as many. An HTTP/1 request or
// answer, or a gRPC call, is longer.
const keepaliveBytes = 48

// isKeepalive reports whether what a connection received since the
// previous sample is keepalive traffic, not a call: only small segments
// in, and nothing but small segments out (no reply-sized send). A socket
// without the counters (Linux before 4.6) has no keepalives.
func isKeepalive(prev, c connState) bool {
	if !c.hasSegs || !prev.hasSegs || !c.hasOut || !prev.hasOut || c.segs <= prev.segs {
		return false
	}
	in := c.bytes - prev.bytes
	if in > keepaliveBytes*uint64(c.segs-prev.segs) {
		return false
	}
	out := c.out - prev.out
	return out <= keepaliveBytes*uint64(max(c.segsOut-prev.segsOut, 1))
}

// replied reports whether a connection sent more than keepalive answers
// since the previous sample while receiving nothing.
func replied(prev, c connState) bool {
	if !c.hasOut || !prev.hasOut || c.bytes != prev.bytes {
		return false
	}
	return c.out-prev.out > keepaliveBytes*uint64(max(c.segsOut-prev.segsOut, 1))
}

// appClosing reports whether a connection in state has been closed by the
// app first (it sent its FIN before the peer's).
func appClosing(state uint8) bool {
	return state == tcpFinWait1 || state == tcpFinWait2 || state == tcpTimeWait || state == tcpClosing
}

// peerOf reads the remote address of the socket in m.
func peerOf(m []byte) netip.Addr {
	return addrOf(m[offFamily], m[offDst:offDst+16])
}

// addrOf reads an inet_diag address of family f; IPv4-mapped IPv6
// addresses come out as IPv4, so a dual-stack listener's IPv4 callers are
// the same peers as a plain IPv4 listener's.
func addrOf(f byte, b []byte) netip.Addr {
	switch f {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(b[:4]))
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(b[:16])).Unmap()
	}
	return netip.Addr{}
}

// findAttr returns the payload of the first netlink attribute of type typ.
func findAttr(b []byte, typ uint16) []byte {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return nil
		}
		if binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == typ {
			return b[4:l]
		}
		b = b[min(align4(l), len(b)):]
	}
	return nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// portRange is an inclusive range of local ports.
type portRange struct{ lo, hi uint16 }

// portSet holds one bit per port.
type portSet [1024]uint64

func (s *portSet) add(p uint16)      { s[p>>6] |= 1 << (p & 63) }
func (s *portSet) has(p uint16) bool { return s[p>>6]&(1<<(p&63)) != 0 }

// makePorts checks ports and returns them as a set and as sorted,
// merged ranges.
func makePorts(ports []int) (*portSet, []portRange, error) {
	if len(ports) == 0 {
		return nil, nil, errors.New("drain: no ports to watch")
	}
	sorted := slices.Clone(ports)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	set := new(portSet)
	var ranges []portRange
	for _, p := range sorted {
		if p < 1 || p > 65535 {
			return nil, nil, fmt.Errorf("drain: port %d out of range 1-65535", p)
		}
		set.add(uint16(p))
		if n := len(ranges); n > 0 && int(ranges[n-1].hi)+1 == p {
			ranges[n-1].hi = uint16(p)
			continue
		}
		ranges = append(ranges, portRange{uint16(p), uint16(p)})
	}
	return set, ranges, nil
}

// portFilter compiles "the local port lies in one of ranges" to inet_diag
// bytecode. The kernel runs it per socket: an op's yes or no offset moves
// on by that many bytes; landing exactly on the end accepts, overshooting
// it by 4 rejects. Per range:
//
//	+0  S_GE lo  yes +8 (next test)  no +20 (next range, or reject)
//	+8  S_LE hi  yes +8 (the jump)   no +12 (next range, or reject)
//	+16 JMP          no: to the end (accept); absent after the last range
//
// Every op is reachable along the yes offsets and every no offset lands on
// an op or just past the end, which is what the kernel's audit demands.
// Only GE and LE are used, as the kernel has had them from the start; the
// port to compare sits in the no field of the op that follows each test.
func portFilter(ranges []portRange) []byte {
	size := 20*len(ranges) - 4
	bc := make([]byte, size)
	for i, r := range ranges {
		o := 20 * i
		putOp(bc[o:], bcSGE, 8, 20)
		binary.NativeEndian.PutUint16(bc[o+6:], r.lo)
		putOp(bc[o+8:], bcSLE, 8, 12)
		binary.NativeEndian.PutUint16(bc[o+14:], r.hi)
		if i < len(ranges)-1 {
			putOp(bc[o+16:], bcJmp, 4, uint16(size-o-16))
		}
	}
	return bc
}

// putOp writes a struct inet_diag_bc_op.
func putOp(b []byte, code, yes byte, no uint16) {
	b[0] = code
	b[1] = yes
	binary.NativeEndian.PutUint16(b[2:], no)
}
