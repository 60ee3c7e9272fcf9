package bench

import (
	"io"
	"os"
	"syscall"
	"time"

	"github.com/partyline/partyline/internal/poller"
)

// A pollReader reads many connections from the goroutine of one
// internal/poller Poller: their sockets sit in its epoll set, and on each
// event it reads the socket dry into its one buffer and parses it there. A
// delivery then costs one read(2) and a share of an epoll_wait, where a
// reader goroutine per connection costs a wake-up, a read, a read that
// finds nothing, and a park. The sockets are taken from the runtime
// (detach), whose own epoll set would otherwise hear of every arrival too.
type pollReader struct {
	r      *run
	poller *poller.Poller
	buf    []byte // what a socket is read into: the Poller makes one Ready call at a time
}

// polled is a connection in a pollReader's set: its socket's handler.
type polled struct {
	pr *pollReader
	c  *client
	fd int // its socket, detached
}

var _ poller.Handler = (*polled)(nil)

// newPollReaders returns n pollReaders for r's connections. They hold no
// goroutine until a connection is added; close stops each.
func newPollReaders(r *run, n int) []*pollReader {
	prs := make([]*pollReader, n)
	for i := range prs {
		prs[i] = &pollReader{r: r, poller: poller.New(), buf: make([]byte, pollerBufferSize)}
	}
	return prs
}

// add has pr read c from now on, bytes already waiting included, and
// detaches c's socket from the runtime. On failure c is untouched.
func (pr *pollReader) add(c *client) error {
	fd, err := c.conn.dup()
	if err != nil {
		return err
	}
	if err := pr.poller.Add(fd, &polled{pr, c, fd}); err != nil {
		syscall.Close(fd)
		return err
	}
	c.conn.detach(fd)
	return nil
}

// close stops pr's reading: once it returns, no connection is being read
// or will be, and their sockets may be closed.
func (pr *pollReader) close() { pr.poller.Close() }

// Ready reads the connection's socket dry and handles what it read. A
// connection that is over leaves the poller.
func (pc *polled) Ready(hangup bool) {
	if err := pc.pr.drain(pc.c, pc.fd, hangup); err != nil {
		pc.pr.poller.Remove(pc.fd, pc)
		pc.pr.r.ended(pc.c, err)
	}
}

// drain reads c's socket until it is empty and handles what it read; after
// a hangup, until the read that reports the end. It returns an error when
// the connection is over.
func (pr *pollReader) drain(c *client, fd int, hangup bool) error {
	for {
		n, err := syscall.Read(fd, pr.buf)
		switch {
		case err == syscall.EAGAIN:
			return nil
		case err == syscall.EINTR:
			continue
		case err != nil:
			return os.NewSyscallError("read", err)
		case n == 0:
			return io.EOF
		}
		if err := pr.r.receive(c, pr.buf[:n]); err != nil {
			return err
		}
		if n < len(pr.buf) && !hangup {
			// Drained: edge-triggered, the next arrival is a new event.
			return nil
		}
	}
}

// dup returns a second descriptor for c's socket (close-on-exec, and
// non-blocking like the first), for a poller.
func (c *wsConn) dup() (int, error) {
	fd := -1
	var errno syscall.Errno
	if err := c.raw.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		fd, errno = int(r), e
	}); err != nil {
		return -1, err
	}
	if errno != 0 {
		return -1, os.NewSyscallError("fcntl", errno)
	}
	return fd, nil
}

// detach closes c's net.Conn, so the runtime forgets the socket, and
// writes to fd, its dup, from now on. The socket stays open until closeFD.
func (c *wsConn) detach(fd int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.Close()
	c.conn, c.raw, c.fd = nil, nil, fd
}

// writeFD writes b to fd, a non-blocking socket, waiting for room until
// deadline. A full socket is rare (the server has stopped reading), so it
// waits by sleeping.
func writeFD(fd int, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if time.Now().After(deadline) {
				return os.ErrDeadlineExceeded
			}
			time.Sleep(time.Millisecond)
			continue
		case err != nil:
			return os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return nil
}

// closeFD closes a socket taken from the runtime.
func closeFD(fd int) error { return syscall.Close(fd) }
