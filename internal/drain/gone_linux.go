//go:build linux

package drain

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// A connection that a client opens and closes between two samples leaves
// no socket for the next dump to see: the app's end goes CLOSE_WAIT,
// LAST_ACK and away within milliseconds, with no TIME_WAIT (that stays
// with the side that closed first, the client). The kernel announces every
// full socket it destroys to the sock_diag destroy multicast groups, with
// its tcp_info, and a Watcher reads those announcements at each sample.
// Joining the groups takes CAP_NET_ADMIN in the network namespace; without
// it the Watcher samples alone.

// Multicast groups of NETLINK_SOCK_DIAG (enum sknetlink_groups in
// linux/sock_diag.h).
const (
	groupTCPDestroy  = 1 // SKNLGRP_INET_TCP_DESTROY
	groupTCP6Destroy = 3 // SKNLGRP_INET6_TCP_DESTROY

	offDport = 6  // id.idiag_dport in struct inet_diag_msg, network byte order
	offDst   = 24 // id.idiag_dst[4]

	// goneBufLen holds one destroy message (one per datagram, a few hundred
	// bytes) with room for any growth of struct tcp_info.
	goneBufLen = 8 << 10
	// maxGoneReads bounds the messages one sample reads, so that a storm of
	// closing connections cannot hold the drain's loop; more is treated as
	// an overflow.
	maxGoneReads = 4096
	// lateKeep is how long a connection that vanished from the dumps waits
	// for its destroy message (see goneWatch.late). The kernel sends it
	// from a work queue, within milliseconds on an idle machine. One lost
	// to an overflow (itself counted as activity) never comes, and one
	// reset by the peer comes only when the app closes its end: forgotten
	// after this, such a message counts as a connection never seen, dated
	// by its last data.
	lateKeep = 5 * time.Second
)

// goneEvent is a connection on a watched port that the kernel destroyed,
// as its destroy message describes it.
type goneEvent struct {
	conn     tuple
	cookie   uint64
	at       time.Time // when the message was read: the socket was gone by then
	t        time.Time // the last data (or the handshake) it received; never early
	bytes    uint64    // tcpi_bytes_received, the peer's FIN included if it came
	hasBytes bool
}

// goneWatch is the socket subscribed to the destroy groups.
type goneWatch struct {
	fd       int
	filtered bool // the kernel drops messages about other ports
	buf      []byte
	evs      []goneEvent // read at the start of the current sample
	msgs     int         // destroy messages about connections read in the current sample, watched or not (for tests)
	// The connections of the TIME_WAIT and FIN_WAIT2 sockets that were new
	// in the current and the previous sample.
	curTW, prevTW map[tuple]struct{}
	// late holds the full sockets that a sample saw and the next one did
	// not, whose destroy messages have not been read yet. The kernel takes
	// a socket out of the tables the dump walks, then announces it from a
	// work queue, which a loaded machine runs late: the message can come a
	// sample or more after the socket vanished. Without this, that message
	// would find no sample that saw the socket, and be counted as a
	// connection opened and closed unseen, the data it received before the
	// last sample that saw it as new activity.
	late map[uint64]lateConn
	// reported holds the cookies of the current sample's messages.
	reported map[uint64]struct{}
}

// lateConn is a vanished socket as the last sample that saw it described
// it.
type lateConn struct {
	c     connState
	since time.Time // when that sample began: its data came after
}

// tuple names a connection by its addresses and ports.
type tuple struct {
	family   uint8
	sport    uint16
	dport    uint16
	src, dst [16]byte
}

// tupleOf reads the connection a struct inet_diag_msg describes.
func tupleOf(m []byte) tuple {
	return tuple{
		family: m[offFamily],
		sport:  binary.BigEndian.Uint16(m[offSport:]),
		dport:  binary.BigEndian.Uint16(m[offDport:]),
		src:    [16]byte(m[offSrc : offSrc+16]),
		dst:    [16]byte(m[offDst : offDst+16]),
	}
}

// joinFunc joins a netlink multicast group; tests substitute failing ones.
type joinFunc func(fd, group int) error

func joinGroup(fd, group int) error {
	return unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, group)
}

