package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// appendRooms appends n messages from 32 goroutines, message i going to
// room i mod 1000, so most commits write a page per message.
func appendRooms(t *testing.T, store *Store, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				msg := partyline.Message{Room: fmt.Sprintf("room-%d", i%1000), Content: "hello"}
				if _, err := store.Append(t.Context(), msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// lowerCheckpointThresholds makes store checkpoint every 100 WAL frames, at
// most every 10 ms, and let the WAL start over at 400, so a test needs
// hundreds of appends, not tens of thousands. Call it before the first
// append.
func lowerCheckpointThresholds(store *Store) {
	store.checkpoints.every, store.checkpoints.restartAt = 100, 400
	store.checkpoints.pause = 10 * time.Millisecond
}

// walRestarts reads the checkpoint sequence number in the header of path's
// WAL file: SQLite adds one each time the WAL starts over from its
// beginning after a checkpoint copied all of it.
func walRestarts(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	header := make([]byte, 16)
	if _, err := f.ReadAt(header, 0); err != nil {
		t.Fatalf("WAL header: %v", err)
	}
	return binary.BigEndian.Uint32(header[12:])
}

// totalLastSeqs returns the sum of the rooms' last seqs in the database at
// path, opened anew: the messages appended, when each was to a fresh room
// or a room's next seq.
func totalLastSeqs(t *testing.T, path string) int {
	t.Helper()
	store := openForTest(t, path)
	defer store.Close()
	var total int
	if err := store.read.QueryRowContext(t.Context(), `SELECT coalesce(sum(last_seq), 0) FROM rooms`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	return total
}

func TestBackgroundCheckpointsLetTheWALStartOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	store := openForTest(t, path)
	lowerCheckpointThresholds(store)
	appended := 0
	for walRestarts(t, path) < 2 { // a fresh WAL's header says 0
		if appended >= 20_000 {
			t.Fatalf("after %d appends the WAL started over %d times, want 2: %d checkpoints ran",
				appended, walRestarts(t, path), store.checkpoints.runs.Load())
		}
		appendRooms(t, store, 500)
		appended += 500
	}
	if store.checkpoints.checkpointed.Load() == 0 {
		t.Errorf("%d background checkpoints copied no frames", store.checkpoints.runs.Load())
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if got := totalLastSeqs(t, path); got != appended {
		t.Errorf("after reopening, the rooms hold %d messages, want %d", got, appended)
	}
}

func TestCloseTruncatesWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "close.db")
	store := openForTest(t, path)
	// Another connection keeps the file open, so closing the Store's
	// connections does not delete the WAL, as the last one to close would.
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var n int
	if err := other.QueryRowContext(t.Context(), `SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM message_chunks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	appendRooms(t, store, 300)
	if info, err := os.Stat(path + "-wal"); err != nil || info.Size() == 0 {
		t.Fatalf("WAL before Close: %v; want frames in it", walSize(info, err))
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path + "-wal"); err != nil || info.Size() != 0 {
		t.Errorf("WAL after Close: %v; want 0 bytes", walSize(info, err))
	}
	if err := other.QueryRowContext(t.Context(), `SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM message_chunks`).Scan(&n); err != nil || n != 300 {
		t.Errorf("messages in message_chunks after Close: %d, %v; want 300", n, err)
	}
}

// walSize describes the outcome of a Stat of a WAL file.
func walSize(info os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d bytes", info.Size())
}

// TestCheckpointDoesNotNeedTheWriteConnection checkpoints while another
// transaction holds the write connection and SQLite's write lock: the
// checkpoint runs on a connection of its own and copies the whole WAL.
func TestCheckpointDoesNotNeedTheWriteConnection(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "conn.db"))
	appendRooms(t, store, 100)
	writer, err := store.write.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if _, err := writer.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer writer.ExecContext(context.Background(), `ROLLBACK`)
	r, err := store.checkpoints.checkpoint("PASSIVE")
	if err != nil || r.busy != 0 || r.log == 0 || r.checkpointed != r.log {
		t.Errorf("PASSIVE checkpoint while the writer holds its connection: %+v, %v; want the whole WAL checkpointed", r, err)
	}
}

func TestFailedCheckpointIsRetried(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "failed.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // every checkpoint on it fails
	c := &checkpointer{db: db, wake: make(chan struct{}, 1), every: 100, restartAt: 400}
	c.written.Store(150)
	c.checkpointDue()
	if got := c.written.Load(); got != 150 {
		t.Errorf("frames due after a failed checkpoint: %d, want 150", got)
	}
	if len(c.wake) != 1 {
		t.Error("a failed checkpoint did not call for another")
	}
}

func TestCloseEndsCheckpointer(t *testing.T) {
	base := runtime.NumGoroutine()
	store, err := Open(t.Context(), filepath.Join(t.TempDir(), "goroutines.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	lowerCheckpointThresholds(store)
	// Appends until the WAL has grown enough: how many frames an append
	// writes depends on how many share a commit.
	for deadline := time.Now().Add(10 * time.Second); store.checkpoints.runs.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no background checkpoint within 10s of appending")
		}
		appendRooms(t, store, 100)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > base; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before Open:\n%s", runtime.NumGoroutine(), base, bytes.TrimSpace(buf))
		}
	}
}
