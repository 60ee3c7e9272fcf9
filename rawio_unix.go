//go:build unix

package partyline

import (
	"syscall"
	"unsafe"
)

// rawIO says whether connections read and write their sockets with
// non-blocking system calls of their own (reader.go, writer.go).
const rawIO = true

func sysRead(fd uintptr, b []byte) (int, error) { return syscall.Read(int(fd), b) }

func sysWrite(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }

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
	n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iovecs[0])), uintptr(len(iovecs)))
	if errno != 0 {
		return -1
	}
	return int(n)
}
