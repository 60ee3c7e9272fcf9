//go:build linux

package partyline_test

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/partyline/partyline/internal/uring"
)

// BenchmarkLoopbackWrite measures the floor under every delivery: one
// non-blocking write of an 80-byte frame to one of many loopback TCP
// sockets, with nothing of partyline in the way. On loopback the call also
// runs the receiving side of TCP, so this is what the kernel charges a
// server per delivery before any code of its own; it leaves out waking a
// sleeping reader. cpu-ns/write is the process's CPU time (rusage) per
// write; compare it with partyline bench's CPU/M on the same machine.
// syscall=send makes the call as partyline does (rawio_unix.go): a raw
// send(2), without telling the scheduler; syscall=raw is a raw write(2), as
// partyline made until session 10; syscall=scheduled is syscall.Write,
// which tells the scheduler first.
func BenchmarkLoopbackWrite(b *testing.B) {
	for _, sockets := range []int{1000, 8000} {
		for _, call := range []string{"send", "raw", "scheduled"} {
			b.Run("sockets="+strconv.Itoa(sockets)+"/syscall="+call, func(b *testing.B) {
				benchmarkLoopbackWrite(b, sockets, call)
			})
		}
	}
}

// benchmarkLoopbackWrite writes to sockets loopback pairs in turn, draining
// the receivers now and then outside the timer.
func benchmarkLoopbackWrite(b *testing.B, sockets int, call string) {
	senders, receivers := loopbackPairs(b, sockets)
	frame := make([]byte, 80)
	drain := make([]byte, 64<<10)
	const roundsBetweenDrains = 20 // stays well inside the receive buffers
	b.ResetTimer()
	cpu := processCPU()
	for i := range b.N {
		if err := writeOnce(senders[i%sockets], frame, call); err != nil {
			b.Fatal(err)
		}
		if (i+1)%(sockets*roundsBetweenDrains) == 0 {
			b.StopTimer()
			cpu -= processCPU()
			drainAll(receivers, drain)
			cpu += processCPU()
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/write")
}

// BenchmarkLoopbackSendOrWrite compares send(2) with write(2), both raw,
// in one process and on the same 4,000 sockets: each round writes one
// frame to every socket, with send and write taking turns, so the
// machine's drift, which moves separate runs by more than the difference,
// falls on both alike. cpu-ns/send and cpu-ns/write are the process's CPU
// time per call of each.
func BenchmarkLoopbackSendOrWrite(b *testing.B) {
	frame := make([]byte, 80)
	takeTurns(b, 4000, []turn{
		{"send", func(fds []int) error { return writeEach(fds, frame, "send") }},
		{"write", func(fds []int) error { return writeEach(fds, frame, "raw") }},
	})
}

// BenchmarkLoopbackSendInBatches compares sends made in io_uring batches
// of 64, as the flush goroutines make them (internal/uring), with one raw
// send(2) each, taking turns on the same 1,024 sockets. cpu-ns/ring and
// cpu-ns/send are the process's CPU time per send of each.
func BenchmarkLoopbackSendInBatches(b *testing.B) {
	ring := newRing(b, 64)
	frame := make([]byte, 80)
	takeTurns(b, 1024, []turn{
		{"ring", func(fds []int) error { return sendInBatches(ring, fds, frame) }},
		{"send", func(fds []int) error { return writeEach(fds, frame, "send") }},
	})
}

// A turn is one way of writing a frame to each of the sockets fds.
type turn struct {
	name  string
	round func(fds []int) error
}

// takeTurns writes to sockets loopback pairs in rounds of one frame per
// socket, the turns taking rounds in turn, and reports each one's process
// CPU time per socket written as cpu-ns/NAME.
func takeTurns(b *testing.B, sockets int, turns []turn) {
	senders, receivers := loopbackPairs(b, sockets)
	drain := make([]byte, 64<<10)
	cpu := make([]time.Duration, len(turns))
	made := make([]int, len(turns))
	b.ResetTimer()
	for round, total := 0, 0; total < b.N; round++ {
		k := round % len(turns)
		start := processCPU()
		if err := turns[k].round(senders); err != nil {
			b.Fatal(err)
		}
		cpu[k] += processCPU() - start
		made[k] += sockets
		total += sockets
		if round%20 == 19 { // stays well inside the receive buffers
			drainAll(receivers, drain)
		}
	}
	for k, t := range turns {
		b.ReportMetric(float64(cpu[k])/float64(made[k]), "cpu-ns/"+t.name)
	}
}

// writeEach writes frame to each of fds with the call writeOnce names.
func writeEach(fds []int, frame []byte, call string) error {
	for _, fd := range fds {
		if err := writeOnce(fd, frame, call); err != nil {
			return err
		}
	}
	return nil
}

// sendInBatches sends frame to each of fds through ring, a batch of
// ring.Cap() sockets per submission.
func sendInBatches(ring *uring.Ring, fds []int, frame []byte) error {
	bufs := [][]byte{frame}
	for len(fds) > 0 {
		batch := fds[:min(len(fds), ring.Cap())]
		for _, fd := range batch {
			ring.Send(fd, bufs)
		}
		results, err := ring.Submit()
		if err != nil {
			return err
		}
		for _, n := range results {
			if n != len(frame) {
				return fmt.Errorf("a send in a batch took %d of %d bytes", n, len(frame))
			}
		}
		fds = fds[len(batch):]
	}
	return nil
}

// BenchmarkLoopbackWriteRead measures the floor under a heartbeat: the
// server writes a ping and reads a pong, so at least one write(2) and one
// read(2) of a small segment. cpu-ns/pair is the process's CPU time per
// write on one socket and read of it at the other end.
func BenchmarkLoopbackWriteRead(b *testing.B) {
	const sockets = 1000
	senders, receivers := loopbackPairs(b, sockets)
	frame := make([]byte, 6) // a masked pong with no payload
	buf := make([]byte, 64)
	b.ResetTimer()
	cpu := processCPU()
	for i := range b.N {
		if err := writeOnce(senders[i%sockets], frame, "scheduled"); err != nil {
			b.Fatal(err)
		}
		if n, err := readOnce(receivers[i%sockets], buf); err != nil || n != len(frame) {
			b.Fatalf("read %d bytes, %v; want %d", n, err, len(frame))
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/pair")
}

// loopbackPairs connects n TCP pairs over 127.0.0.1 and returns the
// descriptors of both ends, closed at the end of the benchmark.
func loopbackPairs(b *testing.B, n int) (senders, receivers []int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	for range n {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Skipf("dialing pair %d of %d: %v (raise ulimit -n)", len(senders)+1, n, err)
		}
		server, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { client.Close(); server.Close() })
		senders = append(senders, descriptor(b, server))
		receivers = append(receivers, descriptor(b, client))
	}
	return senders, receivers
}

// descriptor returns c's socket, which stays non-blocking and owned by c.
func descriptor(b *testing.B, c net.Conn) int {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	fd := -1
	raw.Control(func(s uintptr) { fd = int(s) })
	return fd
}

// writeOnce writes frame to fd with the call named: a raw write(2) ("raw"),
// a raw send(2) ("send") or syscall.Write ("scheduled").
func writeOnce(fd int, frame []byte, call string) error {
	var n int
	var err error
	if call == "scheduled" {
		n, err = syscall.Write(fd, frame)
	} else {
		trap, flags := uintptr(syscall.SYS_WRITE), uintptr(0)
		if call == "send" {
			trap, flags = syscall.SYS_SENDTO, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL
		}
		r, _, errno := syscall.RawSyscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&frame[0])), uintptr(len(frame)), flags, 0, 0)
		n = int(r)
		if errno != 0 {
			err = errno
		}
	}
	if err == nil && n != len(frame) {
		err = syscall.EAGAIN
	}
	return err
}

// readOnce reads what one write sent, retrying the moments before the
// kernel has queued it.
func readOnce(fd int, buf []byte) (int, error) {
	for range 1_000_000 {
		n, err := syscall.Read(fd, buf)
		if err != syscall.EAGAIN {
			return n, err
		}
	}
	return 0, syscall.EAGAIN
}

// drainAll reads every socket until it would block.
func drainAll(fds []int, buf []byte) {
	for _, fd := range fds {
		for {
			if n, err := syscall.Read(fd, buf); err != nil || n < len(buf) {
				break
			}
		}
	}
}

// processCPU is the user and system time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
