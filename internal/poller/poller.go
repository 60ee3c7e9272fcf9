// Package poller tells the owners of many sockets when each has something
// to read, from one epoll set and one goroutine, so that an idle socket
// parks no goroutine of its own. The server's connections (partyline's
// Conn) and the bench's both wait in one.
//
// A Poller's set and goroutine exist only while sockets are registered:
// the first Add creates them, and the last Remove closes the set, which
// ends the goroutine, so an idle Poller holds neither a goroutine nor a
// descriptor. The goroutine does not block in epoll_wait, which would hold
// a thread and keep the runtime's sysmon spinning: the set is non-blocking
// and itself registered with the runtime's network poller, which wakes the
// goroutine when the set has events.
//
// Sockets are registered edge-triggered: a handler is told once per
// arrival, and must then read its socket until it is drained (a read finds
// it empty, or returns less than asked when no hangup was reported); what
// arrives after that is a new event. A WriteHandler is also told when its
// socket, having refused a write (EAGAIN), can take more, so that a socket
// the runtime's network poller does not know can still be written to with
// a wait.
//
// Epoll is Linux's. Elsewhere New returns nil, and each socket needs a
// reader goroutine of its own.
package poller

// Handler is told when its socket has something to read.
//
// A Handler is compared with == to the one registered (Remove), so it must
// be of a comparable type: a pointer, typically.
type Handler interface {
	// Ready reports that bytes have arrived on the socket, or were waiting
	// when it was added. With hangup, the peer has closed its end or the
	// socket has failed (EPOLLRDHUP, EPOLLHUP or EPOLLERR): the end of the
	// stream, or an error, follows the bytes still to be read.
	//
	// Ready is called on the Poller's goroutine, one call at a time for all
	// of a Poller's handlers, so it must not wait: it reads what has
	// arrived, or hands the reading to a goroutine. It may call Add and
	// Remove, not Close.
	Ready(hangup bool)
}

// WriteHandler is a Handler that is also told when its socket can take
// more bytes: Add registers its socket for that too.
type WriteHandler interface {
	Handler
	// Writable reports that the socket may take bytes again, or has
	// failed: after a write that found it full (EAGAIN), there is one
	// call once it has room, and one when it is added. It is called on
	// the Poller's goroutine, as Ready is, and must not wait.
	Writable()
}
