//go:build linux

package uring

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// newRing returns a Ring, or skips the test where the system refuses one.
func newRing(t *testing.T, entries int) *Ring {
	t.Helper()
	r, err := New(entries)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("no io_uring here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// pairs connects n loopback TCP pairs and returns the sending ends'
// descriptors and the receiving ends.
func pairs(t *testing.T, n int) ([]int, []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var fds []int
	var receivers []net.Conn
	for range n {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close(); server.Close() })
		raw, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		raw.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
		receivers = append(receivers, client)
	}
	return fds, receivers
}

func TestSubmitSendsToEachSocketInOrder(t *testing.T) {
	r := newRing(t, 16)
	fds, receivers := pairs(t, r.Cap())
	want := make([][]byte, len(fds))
	for round := range 3 { // the ring is reused
		for i, fd := range fds {
			bufs := [][]byte{[]byte("one ")}
			if i%2 == 1 { // several buffers: a sendmsg
				bufs = append(bufs, nil, []byte("two "), []byte("three "))
			}
			if !r.Send(fd, bufs) {
				t.Fatalf("round %d: Send %d of %d refused", round, i+1, r.Cap())
			}
			want[i] = append(want[i], bytes.Join(bufs, nil)...)
		}
		if r.Send(fds[0], [][]byte{[]byte("x")}) {
			t.Fatalf("Send took a send past Cap %d", r.Cap())
		}
		results, err := r.Submit()
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != len(fds) {
			t.Fatalf("round %d: %d results for %d sends", round, len(results), len(fds))
		}
		for i, n := range results {
			if wantN := 4 + 10*(i%2); n != wantN {
				t.Errorf("round %d: send %d took %d bytes, want %d", round, i, n, wantN)
			}
		}
	}
	for i, c := range receivers {
		got := make([]byte, len(want[i]))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		if !bytes.Equal(got, want[i]) {
			t.Errorf("socket %d got %q, want %q", i, got, want[i])
		}
	}
}

func TestSubmitWithNothingQueued(t *testing.T) {
	r := newRing(t, 4)
	results, err := r.Submit()
	if err != nil || len(results) != 0 {
		t.Fatalf("Submit() = %v, %v; want no results", results, err)
	}
}

// A full socket takes part of a send, then nothing: a send never blocks.
func TestSubmitToAFullSocketDoesNotBlock(t *testing.T) {
	r := newRing(t, 4)
	fds, receivers := pairs(t, 1)
	sent, short := fill(t, r, fds[0])
	if sent == 0 || short == 0 {
		t.Errorf("sent %d bytes in %d short sends before EAGAIN; want a short send first", sent, short)
	}
	receivers[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.CopyN(io.Discard, receivers[0], int64(sent)); err != nil {
		t.Fatalf("read back %d of %d bytes: %v", n, sent, err)
	}
}

// A send that does not complete as it is submitted is waited for. (Sends
// never block, so this test makes one that may, to a full socket.)
func TestSubmitWaitsForASendThatBlocks(t *testing.T) {
	r := newRing(t, 4)
	fds, receivers := pairs(t, 1)
	filled, _ := fill(t, r, fds[0])
	r.flags = syscall.MSG_NOSIGNAL // may block
	const pause = 50 * time.Millisecond
	read := make(chan int64, 1)
	go func() {
		time.Sleep(pause) // Submit has to wait until then
		receivers[0].SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.CopyN(io.Discard, receivers[0], int64(filled+1024))
		read <- n
	}()
	start := time.Now()
	r.Send(fds[0], [][]byte{make([]byte, 1024)})
	results, err := r.Submit()
	if err != nil || results[0] != 1024 {
		t.Fatalf("Submit() = %v, %v; want the 1,024 bytes sent", results, err)
	}
	if waited := time.Since(start); waited < pause*4/5 {
		t.Errorf("Submit returned after %v, before the peer read", waited)
	}
	if n := <-read; n != int64(filled+1024) {
		t.Fatalf("the peer read %d bytes, want %d", n, filled+1024)
	}
}

// fill sends to fd until its socket takes nothing more, and returns how
// many bytes it took, and in how many sends that took part of theirs.
func fill(t *testing.T, r *Ring, fd int) (sent, short int) {
	t.Helper()
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for range 1000 {
		r.Send(fd, [][]byte{chunk})
		results, err := r.Submit()
		if err != nil {
			t.Fatal(err)
		}
		switch n := results[0]; {
		case n == -int(syscall.EAGAIN):
			return sent, short
		case n < 0:
			t.Fatalf("send failed with errno %d", -n)
		case n < len(chunk):
			short++
		}
		sent += results[0]
	}
	t.Fatal("1,000 sends of 64 KiB to a socket nobody reads never would block")
	return 0, 0
}

// A send to a peer that is gone fails with an errno, and raises no SIGPIPE.
func TestSubmitToAClosedPeer(t *testing.T) {
	r := newRing(t, 4)
	fds, receivers := pairs(t, 1)
	receivers[0].(*net.TCPConn).SetLinger(0) // a reset
	receivers[0].Close()
	time.Sleep(10 * time.Millisecond)
	var failed int
	for range 3 { // the first may still be taken before the reset lands
		r.Send(fds[0], [][]byte{[]byte("anyone?")})
		results, err := r.Submit()
		if err != nil {
			t.Fatal(err)
		}
		if results[0] < 0 {
			failed = -results[0]
			break
		}
	}
	if errno := syscall.Errno(failed); errno != syscall.EPIPE && errno != syscall.ECONNRESET {
		t.Fatalf("send to a reset peer: errno %d (%v), want EPIPE or ECONNRESET", failed, errno)
	}
}

// A send to a descriptor that is not open fails alone; the others go.
func TestSubmitWithABadDescriptor(t *testing.T) {
	r := newRing(t, 4)
	fds, receivers := pairs(t, 2)
	r.Send(fds[0], [][]byte{[]byte("a")})
	r.Send(1<<20, [][]byte{[]byte("b")})
	r.Send(fds[1], [][]byte{[]byte("c")})
	results, err := r.Submit()
	if err != nil {
		t.Fatal(err)
	}
	if results[0] != 1 || results[1] != -int(syscall.EBADF) || results[2] != 1 {
		t.Fatalf("results %v, want [1 %d 1]", results, -int(syscall.EBADF))
	}
	buf := make([]byte, 1)
	receivers[1].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(receivers[1], buf); err != nil || buf[0] != 'c' {
		t.Fatalf("third socket read %q, %v", buf, err)
	}
}
