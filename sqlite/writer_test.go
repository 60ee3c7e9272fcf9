package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

func openForTest(t *testing.T, path string) *Store {
	t.Helper()
	store, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func TestConcurrentAppendsShareTransactions(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "g.db"))
	const writers, each = 64, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if _, err := store.Append(t.Context(), partyline.Message{Room: "r"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	commits := store.commits.Load()
	if commits >= writers*each {
		t.Errorf("%d concurrent appends took %d transactions, want fewer (group commit)", writers*each, commits)
	}
	t.Logf("%d appends in %d transactions", writers*each, commits)
}

// holdWriteLock takes SQLite's write lock on path from a connection of its
// own and returns the function that releases it.
func holdWriteLock(t *testing.T, path string) func() {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), `ROLLBACK`)
		conn.Close()
		db.Close()
	}
}

func TestAppendGivenUpInQueueIsNotStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	store := openForTest(t, path)
	release := holdWriteLock(t, path)

	// The writer takes the first append, then waits for the lock.
	first := newAppendRequest(t.Context(), partyline.Message{Room: "r", Content: "first"})
	if err := store.enqueue(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	for first.state.Load() != requestTaken {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let it finish collecting the batch

	// The second one waits in the queue until its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := store.Append(ctx, partyline.Message{Room: "r", Content: "second"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append whose context ended in the queue: error %v, want DeadlineExceeded", err)
	}
	release()
	if _, err := first.result(<-first.done); err != nil {
		t.Fatalf("first Append: %v", err)
	}
	history, err := store.History(t.Context(), "r", partyline.HistoryQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 1 || history[0].Content != "first" {
		t.Errorf("history = %+v, want only the first message", history)
	}
}

func TestCloseCommitsQueuedAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "close.db")
	store := openForTest(t, path)
	release := holdWriteLock(t, path)
	requests := make([]*appendRequest, 20)
	for i := range requests {
		requests[i] = newAppendRequest(t.Context(), partyline.Message{Room: "r"})
		if err := store.enqueue(t.Context(), requests[i]); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- store.Close() }()
	release()
	for i, req := range requests {
		if _, err := req.result(<-req.done); err != nil {
			t.Errorf("append %d, queued before Close: %v", i, err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	reopened := openForTest(t, path)
	if got, err := reopened.LastSeq(t.Context(), "r"); err != nil || got != uint64(len(requests)) {
		t.Errorf("LastSeq after Close = %d, %v; want %d", got, err, len(requests))
	}
}
