package uring

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The kernel's interface, from include/uapi/linux/io_uring.h.
const (
	sysSetup    = 425
	sysEnter    = 426
	sysRegister = 427

	opSendmsg = 9
	opSend    = 26

	enterGetEvents   = 1 << 0 // IORING_ENTER_GETEVENTS
	featSingleMmap   = 1 << 0 // IORING_FEAT_SINGLE_MMAP
	registerProbe    = 8      // IORING_REGISTER_PROBE
	probeOpSupported = 1 << 0 // IO_URING_OP_SUPPORTED
	offSQEs          = 0x10000000
	sqeSize          = 64
	cqeSize          = 16

	// sendFlags makes every send non-blocking, and a send to a closed peer
	// fail with EPIPE rather than raise SIGPIPE.
	sendFlags = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL
)

// setupParams is struct io_uring_params.
type setupParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sq                                                                     sqRingOffsets
	cq                                                                     cqRingOffsets
}

// sqRingOffsets is struct io_sqring_offsets.
type sqRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqRingOffsets is struct io_cqring_offsets.
type cqRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// submission is struct io_uring_sqe, as a send or sendmsg fills it in.
type submission struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len, msgFlags uint32
	userData      uint64
	_             [24]byte
}

// completion is struct io_uring_cqe.
type completion struct {
	userData uint64
	res      int32
	flags    uint32
}

// Ring is an io_uring for sends. It is not safe for concurrent use: one
// goroutine queues sends and submits them, then the next may.
type Ring struct {
	fd      int
	rings   []byte // the mapped submission and completion rings
	sqeMem  []byte // the mapped submission entries
	sqes    []submission
	sqTail  *uint32
	sqMask  uint32
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
	tail    uint32 // the submission tail, ahead of *sqTail by the queued sends
	slots   []slot // what each queued send points to, kept alive for the kernel
	results []int
	broken  error  // a failure that makes the ring unusable
	flags   uint32 // of every send: sendFlags, but in a test of waiting
}

// slot holds what one queued send's entry points to, so the memory stays
// reachable, and unchanged, until Submit returns.
type slot struct {
	bufs [][]byte
	iovs []syscall.Iovec
	msg  syscall.Msghdr
}

