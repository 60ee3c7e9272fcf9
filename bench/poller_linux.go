package bench

import (
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// A poller reads many connections from one goroutine: their sockets sit in
// its epoll set, edge-triggered, and on each event it reads the socket
// dry into its own buffer and parses it there. A delivery then costs one
// read(2) and a share of an epoll_wait, where a reader goroutine per
// connection costs a wake-up, a read, a read that finds nothing, and a
// park. The sockets are taken from the runtime (detach), whose own epoll
// set would otherwise hear of every arrival too.
//
// The goroutine does not block in epoll_wait, which would hold a thread
// and keep the runtime's sysmon spinning (the server's poller learned
// this): the set is non-blocking and itself watched by the runtime's
// network poller, which wakes the goroutine when the set has events.
type poller struct {
	r    *run
	epfd int // the set, open until close
	set  *os.File
	buf  []byte // what a socket is read into; the goroutine's alone

	mu    sync.Mutex // guards conns
	conns map[int32]polled
}

// polled is a connection in a poller's set.
type polled struct {
	c  *client
	fd int // its socket, detached
}

// epollET is EPOLLET as the unsigned flag EpollEvent.Events wants.
const epollET = 1 << 31

// startPollers starts n pollers for r's connections, counted in r.readers;
// close stops each.
func startPollers(r *run, n int) ([]*poller, error) {
	ps := make([]*poller, 0, n)
	for range n {
		p, err := newPoller(r)
		if err != nil {
			for _, p := range ps {
				p.close()
			}
			return nil, err
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		r.readers.Add(1)
		go p.run()
	}
	return ps, nil
}

func newPoller(r *run) (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &poller{r: r, epfd: fd, set: os.NewFile(uintptr(fd), "epoll"), // non-blocking: the runtime polls it
		buf: make([]byte, pollerBufferSize), conns: make(map[int32]polled)}, nil
}

// add has the poller read c from now on, bytes already waiting included,
// and detaches c's socket from the runtime. On failure c is untouched.
func (p *poller) add(c *client) error {
	fd, err := c.conn.dup()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.conns[int32(c.id)] = polled{c, fd}
	p.mu.Unlock()
	event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(c.id)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &event); err != nil {
		p.forget(c)
		syscall.Close(fd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	c.conn.detach(fd)
	return nil
}

// forget stops handling c's events. Its socket leaves the set when closed.
func (p *poller) forget(c *client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, int32(c.id))
}

// close closes the set, which ends the goroutine.
func (p *poller) close() { p.set.Close() }

// run reads the connections whose sockets have events, until the set is
// closed.
func (p *poller) run() {
	defer p.r.readers.Done()
	raw, err := p.set.SyscallConn()
	if err != nil {
		return
	}
	events := make([]syscall.EpollEvent, 256)
	ready := make([]readyConn, 0, len(events))
	for {
		var n int
		if err := raw.Read(func(fd uintptr) bool {
			for {
				var err error
				if n, err = syscall.EpollWait(int(fd), events, 0); err != syscall.EINTR {
					return n > 0 // else wait until the set has events
				}
			}
		}); err != nil {
			return // closed
		}
		p.mu.Lock()
		for _, e := range events[:n] {
			if pc, ok := p.conns[e.Fd]; ok {
				ready = append(ready, readyConn{pc, e.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0})
			}
		}
		p.mu.Unlock()
		for _, rc := range ready {
			if err := p.drain(rc.c, rc.fd, rc.hangup); err != nil {
				p.forget(rc.c)
				p.r.ended(rc.c, err)
			}
		}
		clear(ready)
		ready = ready[:0]
	}
}

// readyConn is a connection with an event: bytes, and with hangup the
// end of the stream (or an error) after them.
type readyConn struct {
	polled
	hangup bool
}

// drain reads c's socket until it is empty and handles what it read; after
// a hangup, until the read that reports the end. It returns an error when
// the connection is over.
func (p *poller) drain(c *client, fd int, hangup bool) error {
	for {
		n, err := syscall.Read(fd, p.buf)
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
		if err := p.r.receive(c, p.buf[:n]); err != nil {
			return err
		}
		if n < len(p.buf) && !hangup {
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
