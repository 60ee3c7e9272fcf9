package bench

import (
	"io"
	"os"
	"sync"
	"syscall"
)

// A poller reads many connections from one goroutine: their sockets sit in
// its epoll set, edge-triggered, and on each event it reads the socket
// dry into its own buffer and parses it there. A delivery then costs one
// read(2) and a share of an epoll_wait, where a reader goroutine per
// connection costs a wake-up, a read, a read that finds nothing, and a
// park.
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
	conns map[int32]*client
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
		buf: make([]byte, pollerBufferSize), conns: make(map[int32]*client)}, nil
}

// add has the poller read c from now on, bytes already waiting included.
func (p *poller) add(c *client) error {
	p.mu.Lock()
	p.conns[int32(c.id)] = c
	p.mu.Unlock()
	var err error
	if cerr := c.conn.raw.Control(func(fd uintptr) {
		event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(c.id)}
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &event)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.forget(c)
	}
	return err
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
			if c := p.conns[e.Fd]; c != nil {
				ready = append(ready, readyConn{c, e.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0})
			}
		}
		p.mu.Unlock()
		for _, rc := range ready {
			if err := p.drain(rc.c, rc.hangup); err != nil {
				p.forget(rc.c)
				p.r.noteClosed(err)
			}
		}
		clear(ready)
		ready = ready[:0]
	}
}

// readyConn is a connection with an event: bytes, and with hangup the
// end of the stream (or an error) after them.
type readyConn struct {
	c      *client
	hangup bool
}

// drain reads c's socket until it is empty and handles what it read; after
// a hangup, until the read that reports the end. It returns an error when
// the connection is over.
func (p *poller) drain(c *client, hangup bool) error {
	for {
		var n int
		var errno error
		if err := c.conn.raw.Read(func(fd uintptr) bool {
			n, errno = syscall.Read(int(fd), p.buf)
			return true // never wait: the set says when there is more
		}); err != nil {
			return err // the bench closed it
		}
		switch {
		case errno == syscall.EAGAIN:
			return nil
		case errno == syscall.EINTR:
			continue
		case errno != nil:
			return os.NewSyscallError("read", errno)
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