// New sets up a Ring that takes up to entries sends per Submit (rounded up
// to a power of two by the kernel). It returns ErrUnsupported, wrapped,
// where the system refuses io_uring or lacks its send operations.
func New(entries int) (*Ring, error) {
	var p setupParams
	fd, _, errno := syscall.Syscall(sysSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnsupported, errno)
	}
	r := &Ring{fd: int(fd), flags: sendFlags}
	if err := r.init(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// init maps the rings New set up and checks that they can send.
func (r *Ring) init(p *setupParams) error {
	if p.features&featSingleMmap == 0 {
		return fmt.Errorf("%w: no IORING_FEAT_SINGLE_MMAP (Linux before 5.4)", ErrUnsupported)
	}
	if err := r.probeSends(); err != nil {
		return err
	}
	size := max(p.sq.array+4*p.sqEntries, p.cq.cqes+cqeSize*p.cqEntries)
	var err error
	if r.rings, err = mmap(r.fd, 0, int(size)); err != nil {
		return err
	}
	if r.sqeMem, err = mmap(r.fd, offSQEs, sqeSize*int(p.sqEntries)); err != nil {
		return err
	}
	base := unsafe.Pointer(&r.rings[0])
	word := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.sqes = unsafe.Slice((*submission)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.sqTail, r.sqMask = word(p.sq.tail), *word(p.sq.ringMask)
	r.cqHead, r.cqTail, r.cqMask = word(p.cq.head), word(p.cq.tail), *word(p.cq.ringMask)
	r.cqes = unsafe.Add(base, p.cq.cqes)
	r.tail = atomic.LoadUint32(r.sqTail)
	array := unsafe.Slice(word(p.sq.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i) // entry i of the ring is always submission i
	}
	r.slots = make([]slot, p.sqEntries)
	r.results = make([]int, 0, p.sqEntries)
	return nil
}

// probeSends checks that the kernel knows IORING_OP_SEND (Linux 5.6) and
// IORING_OP_SENDMSG.
func (r *Ring) probeSends() error {
	var probe struct {
		lastOp, opsLen uint8
		_              [14]byte
		ops            [256]struct {
			op, _ uint8
			flags uint16
			_     uint32
		}
	}
	_, _, errno := syscall.Syscall6(sysRegister, uintptr(r.fd), registerProbe, uintptr(unsafe.Pointer(&probe)), uintptr(len(probe.ops)), 0, 0)
	if errno != 0 {
		return fmt.Errorf("%w: probing io_uring: %v", ErrUnsupported, errno)
	}
	for _, op := range []int{opSend, opSendmsg} {
		if op > int(probe.lastOp) || probe.ops[op].flags&probeOpSupported == 0 {
			return fmt.Errorf("%w: no io_uring operation %d", ErrUnsupported, op)
		}
	}
	return nil
}

// setLen sets a length field whose width the platform decides.
func setLen[T uint32 | uint64](field *T, n int) { *field = T(n) }

func mmap(fd int, offset int64, size int) ([]byte, error) {
	m, err := syscall.Mmap(fd, offset, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("%w: mapping the io_uring: %v", ErrUnsupported, err)
	}
	return m, nil
}

// Cap returns how many sends one Submit takes.
func (r *Ring) Cap() int { return len(r.sqes) }

// Send queues a non-blocking send on the socket fd of bufs, in order, as
// one send(2) or, for several, one sendmsg(2). It returns false, queuing
// nothing, when Cap sends are queued already. bufs and what they hold must
// stay unchanged until Submit returns, and fd open.
func (r *Ring) Send(fd int, bufs [][]byte) bool {
	i := len(r.results)
	if i == len(r.sqes) {
		return false
	}
	s := &r.slots[i]
	s.bufs = bufs
	e := submission{fd: int32(fd), msgFlags: r.flags, userData: uint64(i)}
	if len(bufs) == 1 {
		e.opcode, e.len = opSend, uint32(len(bufs[0]))
		if len(bufs[0]) > 0 {
			e.addr = uint64(uintptr(unsafe.Pointer(&bufs[0][0])))
		}
	} else {
		s.iovs = s.iovs[:0]
		for _, b := range bufs {
			if len(b) > 0 {
				s.iovs = append(s.iovs, syscall.Iovec{Base: &b[0]})
				s.iovs[len(s.iovs)-1].SetLen(len(b))
			}
		}
		s.msg = syscall.Msghdr{}
		if len(s.iovs) > 0 {
			s.msg.Iov = &s.iovs[0]
			setLen(&s.msg.Iovlen, len(s.iovs))
		}
		e.opcode, e.len, e.addr = opSendmsg, 1, uint64(uintptr(unsafe.Pointer(&s.msg)))
	}
	r.sqes[r.tail&r.sqMask] = e
	r.tail++
	r.results = append(r.results, 0)
	return true
}

// Submit makes the queued sends, with one system call where the kernel
// allows, and returns what each did, in the order of Send: the bytes its
// socket took, or a negated errno (-EAGAIN: the socket took nothing and
// would block). The results are valid until the next Send.
//
// An error means the ring failed and must be closed. Its sends that the
// kernel never took report -EAGAIN; one whose outcome is unknown reports
// -EIO, and its socket's stream can no longer be trusted.
func (r *Ring) Submit() ([]int, error) {
	defer r.clearSlots()
	n := uint32(len(r.results))
	if n == 0 || r.broken != nil {
		r.failAll(-int(syscall.EAGAIN))
		return r.results, r.broken
	}
	for i := range r.results {
		r.results[i] = -int(syscall.EIO)
	}
	atomic.StoreUint32(r.sqTail, r.tail)
	var submitted, reaped uint32
	for failures := 0; reaped < n; {
		var got uint32
		var errno syscall.Errno
		if submitted < n {
			got, errno = r.submit(n - submitted)
		} else {
			errno = r.wait(n - reaped)
		}
		submitted += got
		reaped += r.reap()
		if errno == 0 || errno == syscall.EINTR {
			continue
		}
		// EAGAIN and EBUSY: the kernel is short of something for now.
		if failures++; failures < maxEnterFailures && (errno == syscall.EAGAIN || errno == syscall.EBUSY) {
			continue
		}
		r.broken = fmt.Errorf("uring: io_uring_enter: %w", errno)
		r.unsubmitted(submitted)
		return r.results, r.broken
	}
	return r.results, nil
}

// maxEnterFailures bounds the retries of a failing io_uring_enter.
const maxEnterFailures = 100

// submit submits up to n queued entries, without waiting for them. A
// send that cannot block completes as it is submitted, before the call
// returns, so the call is made as a raw system call, without telling the
// scheduler: as a scheduled one, the runtime's monitor handed the
// goroutine's P to another thread during long batches (5% of the
// server's CPU in sysmon alone, docs/performance.md, item 19).
func (r *Ring) submit(n uint32) (uint32, syscall.Errno) {
	got, _, errno := syscall.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(n), 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return uint32(got), 0
}

// wait waits until n more completions are posted, telling the scheduler:
// it is only needed if a send did not complete as it was submitted.
func (r *Ring) wait(n uint32) syscall.Errno {
	_, _, errno := syscall.Syscall6(sysEnter, uintptr(r.fd), 0, uintptr(n), enterGetEvents, 0, 0)
	return errno
}

// reap records the posted completions' results and returns their number.
func (r *Ring) reap() uint32 {
	head, tail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
	for i := head; i != tail; i++ {
		c := (*completion)(unsafe.Add(r.cqes, cqeSize*uintptr(i&r.cqMask)))
		if c.userData < uint64(len(r.results)) {
			r.results[c.userData] = int(c.res)
		}
	}
	atomic.StoreUint32(r.cqHead, tail)
	return tail - head
}

// unsubmitted marks the sends after the first submitted as never made.
func (r *Ring) unsubmitted(submitted uint32) {
	for i := int(submitted); i < len(r.results); i++ {
		r.results[i] = -int(syscall.EAGAIN)
	}
}

func (r *Ring) failAll(res int) {
	for i := range r.results {
		r.results[i] = res
	}
}

// clearSlots forgets the buffers of the sends made, and empties the queue
// for the next Send.
func (r *Ring) clearSlots() {
	for i := range r.results {
		s := &r.slots[i]
		s.bufs, s.msg = nil, syscall.Msghdr{}
		clear(s.iovs)
	}
	r.results = r.results[:0]
}

// Close releases the ring.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		syscall.Munmap(r.sqeMem)
	}
	if r.rings != nil {
		syscall.Munmap(r.rings)
	}
	return syscall.Close(r.fd)
}
