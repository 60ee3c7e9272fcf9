package partyline

import (
	"syscall"
	"unsafe"
)

// unackedBytes returns how many bytes written to the socket the peer has
// not acknowledged yet (SIOCOUTQ), or false if the kernel does not say.
// A polled socket is asked without the callback of Control, which would be
// allocated at every question.
func unackedBytes(rc syscall.RawConn) (int, bool) {
	if s, ok := rc.(*polledRawConn); ok {
		return s.unackedNow()
	}
	var n int
	var ok bool
	if err := rc.Control(func(fd uintptr) { n, ok = sysUnacked(fd) }); err != nil {
		return 0, false
	}
	return n, ok
}

// sysUnacked asks the kernel SIOCOUTQ of fd. The ioctl never blocks, so it
// is a raw system call (rawio_unix.go).
func sysUnacked(fd uintptr) (int, bool) {
	var n int32
	_, _, errno := syscall.RawSyscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	return int(n), errno == 0
}
