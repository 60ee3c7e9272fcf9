//go:build !linux

package bench

import (
	"errors"
	"time"
)

// pollReader is Linux's (poller_linux.go); elsewhere each connection has a
// reader goroutine.
type pollReader struct{}

func newPollReaders(*run, int) []*pollReader { return nil }

func (*pollReader) add(*client) error { return errors.ErrUnsupported }

func (*pollReader) close() {}

func writeFD(int, []byte, time.Time) error { return errors.ErrUnsupported }

// closeFD is never needed: no socket is taken from the runtime here.
func closeFD(int) error { return errors.ErrUnsupported }
