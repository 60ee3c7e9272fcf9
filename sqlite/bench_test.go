//go:build unix

package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/storetest"
	"github.com/partyline/partyline/sqlite"
)

// BenchmarkAppend measures Append's throughput (msgs/s) and the process's
// CPU time per message (cpu-ns/msg, user and system, every goroutine) and
// how many messages a transaction carried (msgs/commit):
// writers=1 and writers=64 spread over 8 rooms with 100-byte messages, and
// rooms=1000 as on a loaded server, 256 writers taking the next of 1,000
// rooms in turn with 64-byte messages, so most batches touch as many rooms
// as they carry messages. Every case keeps 1,000 messages per room, and
// reports the 99th percentile of Append's wall time (p99-ms), where a
// checkpoint on the commit path shows, and the bytes the process wrote per
// message (write-B/msg: the WAL and the checkpoints' copies into the
// database file, from /proc/self/io where there is one).
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			store := openBench(b)
			measureCPU(b, store, func() { storetest.BenchmarkAppend(b, store, writers) })
		})
	}
	b.Run("rooms=1000/writers=256", func(b *testing.B) {
		store := openBench(b)
		measureCPU(b, store, func() { appendManyRooms(b, store, 1000, 256) })
	})
}

// openBench opens a Store keeping 1,000 messages per room in b's temporary
// directory, closed when b ends.
func openBench(b *testing.B) *sqlite.Store {
	b.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Keep: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	return store
}

// measureCPU runs bench, which appends b.N messages to store, and reports
// the process's CPU time per message, the messages per transaction and the
// allocations.
func measureCPU(b *testing.B, store *sqlite.Store, bench func()) {
	b.ReportAllocs()
	cpu, commits, written := processCPU(), store.Commits(), bytesWritten()
	bench()
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/msg")
	if written >= 0 {
		b.ReportMetric(float64(bytesWritten()-written)/float64(b.N), "write-B/msg")
	}
	b.ReportMetric(float64(b.N)/float64(store.Commits()-commits), "msgs/commit")
}

// appendManyRooms appends b.N messages of 64 bytes from writers goroutines,
// message i going to room i mod rooms, and reports msgs/s and p99-ms.
func appendManyRooms(b *testing.B, store partyline.Store, rooms, writers int) {
	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprintf("room-%d", i)
	}
	content := strings.Repeat("x", 64)
	storetest.AppendConcurrently(b, store, writers, func(_ int, i int64) partyline.Message {
		return partyline.Message{Room: names[i%int64(rooms)], ID: "bench", Username: "bench", Content: content}
	})
}

// bytesWritten returns the bytes the process has passed to write calls
// (wchar in /proc/self/io), or -1 where that file cannot be read.
func bytesWritten() int64 {
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(io)) {
		if n, ok := strings.CutPrefix(line, "wchar: "); ok {
			if v, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// processCPU returns the CPU time, user and system, the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
