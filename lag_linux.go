package partyline

import (
	"syscall"
	"unsafe"
)

// unackedBytes returns how many bytes written to the socket the peer has
// not acknowledged yet (SIOCOUTQ), or false if the kernel does not say.
// The ioctl never blocks, so it is a raw system call (rawio_unix.go).
func unackedBytes(rc syscall.RawConn) (int, bool) {
	var n int32
	var errno syscall.Errno
	err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.RawSyscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	})
	return int(n), err == nil && errno == 0
}
