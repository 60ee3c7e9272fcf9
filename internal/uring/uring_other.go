//go:build !linux

package uring

// Ring is not available on this system: New always fails.
type Ring struct{}

// New returns ErrUnsupported.
func New(entries int) (*Ring, error) { return nil, ErrUnsupported }

// Cap is 0.
func (r *Ring) Cap() int { return 0 }

// Send takes nothing.
func (r *Ring) Send(fd int, bufs [][]byte) bool { return false }

// Submit has nothing to do.
func (r *Ring) Submit() ([]int, error) { return nil, nil }

// Close does nothing.
func (r *Ring) Close() error { return nil }
