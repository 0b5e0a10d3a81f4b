package drain

import (
	"errors"
	"time"
)

// ErrUnavailable is wrapped by NewWatcher's error when the kernel's
// sock_diag interface cannot be used here; a quiet drain then runs as a
// fixed one.
var ErrUnavailable = errors.New("sock_diag unavailable")

// Sample is what one look at the app's sockets found.
type Sample struct {
	At time.Time // when the sample was taken
	// LastActivity is the latest new connection or received byte seen on
	// the watched ports by this or any earlier sample of the Watcher; zero
	// if none. Never later than At.
	LastActivity time.Time
	Conns        int // open connections on the watched ports, handshakes under way included
	Closed       int // connections the app has closed that the kernel still keeps (TIME_WAIT, FIN_WAIT2)
	New          int // of Conns and Closed, those the previous sample did not see
	Listeners    int // listening sockets on the watched ports
	// Gone counts the connections on the watched ports that the kernel
	// destroyed since the previous sample, as its destroy messages report
	// them (see Watcher); always 0 where those cannot be read. Of these,
	// GoneUnseen left nothing that a sample saw, neither the connection
	// nor a TIME_WAIT socket: opened and closed by the client in between.
	Gone, GoneUnseen int
	// Peers is the activity of each remote address in this sample, in no
	// order; the next Sample reuses it.
	Peers []PeerActivity
}
