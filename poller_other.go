//go:build !linux

package partyline

import "errors"

// poller is Linux-only; elsewhere every connection reads on a goroutine of
// its own (reader.go).
type poller struct{}

func newPoller() *poller { return nil }

func (p *poller) add(*Conn, int) error { return errors.ErrUnsupported }

func (p *poller) remove(*Conn, int) {}