// openGone subscribes a new netlink socket to the TCP destroy groups of
// both address families, with a socket filter for the watched ports when
// the kernel takes one.
func openGone(ranges []portRange, join joinFunc) (*goneWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	g := &goneWatch{
		fd:     fd,
		buf:    make([]byte, goneBufLen),
		evs:    make([]goneEvent, 0, 16),
		curTW:  make(map[tuple]struct{}, 16),
		prevTW: make(map[tuple]struct{}, 16),
	}
	// The filter goes on before the groups are joined, so that no message
	// about another port is ever queued. Every socket the netns destroys is
	// announced, the app's outgoing connections and other processes' too;
	// dropped in the kernel, they cost no read here and cannot make the
	// queue overflow.
	if len(ranges) <= maxFilterRanges {
		prog := goneFilter(ranges)
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		g.filtered = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog) == nil
	}
	for _, group := range []int{groupTCPDestroy, groupTCP6Destroy} {
		if err := join(fd, group); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("joining sock_diag destroy group %d: %w", group, err)
		}
	}
	return g, nil
}

func (g *goneWatch) close() error { return unix.Close(g.fd) }

// goneFilter compiles "the local port lies in one of ranges" to classic
// BPF over a destroy message. The ranges are sorted and disjoint, so a port
// not above a range's top is in that range or in none. Per range:
//
//	+0 jgt hi   yes: next range (+4)   no: +1
//	+1 jge lo   yes: +2 (accept)       no: +3 (reject)
//	+2 ret all
//	+3 ret 0
//
// Every jump is short, whatever the number of ranges.
func goneFilter(ranges []portRange) []unix.SockFilter {
	prog := make([]unix.SockFilter, 0, 2+4*len(ranges))
	// A half-word load reads network byte order, so this is the port.
	prog = append(prog, unix.SockFilter{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: nlmsgHdrLen + offSport})
	for _, r := range ranges {
		prog = append(prog,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, Jt: 3, Jf: 0, K: uint32(r.hi)},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(r.lo)},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: math.MaxUint32},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0},
		)
	}
	return append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0})
}

// readGone reads every destroy message queued since the previous sample,
// keeps those about watched connections for settleGone, and counts a lost
// message as activity now. A read error other than an empty queue ends the
// watch of destroyed sockets; the Watcher goes on sampling.
func (w *Watcher) readGone() {
	g := w.gone
	if g == nil {
		return
	}
	g.evs = g.evs[:0]
	g.msgs = 0
	for range maxGoneReads {
		n, err := unix.Read(g.fd, g.buf)
		switch {
		case err == nil:
			w.parseGone(g.buf[:n], time.Now())
			continue
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err == unix.ENOBUFS:
			// The queue overflowed and the kernel dropped messages, all
			// about watched ports when the filter is on: plenty of traffic.
			// The queued ones are still there to read.
			now := time.Now()
			w.note(netip.Addr{}, now, now, 1)
			continue
		}
		w.goneErr = fmt.Errorf("reading sock_diag destroy messages: %w", err)
		_ = g.close()
		w.gone = nil
		return
	}
	// Still more: connections close faster than they can be read.
	now := time.Now()
	w.note(netip.Addr{}, now, now, 1)
}

// parseGone handles one datagram from the destroy groups, read at at.
func (w *Watcher) parseGone(b []byte, at time.Time) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		body := b[nlmsgHdrLen:l]
		b = b[min(align4(l), len(b)):]
		if typ != unix.SOCK_DIAG_BY_FAMILY {
			continue
		}
		// A socket bound but never connected (a port reservation, a
		// listener) has no peer port; only connections count here.
		if len(body) >= diagMsgLen && binary.BigEndian.Uint16(body[offDport:]) != 0 {
			w.gone.msgs++
		}
		if e, ok := w.goneMsg(body, at); ok {
			w.gone.evs = append(w.gone.evs, e)
		}
	}
}

