package poller

import (
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// patience bounds every wait for something that must happen; quiet is how
// long a test watches for something that must not.
const (
	patience = 5 * time.Second
	quiet    = 100 * time.Millisecond
)

// tcpSocket returns one end of a TCP connection over 127.0.0.1 as a
// non-blocking descriptor of the test's own, and the other end. Both are
// closed when the test ends, the descriptor unless closed before.
func tcpSocket(t *testing.T) (fd int, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // the runtime's descriptor; the test keeps a duplicate
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var errno syscall.Errno
	raw.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		fd, errno = int(r), e
	})
	if errno != 0 {
		t.Fatal(os.NewSyscallError("fcntl", errno))
	}
	t.Cleanup(func() { syscall.Close(fd) }) // EBADF if closed already
	return fd, peer
}

// recorder is a Handler that drains its socket on each call and reports
// the call's hangup.
type recorder struct {
	fd    int
	calls chan bool
}

func newRecorder(fd int) *recorder { return &recorder{fd: fd, calls: make(chan bool, 100)} }

func (r *recorder) Ready(hangup bool) {
	buf := make([]byte, 1024)
	for {
		if n, err := syscall.Read(r.fd, buf); n <= 0 || err != nil {
			break
		}
	}
	select {
	case r.calls <- hangup:
	default: // the test is failing already
	}
}

// next waits for r's next call and returns its hangup.
func (r *recorder) next(t *testing.T, what string) bool {
	t.Helper()
	select {
	case hangup := <-r.calls:
		return hangup
	case <-time.After(patience):
		t.Fatalf("%s: no Ready call within %v", what, patience)
		return false
	}
}

// none checks that r is not called for a while.
func (r *recorder) none(t *testing.T, what string) {
	t.Helper()
	select {
	case hangup := <-r.calls:
		t.Errorf("%s: Ready(%v) called, want no call", what, hangup)
	case <-time.After(quiet):
	}
}

func add(t *testing.T, p *Poller, fd int, h Handler) {
	t.Helper()
	if err := p.Add(fd, h); err != nil {
		t.Fatalf("Add(%d): %v", fd, err)
	}
}

func write(t *testing.T, peer net.Conn, s string) {
	t.Helper()
	if _, err := peer.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func TestReadyOnEachArrival(t *testing.T) {
	p := New()
	fd, peer := tcpSocket(t)
	h := newRecorder(fd)
	add(t, p, fd, h)
	defer p.Close()
	h.none(t, "nothing sent")
	for _, s := range []string{"hello", "again"} {
		write(t, peer, s)
		if hangup := h.next(t, s); hangup {
			t.Errorf("%s: Ready(true), want false", s)
		}
	}
}

func TestReadyForBytesWaitingBeforeAdd(t *testing.T) {
	p := New()
	fd, peer := tcpSocket(t)
	write(t, peer, "early")
	time.Sleep(quiet) // for the bytes to reach fd
	h := newRecorder(fd)
	add(t, p, fd, h)
	defer p.Close()
	if hangup := h.next(t, "bytes waiting"); hangup {
		t.Error("Ready(true), want false")
	}
}

// writeRecorder is a recorder that is also told when its socket has room.
type writeRecorder struct {
	*recorder
	writable chan struct{}
}

func (w *writeRecorder) Writable() {
	select {
	case w.writable <- struct{}{}:
	default:
	}
}

// TestWritableAfterAFullSocketDrains fills a socket until a write is
// refused, and checks that its WriteHandler is told once the peer has read
// enough to make room, and that a Handler is not asked about writes at all.
func TestWritableAfterAFullSocketDrains(t *testing.T) {
	p := New()
	defer p.Close()
	fd, peer := tcpSocket(t)
	h := &writeRecorder{newRecorder(fd), make(chan struct{}, 1)}
	add(t, p, fd, h)
	select {
	case <-h.writable: // a new socket has room
	case <-time.After(patience):
		t.Fatal("no Writable call for a new socket")
	}
	h.none(t, "nothing sent") // and no Ready call: nothing arrived
	chunk := make([]byte, 64<<10)
	for {
		if _, err := syscall.Write(fd, chunk); err == syscall.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-h.writable:
		t.Fatal("Writable called while the socket is full")
	case <-time.After(quiet):
	}
	reading := make(chan struct{})
	go func() {
		io.Copy(io.Discard, peer)
		close(reading)
	}()
	select {
	case <-h.writable:
	case <-time.After(patience):
		t.Fatal("no Writable call once the peer read")
	}
	h.none(t, "the peer read, sent nothing")
	peer.Close()
	<-reading

	fd2, peer2 := tcpSocket(t)
	plain := newRecorder(fd2) // a Handler alone is told of arrivals only
	add(t, p, fd2, plain)
	plain.none(t, "a new socket")
	write(t, peer2, "hello")
	if hangup := plain.next(t, "hello"); hangup {
		t.Error("Ready(true), want false")
	}
}

func TestHangup(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(net.Conn)
	}{
		{"close", func(c net.Conn) { c.Close() }},
		{"half close", func(c net.Conn) { c.(*net.TCPConn).CloseWrite() }},
		{"reset", func(c net.Conn) { c.(*net.TCPConn).SetLinger(0); c.Close() }},
	} {
		p := New()
		fd, peer := tcpSocket(t)
		h := newRecorder(fd)
		add(t, p, fd, h)
		tc.end(peer)
		if hangup := h.next(t, tc.name); !hangup {
			t.Errorf("%s: Ready(false), want true", tc.name)
		}
		p.Close()
	}
}

