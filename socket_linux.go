package partyline

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/partyline/partyline/internal/poller"
)

// msgNoSignal keeps a send to a closed peer from raising SIGPIPE.
const msgNoSignal = syscall.MSG_NOSIGNAL

// adopt hands raw's socket to the server's poller and makes c use it as a
// polledSocket (socket.go). It reports false, and leaves raw as it is, for
// a connection that is not a plain TCP connection (TLS), or when the
// poller fails. The poller may report the socket ready as soon as adopt
// has registered it, before c is served: c.readState must say that a
// reader is running.
func (c *Conn) adopt(raw net.Conn) bool {
	tcp, ok := raw.(*net.TCPConn)
	if !ok || c.srv.poller == nil {
		return false
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	var errno syscall.Errno
	if err := rc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		fd, errno = int(r), e
	}); err != nil || errno != 0 {
		return false
	}
	if err := c.srv.poller.Add(fd, (*polledConn)(c)); err != nil {
		c.logger().Warn("reading without the poller", "err", err)
		syscall.Close(fd)
		return false
	}
	c.sock.fd = int32(fd)
	// The duplicate shares the socket, non-blocking: the original goes, and
	// with it what the runtime kept for it.
	raw.Close()
	c.raw, c.rawConn = &c.sock, (*polledRawConn)(&c.sock)
	return true
}

// polled reports whether the server's poller watches the socket: then no
// goroutine reads it while nothing arrives.
func (c *Conn) polled() bool { return c.raw == net.Conn(&c.sock) }

// leavePoller takes a polled socket out of the poller, as it is closed.
// A new socket given the same descriptor number, and registered since, is
// left alone.
func (c *Conn) leavePoller() {
	if c.polled() {
		c.srv.poller.Remove(int(c.sock.fd), (*polledConn)(c))
	}
}

// polledConn is a Conn as the poller sees it: its poller.WriteHandler,
// kept out of Conn's exported methods.
type polledConn Conn

var (
	_ net.Conn            = (*polledSocket)(nil)
	_ poller.WriteHandler = (*polledConn)(nil)
	_ syscall.RawConn     = (*polledRawConn)(nil)
	_ directIO            = (*polledRawConn)(nil)
)

// Ready is the poller reporting that bytes have arrived, or that the client
// has gone (hangup): a call waiting to read tries again, and the
// connection's reader is told.
func (p *polledConn) Ready(hangup bool) {
	wake(&p.sock.readReady, &p.sock.readWaiter)
	(*Conn)(p).ready(hangup)
}

// Writable is the poller reporting that the socket has room again, or has
// failed: a call waiting to write tries again.
func (p *polledConn) Writable() { wake(&p.sock.writeReady, &p.sock.writeWaiter) }

// wake counts a report of the poller's and wakes the call waiting for it.
func wake(ready *atomic.Uint32, waiter *atomic.Pointer[chan struct{}]) {
	ready.Add(1)
	if ch := waiter.Load(); ch != nil {
		select {
		case *ch <- struct{}{}:
		default:
		}
	}
}

// acquire takes a reference to the descriptor for one call; it fails once
// the socket is closed.
func (s *polledSocket) acquire() bool {
	for {
		state := s.state.Load()
		if state&socketClosed != 0 {
			return false
		}
		if s.state.CompareAndSwap(state, state+1) {
			return true
		}
	}
}

// release gives a reference back. The last one after Close closes the
// descriptor.
func (s *polledSocket) release() {
	if s.state.Add(^uint32(0)) == socketClosed {
		syscall.Close(int(s.fd))
	}
}

// do runs op on the descriptor until it does not report EAGAIN; after an
// EAGAIN it waits for the poller's next report on ready, within the
// deadline. It fails with net.ErrClosed once the socket is closed.
func (s *polledSocket) do(ready *atomic.Uint32, waiter *atomic.Pointer[chan struct{}], deadline *atomic.Int64, op func(fd int) error) error {
	for {
		seen := ready.Load()
		if !s.acquire() {
			return net.ErrClosed
		}
		err := op(int(s.fd))
		s.release()
		switch err {
		case syscall.EAGAIN:
		case syscall.EINTR:
			continue
		default:
			return err
		}
		if err := s.wait(ready, waiter, seen, deadline.Load()); err != nil {
			return err
		}
	}
}

// wait waits until ready has moved from seen, the socket is closed or the
// deadline passes (os.ErrDeadlineExceeded). One call at a time waits on
// each of waiter's directions: the connection's reader reads, and the
// goroutine holding its writer role writes (and, after the reader has
// ended, reads what the client still sends).
func (s *polledSocket) wait(ready *atomic.Uint32, waiter *atomic.Pointer[chan struct{}], seen uint32, deadline int64) error {
	ch := make(chan struct{}, 1)
	waiter.Store(&ch)
	defer waiter.Store(nil)
	var expired <-chan time.Time
	if deadline != 0 {
		d := time.Until(time.Unix(0, deadline))
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		expired = timer.C
	}
	for ready.Load() == seen && s.state.Load()&socketClosed == 0 {
		select {
		case <-ch:
		case <-expired:
			return os.ErrDeadlineExceeded
		}
	}
	return nil
}

