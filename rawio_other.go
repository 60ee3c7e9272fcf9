//go:build !unix

package partyline

import (
	"errors"
	"syscall"
)

// rawIO is false where connections use the net.Conn's blocking reads and
// writes only.
const rawIO = false

func sysRead(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

func sysWrite(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

func writev(uintptr, [][]byte) int { return -1 }

func rawRead(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }

func rawWrite(syscall.RawConn, [][]byte) int { return -1 }
