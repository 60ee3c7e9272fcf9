package partyline

import (
	"sync"
	"syscall"
)

// poller tells connections when their sockets have something to read, from
// one epoll set and one goroutine, so that an idle connection parks no
// goroutine of its own (reader.go). Sockets are registered edge-triggered:
// one event per arrival, which the connection's reader drains.
//
// The epoll set and its goroutine exist only while connections are
// registered: the last one to leave stops them, so an idle Server holds
// neither a goroutine nor a descriptor.
type poller struct {
	mu    sync.Mutex // guards the following
	epfd  int        // -1 while no connection is registered
	wake  int        // eventfd that stops the goroutine of epfd
	conns map[int32]*Conn
}

func newPoller() *poller {
	return &poller{epfd: -1, wake: -1, conns: make(map[int32]*Conn)}
}

// add registers c's socket; its reader is told of every arrival from now
// on, and of bytes already waiting.
func (p *poller) add(c *Conn, fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epfd < 0 {
		if err := p.startLocked(); err != nil {
			return err
		}
	}
	p.conns[int32(fd)] = c
	event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &event); err != nil {
		delete(p.conns, int32(fd))
		return err
	}
	return nil
}

// remove forgets c's socket; call it before the socket is closed, which
// takes it out of the epoll set.
func (p *poller) remove(c *Conn, fd int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[int32(fd)] != c {
		return
	}
	delete(p.conns, int32(fd))
	if len(p.conns) == 0 && p.epfd >= 0 {
		wakeup(p.wake)
		p.epfd, p.wake = -1, -1 // the goroutine closes them
	}
}

// epollET is EPOLLET as the unsigned flag EpollEvent.Events wants.
const epollET = 1 << 31

// startLocked creates the epoll set and starts its goroutine.
func (p *poller) startLocked() error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	wake, err := newEventFD()
	if err != nil {
		syscall.Close(epfd)
		return err
	}
	event := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wake)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wake, &event); err != nil {
		syscall.Close(epfd)
		syscall.Close(wake)
		return err
	}
	p.epfd, p.wake = epfd, wake
	go p.run(epfd, wake)
	return nil
}

// run waits for events on epfd and hands them to the connections' readers
// until wake is signalled; then it closes both.
func (p *poller) run(epfd, wake int) {
	defer syscall.Close(epfd)
	defer syscall.Close(wake)
	events := make([]syscall.EpollEvent, 256)
	ready := make([]*Conn, 0, len(events))
	for {
		n, err := syscall.EpollWait(epfd, events, -1)
		if err != nil && err != syscall.EINTR {
			panic("partyline: epoll_wait: " + err.Error()) // only a bug gets here
		}
		ready = ready[:0]
		stop := false
		p.mu.Lock()
		for _, e := range events[:max(n, 0)] {
			if e.Fd == int32(wake) {
				stop = true
			} else if c := p.conns[e.Fd]; c != nil {
				ready = append(ready, c)
			}
		}
		p.mu.Unlock()
		for _, c := range ready {
			c.readable()
		}
		clear(ready)
		if stop {
			return
		}
	}
}

// newEventFD returns a non-blocking eventfd.
func newEventFD() (int, error) {
	fd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// wakeup signals an eventfd.
func wakeup(fd int) {
	one := [8]byte{1}
	syscall.Write(fd, one[:])
}
