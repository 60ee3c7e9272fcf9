package partyline

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// heldConn is a loopback TCP connection whose first direct write is held
// up until release, as a write(2) that takes long would be.
type heldConn struct {
	*net.TCPConn
	entered chan struct{} // closed when the first write begins
	release chan struct{}
	once    sync.Once
}

// SyscallConn implements syscall.Conn, for the direct writes.
func (c *heldConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.TCPConn.SyscallConn()
	return heldRawConn{rc, c}, err
}

// heldRawConn is the heldConn's RawConn.
type heldRawConn struct {
	syscall.RawConn
	conn *heldConn
}

func (rc heldRawConn) Write(f func(fd uintptr) bool) error {
	rc.conn.once.Do(func() {
		close(rc.conn.entered)
		<-rc.conn.release
	})
	return rc.RawConn.Write(f)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close(); accepted.Close() })
	return accepted.(*net.TCPConn), dialed.(*net.TCPConn)
}

// TestWelcomeIsWrittenOutsideTheHubLock: the welcome is queued under
// hub.mu, so nothing for its user comes before it, but written by a flush
// goroutine, so the system call holds up no other connection's rooms or
// users: addUserConn returns, and hub.mu is free, while the write is stuck.
func TestWelcomeIsWrittenOutsideTheHubLock(t *testing.T) {
	if !rawIO {
		t.Skip("no direct writes here: a writer goroutine writes the welcome")
	}
	srv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	server, client := tcpPair(t)
	held := &heldConn{TCPConn: server, entered: make(chan struct{}), release: make(chan struct{})}
	c := newConn(srv, held, admission{identity: Identity{Username: "alice"}, ip: "127.0.0.1"})
	welcome := []byte(`{"type":"welcome"}`)
	added := make(chan error, 1)
	go func() { added <- srv.hub.addUserConn(c.ctx(), c, func() { c.send(welcome) }) }()
	select {
	case <-held.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the welcome was never written")
	}
	select {
	case err := <-added:
		if err != nil {
			t.Fatalf("addUserConn: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("addUserConn waited for the welcome's write")
	}
	free := srv.hub.mu.TryLock()
	if free {
		srv.hub.mu.Unlock()
	}
	close(held.release)
	defer srv.hub.removeUserConn(c)
	if !free {
		t.Error("hub.mu was held while the welcome was written")
	}
	want := ws.TextFrame(welcome)
	got := make([]byte, len(want))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("client read %q, %v; want the welcome frame %q", got, err, want)
	}
}

// BenchmarkBound: what bounding one backend call costs, for the calls made
// with inFlight as parent, such as every client's chat (one deadline
// shared by a slice of time), and for a caller's own context (a timer
// each, as every call had before).
func BenchmarkBound(b *testing.B) {
	h := newHub(nil)
	defer h.cancelFlight()
	for _, bc := range []struct {
		name   string
		parent context.Context
	}{{"parent=inFlight", h.inFlight}, {"parent=caller", context.Background()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, cancel := h.bound(bc.parent)
				cancel()
			}
		})
	}
}
