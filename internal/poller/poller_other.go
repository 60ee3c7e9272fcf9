//go:build !linux

package poller

import "errors"

// Poller is Linux's; elsewhere there is none, and New returns nil.
type Poller struct{}

// New returns nil: there is no epoll here.
func New() *Poller { return nil }

// Add fails: there is no epoll here.
func (*Poller) Add(int, Handler) error { return errors.ErrUnsupported }

// Remove does nothing: no socket can have been added.
func (*Poller) Remove(int, Handler) {}

// Close does nothing: no socket can have been added.
func (*Poller) Close() {}
