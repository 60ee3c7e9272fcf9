//go:build unix

package partyline

import (
	"syscall"
	"unsafe"
)

// rawIO says whether connections read and write their sockets with
// non-blocking system calls of their own (reader.go, writer.go).
const rawIO = true

// The sockets read and written here are non-blocking, so each call returns
// at once and is made as a raw system call, without telling the scheduler
// it may block: on loopback that bookkeeping cost a quarter of the write
// itself (BenchmarkLoopbackWrite, syscall=scheduled against syscall=raw).
// The calls are the socket's own, recv(2) and send(2), rather than read(2)
// and write(2), which pass the file layer's checks and change notification
// first: a send cost 3–6% less CPU than a write of the same frame to the
// same loopback sockets (BenchmarkLoopbackSendOrWrite). A send to a closed
// peer fails with EPIPE and, where the system has MSG_NOSIGNAL, raises no
// SIGPIPE. Several frames at once, which is rarer, still take one
// writev(2).

// sendFlags are the flags of every send.
const sendFlags = syscall.MSG_DONTWAIT | msgNoSignal

func sysRead(fd uintptr, b []byte) (int, error) {
	return rawIOCall(syscall.SYS_RECVFROM, fd, b, syscall.MSG_DONTWAIT)
}

func sysWrite(fd uintptr, b []byte) (int, error) {
	return rawIOCall(syscall.SYS_SENDTO, fd, b, sendFlags)
}

// rawIOCall makes the recvfrom or sendto trap on fd with b and flags, and
// no address.
func rawIOCall(trap, fd uintptr, b []byte, flags uintptr) (int, error) {
	n, _, errno := syscall.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), flags, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// directIO is a RawConn that reads and writes with no callback, which
// would be allocated on every call: a polled socket (socket_linux.go).
type directIO interface {
	readNow(buf []byte) (int, error)
	writeNow(frames [][]byte) int
}

// rawRead makes one non-blocking read through rc, which keeps the
// descriptor from being closed, and its number reused, during the call.
func rawRead(rc syscall.RawConn, buf []byte) (int, error) {
	if d, ok := rc.(directIO); ok {
		return d.readNow(buf)
	}
	var n int
	var readErr error
	if err := rc.Read(func(fd uintptr) bool {
		n, readErr = sysRead(fd, buf)
		return true // never wait here
	}); err != nil {
		return 0, err
	}
	if readErr != nil {
		return 0, readErr
	}
	return n, nil
}

// rawWrite makes one non-blocking write of frames through rc and returns
// how many bytes the socket took, or -1.
func rawWrite(rc syscall.RawConn, frames [][]byte) int {
	if d, ok := rc.(directIO); ok {
		return d.writeNow(frames)
	}
	n := -1
	rc.Write(func(fd uintptr) bool {
		n = writeFrames(fd, frames)
		return true // never wait here
	})
	return n
}

// writeFrames writes frames to fd with one non-blocking system call and
// returns how many bytes the socket took, or -1.
func writeFrames(fd uintptr, frames [][]byte) int {
	if len(frames) == 1 {
		n, _ := sysWrite(fd, frames[0])
		return n
	}
	return writev(fd, frames)
}

// writev writes frames with one writev(2) and returns how many bytes the
// socket took, or -1.
func writev(fd uintptr, frames [][]byte) int {
	iovecs := make([]syscall.Iovec, 0, len(frames))
	for _, f := range frames {
		if len(f) > 0 {
			iovecs = append(iovecs, syscall.Iovec{Base: &f[0]})
			iovecs[len(iovecs)-1].SetLen(len(f))
		}
	}
	if len(iovecs) == 0 {
		return 0
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iovecs[0])), uintptr(len(iovecs)))
	if errno != 0 {
		return -1
	}
	return int(n)
}
