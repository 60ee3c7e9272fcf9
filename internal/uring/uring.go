// Package uring makes many non-blocking socket sends with one system call,
// through a Linux io_uring: the caller queues a send per socket on a Ring,
// then Submit makes them all and reports what each socket took.
//
// A send costs less this way than with a send(2) of its own, as the system
// call's entry and exit, and whatever a virtual machine adds to them, are
// paid once per batch (docs/performance.md, "Sends in batches"). Only sends
// that cannot block are made, so every one completes within Submit, which
// leaves nothing of the caller's in the kernel's hands once it returns.
//
// New fails where the system has no io_uring, or refuses it (a seccomp
// filter, kernel.io_uring_disabled): the caller then sends as before.
package uring

import "errors"

// ErrUnsupported is New's error where this system offers no io_uring fit
// for sends.
var ErrUnsupported = errors.New("uring: io_uring sends are not supported here")
