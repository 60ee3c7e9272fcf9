//go:build !linux

package bench

import (
	"errors"
	"time"
)

// poller is Linux's (poller_linux.go); elsewhere each connection has a
// reader goroutine.
type poller struct{}

func startPollers(*run, int) ([]*poller, error) { return nil, errors.ErrUnsupported }

func (*poller) add(*client) error { return errors.ErrUnsupported }

func (*poller) close() {}

func writeFD(int, []byte, time.Time) error { return errors.ErrUnsupported }

// closeFD is never needed: no socket is taken from the runtime here.
func closeFD(int) error { return errors.ErrUnsupported }
