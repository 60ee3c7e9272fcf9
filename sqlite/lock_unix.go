//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// lockFile creates path if needed and takes an exclusive flock on it,
// without waiting. It returns errLocked when another open file holds it, in
// this process or another; the lock ends when the file is closed or the
// process dies.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}