// Read reads what has arrived, waiting for something to if nothing has.
func (s *polledSocket) Read(b []byte) (int, error) {
	n := 0
	err := s.do(&s.readReady, &s.readWaiter, &s.readDeadline, func(fd int) (err error) {
		n, err = sysRead(uintptr(fd), b)
		return err
	})
	switch {
	case err != nil:
		return 0, err
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of b, waiting for room as needed.
func (s *polledSocket) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		n := 0
		err := s.do(&s.writeReady, &s.writeWaiter, &s.writeDeadline, func(fd int) (err error) {
			n, err = sysWrite(uintptr(fd), b[written:])
			return err
		})
		if err != nil {
			return written, err
		}
		if n <= 0 {
			return written, io.ErrShortWrite
		}
		written += n
	}
	return written, nil
}

// Close closes the socket. A call waiting on it fails with net.ErrClosed;
// the descriptor is closed once no call uses it.
func (s *polledSocket) Close() error {
	if !s.acquire() {
		return net.ErrClosed
	}
	if s.state.Or(socketClosed)&socketClosed != 0 { // another Close won
		s.release()
		return net.ErrClosed
	}
	wake(&s.readReady, &s.readWaiter)
	wake(&s.writeReady, &s.writeWaiter)
	s.release()
	return nil
}

// CloseWrite shuts down the sending side: the client reads the end of the
// stream after what was written.
func (s *polledSocket) CloseWrite() error {
	if !s.acquire() {
		return net.ErrClosed
	}
	defer s.release()
	return syscall.Shutdown(int(s.fd), syscall.SHUT_WR)
}

func (s *polledSocket) LocalAddr() net.Addr { return s.addr(syscall.Getsockname) }

func (s *polledSocket) RemoteAddr() net.Addr { return s.addr(syscall.Getpeername) }

// addr asks the kernel for one of the socket's addresses: the socket keeps
// none.
func (s *polledSocket) addr(get func(fd int) (syscall.Sockaddr, error)) net.Addr {
	if !s.acquire() {
		return nil
	}
	sa, err := get(int(s.fd))
	s.release()
	if err != nil {
		return nil
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}
	}
	return nil
}

func (s *polledSocket) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *polledSocket) SetReadDeadline(t time.Time) error {
	s.readDeadline.Store(unixNanos(t))
	return nil
}

func (s *polledSocket) SetWriteDeadline(t time.Time) error {
	s.writeDeadline.Store(unixNanos(t))
	return nil
}

// unixNanos is t in Unix nanoseconds, or 0 for the zero time.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// polledRawConn is a polledSocket as a syscall.RawConn: the reader's and
// the writer's own non-blocking calls (reader.go, writer.go) and the lag
// rule's question to the kernel (lag.go) go through it, holding the
// descriptor for the length of the call.
type polledRawConn polledSocket

func (r *polledRawConn) Control(f func(fd uintptr)) error {
	s := (*polledSocket)(r)
	if !s.acquire() {
		return net.ErrClosed
	}
	defer s.release()
	f(uintptr(s.fd))
	return nil
}

// Read calls f until it returns true, waiting for the socket to be readable
// each time it returns false.
func (r *polledRawConn) Read(f func(fd uintptr) bool) error {
	s := (*polledSocket)(r)
	return s.do(&s.readReady, &s.readWaiter, &s.readDeadline, func(fd int) error { return again(f(uintptr(fd))) })
}

// Write calls f until it returns true, waiting for the socket to be
// writable each time it returns false.
func (r *polledRawConn) Write(f func(fd uintptr) bool) error {
	s := (*polledSocket)(r)
	return s.do(&s.writeReady, &s.writeWaiter, &s.writeDeadline, func(fd int) error { return again(f(uintptr(fd))) })
}

// readNow makes one non-blocking read, without the callback of Read.
func (r *polledRawConn) readNow(buf []byte) (int, error) {
	s := (*polledSocket)(r)
	if !s.acquire() {
		return 0, net.ErrClosed
	}
	defer s.release()
	n, err := sysRead(uintptr(s.fd), buf)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// writeNow makes one non-blocking write of frames, without the callback
// of Write, and returns how many bytes the socket took, or -1.
func (r *polledRawConn) writeNow(frames [][]byte) int {
	s := (*polledSocket)(r)
	if !s.acquire() {
		return -1
	}
	defer s.release()
	return writeFrames(uintptr(s.fd), frames)
}

// unackedNow asks the kernel how many bytes written the peer has not
// acknowledged (lag_linux.go), without the callback of Control.
func (r *polledRawConn) unackedNow() (int, bool) {
	s := (*polledSocket)(r)
	if !s.acquire() {
		return 0, false
	}
	defer s.release()
	return sysUnacked(uintptr(s.fd))
}

// again is a RawConn callback's answer as do wants it.
func again(done bool) error {
	if done {
		return nil
	}
	return syscall.EAGAIN
}