func TestRemovedHandlerIsNotCalled(t *testing.T) {
	p := New()
	defer p.Close()
	fd1, peer1 := tcpSocket(t)
	fd2, peer2 := tcpSocket(t)
	h1, h2 := newRecorder(fd1), newRecorder(fd2)
	add(t, p, fd1, h1)
	add(t, p, fd2, h2)
	p.Remove(fd1, h1)
	write(t, peer1, "to the removed")
	write(t, peer2, "to the other")
	h2.next(t, "the other")
	h1.none(t, "removed")
	if err := p.Add(fd1, h1); err != nil { // Remove took it out of the set
		t.Errorf("Add after Remove: %v", err)
	}
	p.Remove(fd1, h1)
}

// TestStaleRemoveIsIgnored: a socket closed before its Remove may give its
// descriptor's number to another, registered since; the stale Remove must
// leave the new registration alone.
func TestStaleRemoveIsIgnored(t *testing.T) {
	p := New()
	fd, _ := tcpSocket(t)
	old := newRecorder(fd)
	add(t, p, fd, old)
	syscall.Close(fd)
	newFD, peer := tcpSocket(t)
	if err := syscall.Dup3(newFD, fd, syscall.O_CLOEXEC); err != nil { // the new socket takes the old number too
		t.Fatal(err)
	}
	h := newRecorder(fd)
	add(t, p, fd, h)
	defer p.Close()
	p.Remove(fd, old)
	write(t, peer, "to the new socket")
	h.next(t, "the new socket's handler")
	old.none(t, "the old socket's handler")
}

func TestHandlerMayRemoveItself(t *testing.T) {
	base := runtime.NumGoroutine()
	p := New()
	fd, peer := tcpSocket(t)
	h := &selfRemover{p: p, fd: fd, removed: make(chan struct{})}
	add(t, p, fd, h)
	write(t, peer, "bye")
	select {
	case <-h.removed:
	case <-time.After(patience):
		t.Fatal("no Ready call")
	}
	waitFor(t, "the goroutine to end", func() bool { return runtime.NumGoroutine() <= base })
}

// selfRemover removes itself on its first call.
type selfRemover struct {
	p       *Poller
	fd      int
	removed chan struct{}
}

func (h *selfRemover) Ready(bool) {
	h.p.Remove(h.fd, h)
	close(h.removed)
}

// TestReadyCallsNeverOverlap: when the last Remove closes a set while its
// goroutine is still in a Ready call, the next set's goroutine waits for
// that call to end before it makes any.
func TestReadyCallsNeverOverlap(t *testing.T) {
	p := New()
	fd1, peer1 := tcpSocket(t)
	fd2, peer2 := tcpSocket(t)
	slow := &blocker{entered: make(chan struct{}), release: make(chan struct{})}
	add(t, p, fd1, slow)
	write(t, peer1, "x")
	select {
	case <-slow.entered:
	case <-time.After(patience):
		t.Fatal("no Ready call")
	}
	p.Remove(fd1, slow) // closes the set while slow.Ready runs
	h := newRecorder(fd2)
	add(t, p, fd2, h) // a new set, with a goroutine of its own
	defer p.Close()
	write(t, peer2, "y")
	h.none(t, "while the previous set's goroutine is in Ready")
	close(slow.release)
	h.next(t, "once it has returned")
}

// blocker's Ready blocks until released.
type blocker struct {
	entered, release chan struct{}
}

func (b *blocker) Ready(bool) {
	close(b.entered)
	<-b.release
}

// TestNothingLeftBehind: with no socket registered, a Poller holds no
// goroutine and no descriptor, after the last Remove as after Close.
func TestNothingLeftBehind(t *testing.T) {
	p := New()
	fds := make([]int, 3)
	handlers := make([]*recorder, len(fds))
	for i := range fds {
		fds[i], _ = tcpSocket(t)
		handlers[i] = newRecorder(fds[i])
	}
	goroutines, files := settledGoroutines(t), openFiles(t)
	for round := range 3 {
		for i, fd := range fds {
			add(t, p, fd, handlers[i])
		}
		// At most one goroutine more than the baseline (fewer if one of
		// the test's own has ended since), and exactly one descriptor.
		if g, f := runtime.NumGoroutine(), openFiles(t); g > goroutines+1 || f != files+1 {
			t.Errorf("round %d, registered: %d goroutines and %d descriptors, want at most %d and %d",
				round, g, f, goroutines+1, files+1)
		}
		if round == 2 {
			p.Close()
			if f := openFiles(t); f != files {
				t.Errorf("after Close: %d descriptors, want %d", f, files)
			}
			// The goroutine may be counted for a moment after Close sees it done.
			waitFor(t, "the goroutine to end after Close", func() bool { return runtime.NumGoroutine() <= goroutines })
			continue
		}
		for i, fd := range fds {
			p.Remove(fd, handlers[i])
		}
		if f := openFiles(t); f != files { // closing the set waits for its goroutine to leave it
			t.Errorf("round %d, after the last Remove: %d descriptors, want %d", round, f, files)
		}
		// At most the baseline: a goroutine of the test's own (its
		// sockets' setup) may end meanwhile.
		waitFor(t, "the goroutine to end", func() bool { return runtime.NumGoroutine() <= goroutines })
	}
}

// settledGoroutines returns the number of goroutines once it has stopped
// changing: an earlier test's goroutines, a closed set's among them, may
// still be ending when a test begins.
func settledGoroutines(t *testing.T) int {
	t.Helper()
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	t.Fatalf("the number of goroutines did not settle within %v", patience)
	return 0
}

// openFiles counts the process's open descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds) - 1 // ReadDir's own
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %v", what, patience)
		}
	}
}
