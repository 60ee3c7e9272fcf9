package poller

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"unsafe"
)

// Poller is one epoll set and the goroutine that hands its events to the
// sockets' handlers. The zero value is not usable; see New. Its methods are
// safe to call concurrently.
type Poller struct {
	mu   sync.Mutex // guards the following
	set  *os.File   // the epoll set; nil while no socket is registered
	epfd int        // set's descriptor, for epoll_ctl
	// handlers holds the registrations by socket descriptor: descriptors
	// are small numbers, the lowest free ones, so a slice indexed by them
	// is dense, and smaller than a map of them.
	handlers []registration
	count    int           // registrations in handlers
	lastID   int32         // the id of the latest registration
	done     chan struct{} // closed when the latest set's goroutine has ended; nil before the first
}

// registration is a socket's handler, and the id its events carry. A
// socket closed before its Remove leaves the set at once, but the events
// already taken from the set may still name its descriptor, by then
// perhaps another socket's: the id tells them apart.
type registration struct {
	h  Handler
	id int32
}

// epollET is EPOLLET as the unsigned flag EpollEvent.Events wants.
const epollET = 1 << 31

// hangupEvents are the events that end a socket's stream.
const hangupEvents = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR

// New returns a Poller with no socket registered, which holds no goroutine
// and no descriptor until the first Add.
func New() *Poller {
	return &Poller{}
}

// Add registers fd, a non-blocking socket, with h: from now on h.Ready is
// called for each arrival, and once for bytes already waiting; and if h is
// a WriteHandler, h.Writable each time the socket has room again. It fails
// when the epoll set cannot be made, or fd cannot join it (EEXIST if it is
// registered already).
//
// fd stays the caller's. Closing it takes it out of the set (unless a
// duplicate of it is open); Remove must still be called, before or after.
func (p *Poller) Add(fd int, h Handler) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil {
		if err := p.startLocked(); err != nil {
			return fmt.Errorf("poller: %w", err)
		}
	}
	p.lastID++
	// Fd and Pad are the event's data, handed back with each event.
	event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(fd), Pad: p.lastID}
	if _, ok := h.(WriteHandler); ok {
		event.Events |= syscall.EPOLLOUT
	}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &event); err != nil {
		if p.count == 0 {
			p.set.Close() // no socket to wait for
			p.set = nil
		}
		return fmt.Errorf("poller: %w", os.NewSyscallError("epoll_ctl", err))
	}
	if fd >= len(p.handlers) {
		p.handlers = slices.Grow(p.handlers, fd+1-len(p.handlers))[:fd+1] // what lies beyond len was never written: zeros
	}
	if p.handlers[fd].h == nil {
		p.count++
	}
	p.handlers[fd] = registration{h, p.lastID}
	return nil
}

// Remove forgets h and takes fd out of the set, if fd is registered with
// h. It does nothing otherwise: a socket closed before Remove may have
// given its descriptor's number to another, registered since with another
// handler. After Remove, h.Ready is not called for fd again, though a call
// already under way may still be running.
//
// The last Remove closes the set; its goroutine ends soon after.
func (p *Poller) Remove(fd int, h Handler) {
	p.mu.Lock()
	if fd < 0 || fd >= len(p.handlers) || p.handlers[fd].h != h {
		p.mu.Unlock()
		return
	}
	p.handlers[fd] = registration{}
	p.count--
	var last *os.File
	if p.count == 0 {
		last, p.set = p.set, nil
	} else {
		// Fails, harmlessly, if fd is closed already: no other socket in
		// the set can have its number, as its Add would have replaced h.
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	}
	p.mu.Unlock()
	if last != nil {
		last.Close() // ends its goroutine
	}
}

// Close forgets every handler, closes the set, and returns once its
// goroutine has ended: no Ready call is running or will come, so the
// sockets may be closed with no fear that their descriptors' numbers,
// reused, reach a handler. It must not be called from Ready. A Poller
// closes its set by itself when the last socket is removed, so Close is
// needed only for that certainty. The Poller may be used again.
func (p *Poller) Close() {
	p.mu.Lock()
	set, done := p.set, p.done
	p.set = nil
	clear(p.handlers)
	p.count = 0
	p.mu.Unlock()
	if set != nil {
		set.Close()
	}
	if done != nil {
		<-done
	}
}

// startLocked creates the epoll set and starts its goroutine.
func (p *Poller) startLocked() error {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return os.NewSyscallError("fcntl", err)
	}
	set := os.NewFile(uintptr(fd), "epoll") // non-blocking: the runtime polls it
	raw, err := set.SyscallConn()
	if err != nil {
		set.Close()
		return err
	}
	previous, done := p.done, make(chan struct{})
	p.set, p.epfd, p.done = set, fd, done
	go p.run(set, raw, previous, done)
	return nil
}

// run hands set's events to the handlers until set is closed. It begins
// once the goroutine of the previous set, if any, has ended, so that Ready
// calls never overlap: one closed set's goroutine may still be calling a
// handler when the next set is made.
func (p *Poller) run(set *os.File, raw syscall.RawConn, previous <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	if previous != nil {
		<-previous
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := wait(raw, events)
		if err != nil {
			return // closed by Remove or Close
		}
		for _, e := range events[:n] {
			h := p.handler(set, e)
			if h == nil {
				continue
			}
			if e.Events&(syscall.EPOLLIN|hangupEvents) != 0 {
				h.Ready(e.Events&hangupEvents != 0)
			}
			if e.Events&(syscall.EPOLLOUT|hangupEvents) != 0 {
				if w, ok := h.(WriteHandler); ok {
					w.Writable()
				}
			}
		}
	}
}

// wait waits until set has events and takes them into events, returning
// how many. It fails once set is closed.
func wait(set syscall.RawConn, events []syscall.EpollEvent) (n int, err error) {
	err = set.Read(func(fd uintptr) bool {
		n = takeEvents(fd, events)
		return n > 0 // else wait until the set has events
	})
	return n, err
}

// takeEvents takes into events those the set epfd holds, and returns how
// many, without waiting. It never blocks, so it is a raw system call that
// does not tell the scheduler: as a scheduled one, the first after the
// process had been idle woke the runtime's sysmon, which then polled every
// 20 µs for a millisecond or more. A room of 1,000 subscribers at 100
// messages a second, on the memory store, made 1,400–1,500 sysmon sleeps
// a second before and 75–80 after (docs/performance.md, item 20). SQLite's
// own system calls still wake it on that store.
func takeEvents(epfd uintptr, events []syscall.EpollEvent) int {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, epfd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		switch errno {
		case 0:
			return int(n)
		case syscall.EINTR:
			continue
		default:
			return 0 // the set's descriptor is held open by Read: none is expected
		}
	}
}

// handler returns the handler of the registration e is for, or nil if it
// has been removed (or set closed) since e was taken from set.
func (p *Poller) handler(set *os.File, e syscall.EpollEvent) Handler {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(e.Fd) < len(p.handlers) && p.handlers[e.Fd].id == e.Pad && p.set == set {
		return p.handlers[e.Fd].h
	}
	return nil
}
