package partyline

import (
	"os"
	"sync"
	"syscall"
)

// poller tells connections when their sockets have something to read, from
// one epoll set and one goroutine, so that an idle connection parks no
// goroutine of its own (reader.go). Sockets are registered edge-triggered:
// one event per arrival, which the connection's reader drains.
//
// The goroutine does not block in epoll_wait, which would hold up a P and
// keep the runtime's sysmon spinning: the epoll set is itself registered
// with the runtime's network poller, which wakes the goroutine when the set
// has events. The set and its goroutine exist only while connections are
// registered: the last one to leave closes the set, which stops the
// goroutine, so an idle Server holds neither a goroutine nor a descriptor.
type poller struct {
	mu    sync.Mutex // guards the following
	set   *os.File   // the epoll set; nil while no connection is registered
	epfd  int        // set's descriptor, for epoll_ctl
	conns map[int32]*Conn
}

func newPoller() *poller {
	return &poller{conns: make(map[int32]*Conn)}
}

// add registers c's socket fd; c's reader is told of every arrival from
// now on, and of bytes already waiting.
func (p *poller) add(c *Conn, fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil {
		if err := p.startLocked(); err != nil {
			return err
		}
	}
	event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &event); err != nil {
		if len(p.conns) == 0 {
			p.set.Close() // no connection to wait for
			p.set = nil
		}
		return err
	}
	p.conns[int32(fd)] = c
	return nil
}

// remove forgets c's socket fd. Closing a socket takes it out of the epoll
// set; remove only drops the poller's record, and the set when it was the
// last.
func (p *poller) remove(c *Conn, fd int) {
	p.mu.Lock()
	if p.conns[int32(fd)] != c {
		p.mu.Unlock()
		return
	}
	delete(p.conns, int32(fd))
	var last *os.File
	if len(p.conns) == 0 {
		last, p.set = p.set, nil
	}
	p.mu.Unlock()
	if last != nil {
		last.Close() // stops its goroutine
	}
}

// epollET is EPOLLET as the unsigned flag EpollEvent.Events wants.
const epollET = 1 << 31

// startLocked creates the epoll set and starts its goroutine.
func (p *poller) startLocked() error {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return err
	}
	set := os.NewFile(uintptr(fd), "epoll") // non-blocking: the runtime polls it
	raw, err := set.SyscallConn()
	if err != nil {
		set.Close()
		return err
	}
	p.set, p.epfd = set, fd
	go p.run(raw)
	return nil
}

// run hands the set's events to the connections' readers until the set is
// closed.
func (p *poller) run(set syscall.RawConn) {
	events := make([]syscall.EpollEvent, 256)
	ready := make([]*Conn, 0, len(events))
	for {
		var n int
		if err := set.Read(func(fd uintptr) bool {
			n, _ = syscall.EpollWait(int(fd), events, 0)
			return n > 0 // else wait until the set has events
		}); err != nil {
			return // closed by remove
		}
		p.mu.Lock()
		for _, e := range events[:n] {
			if c := p.conns[e.Fd]; c != nil {
				if e.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
					c.hangup.Store(true) // before readable: its reader must see it
				}
				ready = append(ready, c)
			}
		}
		p.mu.Unlock()
		for _, c := range ready {
			c.arrived()
		}
		clear(ready)
		ready = ready[:0]
	}
}
