package partyline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// polledPair returns a connection whose socket the server's poller has
// adopted, not served, and the client's end of it.
func polledPair(t *testing.T) (*Conn, *net.TCPConn) {
	t.Helper()
	srv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	server, client := tcpPair(t)
	c := newConn(srv, server, admission{identity: Identity{Username: "alice"}, ip: "127.0.0.1"})
	if !c.polled() {
		t.Fatal("the socket was not adopted")
	}
	t.Cleanup(c.closeSocket)
	return c, client
}

// fillSocket writes to s until the kernel refuses more, and returns how
// much it took.
func fillSocket(t *testing.T, s *polledSocket) int {
	t.Helper()
	chunk := make([]byte, 64<<10)
	total := 0
	for {
		n := 0
		err := (*polledRawConn)(s).Write(func(fd uintptr) bool {
			n, _ = syscall.Write(int(fd), chunk)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n <= 0 {
			return total
		}
		total += n
	}
}

// descriptorOpen reports whether fd is an open descriptor.
func descriptorOpen(fd int32) bool {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return errno == 0
}

func TestPolledSocketWriteWaitsForRoom(t *testing.T) {
	c, client := polledPair(t)
	full := fillSocket(t, &c.sock)
	c.sock.SetWriteDeadline(time.Now().Add(5 * time.Second))
	more := bytes.Repeat([]byte("x"), 100<<10)
	written := make(chan error, 1)
	go func() {
		_, err := c.sock.Write(more)
		written <- err
	}()
	select {
	case err := <-written:
		t.Fatalf("a write to a full socket returned at once (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	got, err := io.ReadAll(io.LimitReader(client, int64(full+len(more))))
	if err != nil || len(got) != full+len(more) {
		t.Fatalf("client read %d bytes, %v; want %d", len(got), err, full+len(more))
	}
	if err := <-written; err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func TestPolledSocketWriteDeadline(t *testing.T) {
	c, _ := polledPair(t)
	fillSocket(t, &c.sock)
	c.sock.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.sock.Write([]byte("more")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a full socket past its deadline: %v, want %v", err, os.ErrDeadlineExceeded)
	}
	c.sock.SetWriteDeadline(time.Time{})
}

func TestPolledSocketCloseWakesAWriter(t *testing.T) {
	c, _ := polledPair(t)
	fillSocket(t, &c.sock)
	written := make(chan error, 1)
	go func() {
		_, err := c.sock.Write([]byte("more"))
		written <- err
	}()
	time.Sleep(50 * time.Millisecond)
	fd := c.sock.fd
	if err := c.sock.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-written:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write on a closed socket: %v, want %v", err, net.ErrClosed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the write")
	}
	if descriptorOpen(fd) {
		t.Error("the descriptor is still open")
	}
	if err := c.sock.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want %v", err, net.ErrClosed)
	}
}

func TestPolledSocketReads(t *testing.T) {
	c, client := polledPair(t)
	c.sock.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 64)
	if _, err := c.sock.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read of nothing past its deadline: %v, want %v", err, os.ErrDeadlineExceeded)
	}
	c.sock.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		time.Sleep(20 * time.Millisecond)
		client.Write([]byte("hello"))
		client.CloseWrite()
	}()
	got, err := io.ReadAll(&c.sock)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want hello and the end of the stream", got, err)
	}
}

func TestPolledSocketCloseWrite(t *testing.T) {
	c, client := polledPair(t)
	c.sock.Write([]byte("bye"))
	if err := c.sock.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(client); err != nil || string(got) != "bye" {
		t.Fatalf("client read %q, %v; want bye and the end of the stream", got, err)
	}
	if a, ok := c.sock.RemoteAddr().(*net.TCPAddr); !ok || a.Port != client.LocalAddr().(*net.TCPAddr).Port {
		t.Errorf("RemoteAddr = %v, want %v", c.sock.RemoteAddr(), client.LocalAddr())
	}
}

// TestPolledSocketClosesWhenTheLastCallEnds closes the socket while a call
// holds its descriptor: the descriptor stays open, for the call, and is
// closed as the call ends.
func TestPolledSocketClosesWhenTheLastCallEnds(t *testing.T) {
	c, _ := polledPair(t)
	fd := c.sock.fd
	entered, release := make(chan struct{}), make(chan struct{})
	go c.rawConn.Control(func(uintptr) {
		close(entered)
		<-release
	})
	<-entered
	c.sock.Close()
	if !descriptorOpen(fd) {
		t.Fatal("the descriptor was closed under a call using it")
	}
	if err := c.rawConn.Control(func(uintptr) {}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a call after Close: %v, want %v", err, net.ErrClosed)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for descriptorOpen(fd) {
		if time.Now().After(deadline) {
			t.Fatal("the descriptor was not closed when the call ended")
		}
		time.Sleep(time.Millisecond)
	}
}
