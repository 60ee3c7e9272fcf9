//go:build linux

package partyline_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/partyline/partyline"
)

// BenchmarkIdleConnection reports what an idle WebSocket connection holds
// in the server: 2,000 real loopback connections, ten to a room like the
// idle scenario of partyline bench, each with the welcome, its join and a
// ping behind it, and no goroutine of its own. The clients keep only their
// descriptors, so the process's heap is the server's.
//
//   - heap-B/conn: live heap, after a collection (what the garbage
//     collector's headroom multiplies: by default the heap may grow to
//     twice it before the next collection);
//   - objects/conn: live heap objects.
//
// Memory the runtime holds outside the heap, such as its network poller's
// descriptors (512 bytes a socket), is not counted: the runtime keeps it
// for reuse, so only a process's first connections show it.
//
// With PARTYLINE_IDLE_HEAP_PROFILE set to a file name, it also writes a
// heap profile of every allocation while the connections are open (see
// docs/performance.md).
func BenchmarkIdleConnection(b *testing.B) {
	const conns, perRoom = 2000, 10
	profile := os.Getenv("PARTYLINE_IDLE_HEAP_PROFILE")
	if profile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	ts := startServer(b, partyline.Options{PingInterval: time.Second})
	var heap, objects float64
	for range b.N {
		before := memStats()
		fds := openIdle(b, ts, conns, conns/perRoom)
		time.Sleep(1500 * time.Millisecond) // a ping for each, and its pong
		after := memStats()
		heap += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		objects += float64(after.HeapObjects) - float64(before.HeapObjects)
		if profile != "" {
			writeHeapProfile(b, profile)
		}
		for _, fd := range fds {
			syscall.Close(fd)
		}
		waitUntil(b, "the connections to end", func() bool { return ts.Stats().Connections == 0 })
	}
	n := float64(b.N * conns)
	b.ReportMetric(heap/n, "heap-B/conn")
	b.ReportMetric(objects/n, "objects/conn")
	b.ReportMetric(0, "ns/op")
}

// memStats returns the runtime's statistics after a full collection.
func memStats() runtime.MemStats {
	runtime.GC()
	runtime.GC() // what the first one's finalizers freed
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func writeHeapProfile(tb testing.TB, name string) {
	tb.Helper()
	f, err := os.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}

// openIdle opens n WebSocket connections to ts, user i in room i%rooms,
// and waits until the server serves them all with no goroutine of their
// own. It returns the clients' descriptors, all that is kept of them: the
// server's welcome and pings wait unread in their sockets.
func openIdle(tb testing.TB, ts *testServer, n, rooms int) []int {
	tb.Helper()
	addr := strings.TrimPrefix(ts.url, "ws://")
	goroutines := runtime.NumGoroutine()
	fds := make([]int, 0, n)
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatalf("dial %d: %v", i, err)
		}
		fmt.Fprintf(c, "GET /ws?username=u%d&room=r%d HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", i, i%rooms, addr)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			tb.Fatalf("upgrade %d: %v %v", i, resp, err)
		}
		// Keep a duplicate of the descriptor: the net.Conn, its buffers
		// and the runtime's poll descriptor go.
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			tb.Fatal(err)
		}
		var fd int
		var dupErr error
		raw.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) })
		c.Close()
		if dupErr != nil {
			tb.Fatalf("dup: %v", dupErr)
		}
		fds = append(fds, fd)
	}
	waitUntil(tb, "every connection served and idle", func() bool {
		return ts.Stats().Connections == n && runtime.NumGoroutine() <= goroutines+2
	})
	return fds
}

// TestConnSize guards the size of a Conn, which every connection is, idle
// or not: 512 bytes on 64-bit systems, the largest size class whose objects
// carry no header. A field more costs 128 bytes a connection, not its own
// size (the next class, with the 8-byte header, is 640): make room for it,
// or raise the limit knowingly.
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit systems")
	}
	if size := unsafe.Sizeof(partyline.Conn{}); size > 512 {
		t.Errorf("a Conn is %d bytes, want at most 512", size)
	}
}
