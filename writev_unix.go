//go:build unix

package partyline

import (
	"syscall"
	"unsafe"
)

// writev writes frames with one writev(2) and returns how many bytes the
// socket took, or -1.
func writev(fd int, frames [][]byte) int {
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
	n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iovecs[0])), uintptr(len(iovecs)))
	if errno != 0 {
		return -1
	}
	return int(n)
}
