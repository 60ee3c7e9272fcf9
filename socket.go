package partyline

import "sync/atomic"

// polledSocket is a connection's TCP socket once the server's poller
// watches it in place of the runtime's network poller (adopt, in
// socket_linux.go). The runtime keeps, for every socket it polls, a poll
// descriptor of 512 bytes outside the heap, and a netFD and two addresses
// in it: more than an idle connection needs for all the rest. So the
// server takes a duplicate of the descriptor, registers it with its poller
// and closes the net.Conn, and the socket does what the connection asks of
// a net.Conn and of a syscall.RawConn with non-blocking system calls of its
// own. A call that must wait (a write to a full socket, the reads of the
// close handshake) waits for the poller to report the socket ready.
//
// It lives inside its Conn, which the poller tells when the socket is
// ready (polledConn); off Linux, and for TLS, it is unused.
type polledSocket struct {
	fd int32
	// state counts the calls using fd, and socketClosed is set by Close.
	// Whichever of Close and the calls ends last closes the descriptor, so
	// that no call uses a closed descriptor, or another socket's that
	// reuses its number.
	state atomic.Uint32
	// readReady and writeReady count the poller's reports; a call that
	// found the socket not ready waits, with its channel in readWaiter or
	// writeWaiter, until the count has moved.
	readReady, writeReady   atomic.Uint32
	readWaiter, writeWaiter atomic.Pointer[chan struct{}]
	// readDeadline and writeDeadline bound the waits, in Unix nanoseconds;
	// 0 is none. A new deadline applies to the calls that follow.
	readDeadline, writeDeadline atomic.Int64
}

// socketClosed is polledSocket.state's bit for Close.
const socketClosed = 1 << 31