// goneMsg reads a destroy message: ok if it is about a connection on a
// watched port and address.
func (w *Watcher) goneMsg(m []byte, at time.Time) (goneEvent, bool) {
	if len(m) < diagMsgLen {
		return goneEvent{}, false
	}
	if f := m[offFamily]; f != unix.AF_INET && f != unix.AF_INET6 {
		return goneEvent{}, false
	}
	// A listener, or a socket bound but never connected, has no peer port.
	if !w.ports.has(binary.BigEndian.Uint16(m[offSport:])) || binary.BigEndian.Uint16(m[offDport:]) == 0 || !w.localAllowed(m) {
		return goneEvent{}, false
	}
	e := goneEvent{
		conn:   tupleOf(m),
		cookie: uint64(binary.NativeEndian.Uint32(m[offCookie:])) | uint64(binary.NativeEndian.Uint32(m[offCookie+4:]))<<32,
		at:     at,
		t:      at,
	}
	info := findAttr(m[diagMsgLen:], attrInfo)
	if len(info) >= offLastDataRecv+4 {
		// The kernel took tcp_info when it sent the message, at or before
		// at, so this errs late, by up to the time the message waited.
		e.t = at.Add(-time.Duration(binary.NativeEndian.Uint32(info[offLastDataRecv:])) * time.Millisecond)
	}
	if len(info) >= offBytesReceived+8 {
		e.hasBytes = true
		e.bytes = binary.NativeEndian.Uint64(info[offBytesReceived:])
	}
	return e, true
}

// settleGone accounts for the destroyed connections read at the start of
// the sample, now that its dump is in cur. Each was gone before the dump
// began, so the dump can have seen only the TIME_WAIT (or FIN_WAIT2) socket
// it left, under the same cookie.
func (w *Watcher) settleGone() {
	if w.gone == nil {
		return
	}
	g := w.gone
	if g.late == nil {
		g.late = make(map[uint64]lateConn, 16)
		g.reported = make(map[uint64]struct{}, 16)
	}
	clear(g.reported)
	for _, e := range g.evs {
		w.s.Gone++
		g.reported[e.cookie] = struct{}{}
		p, seen := w.prev[e.cookie]
		since := w.prevStart
		if l, ok := g.late[e.cookie]; ok && !seen {
			p, seen, since = l.c, true, l.since
			delete(g.late, e.cookie)
		}
		if p.self {
			continue
		}
		peer := addrOf(e.conn.family, e.conn.dst[:])
		if seen && p.kind == kindFull {
			// A sample saw it alive: only data since then is activity.
			// The destroyed socket's count may include the peer's FIN,
			// which p's does not, so one byte more is no request (a
			// one-byte request cut off by a reset is the price).
			if e.hasBytes && p.hasBytes && e.bytes > p.bytes+1 {
				t := e.t
				if t.Before(since) {
					t = since
				}
				w.note(peer, t, e.at, 1)
			}
			continue
		}
		if _, now := w.cur[e.cookie]; seen || now {
			// Its TIME_WAIT socket, which the dumps have dated.
			continue
		}
		// A full socket that no dump saw has no cookie until its destroy
		// message, so the TIME_WAIT socket it left, if any, has another:
		// the dumps dated that too, to the millisecond where this message
		// cannot, and it was new in this sample or the previous one.
		if _, ok := w.gone.curTW[e.conn]; ok {
			continue
		}
		if _, ok := w.gone.prevTW[e.conn]; ok {
			continue
		}
		// Opened and closed between two samples: no dump ever saw it.
		w.s.GoneUnseen++
		if w.own(netip.AddrPortFrom(peer, e.conn.dport), netip.AddrPortFrom(addrOf(e.conn.family, e.conn.src[:]), e.conn.sport)) {
			continue
		}
		pi := w.peerIndex(peer)
		w.peerBuf[pi].Opened++
		w.noteAt(pi, e.t, e.at, 1)
	}
	w.keepLate()
}

// keepLate moves the full sockets of the previous sample that this one
// neither saw nor read a destroy message for into late, and forgets those
// that waited there too long.
func (w *Watcher) keepLate() {
	g := w.gone
	for cookie, l := range g.late {
		if w.startAt.Sub(l.since) > lateKeep {
			delete(g.late, cookie)
		}
	}
	for cookie, p := range w.prev {
		if p.kind != kindFull {
			continue
		}
		if _, ok := w.cur[cookie]; ok {
			continue
		}
		if _, ok := g.reported[cookie]; ok {
			continue
		}
		g.late[cookie] = lateConn{c: p, since: w.prevStart}
	}
}

// goneUnwatched says why destroyed sockets are not watched: nil while
// they are.
func (w *Watcher) goneUnwatched() error { return w.goneErr }
