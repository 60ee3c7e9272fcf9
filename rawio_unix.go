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

func sysRead(fd uintptr, b []byte) (int, error) { return rawIOCall(syscall.SYS_READ, fd, b) }

func sysWrite(fd uintptr, b []byte) (int, error) { return rawIOCall(syscall.SYS_WRITE, fd, b) }

// rawIOCall makes the read or write trap on fd with b.
func rawIOCall(trap, fd uintptr, b []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
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
