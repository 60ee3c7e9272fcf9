//go:build windows

package bench

import (
	"syscall"
	"time"
)

// bindNoPort does nothing: Windows has no IP_BIND_ADDRESS_NO_PORT.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	self, err := syscall.GetCurrentProcess()
	if err != nil {
		return 0
	}
	var creation, exit, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(self, &creation, &exit, &kernel, &user); err != nil {
		return 0
	}
	return hundredNanos(kernel) + hundredNanos(user)
}

// hundredNanos reads a Filetime that holds a duration.
func hundredNanos(t syscall.Filetime) time.Duration {
	return time.Duration(uint64(t.HighDateTime)<<32|uint64(t.LowDateTime)) * 100
}

// raiseFileLimit has nothing to raise: Windows sets no descriptor limit
// per process. It returns 0.
func raiseFileLimit() (uint64, error) { return 0, nil }
