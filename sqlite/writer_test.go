package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
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

// observeCommits makes store's writer send each batch on the returned
// channel as its transaction begins.
func observeCommits(t *testing.T, store *Store) <-chan []partyline.Message {
	t.Helper()
	began := make(chan []partyline.Message, 100)
	store.queue.Close()
	store.queue = newQueue(func(ctx context.Context, batch []partyline.Message) error {
		began <- slices.Clone(batch)
		return store.commit(ctx, batch)
	})
	return began
}

// nextCommit returns the next batch from began.
func nextCommit(t *testing.T, began <-chan []partyline.Message) []partyline.Message {
	t.Helper()
	select {
	case batch := <-began:
		return batch
	case <-time.After(10 * time.Second):
		t.Fatal("no transaction began within 10s")
		return nil
	}
}

// appendAsync calls store.Append in a goroutine and returns where its error
// arrives.
func appendAsync(ctx context.Context, store *Store, msg partyline.Message) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := store.Append(ctx, msg)
		done <- err
	}()
	return done
}

// waitQueued waits until n appends wait for store's writer.
func waitQueued(t *testing.T, store *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); store.queue.Len() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d appends queued after 10s, want %d", store.queue.Len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAppendGivenUpInQueueIsNotStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	store := openForTest(t, path)
	began := observeCommits(t, store)
	release := holdWriteLock(t, path)

	// The writer takes the first append, then waits for the lock.
	first := appendAsync(t.Context(), store, partyline.Message{Room: "r", Content: "first"})
	if batch := nextCommit(t, began); len(batch) != 1 || batch[0].Content != "first" {
		t.Fatalf("first transaction carries %+v, want the first message", batch)
	}

	// The second one waits in the queue until its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := store.Append(ctx, partyline.Message{Room: "r", Content: "second"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append whose context ended in the queue: error %v, want DeadlineExceeded", err)
	}
	release()
	if err := <-first; err != nil {
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
	began := observeCommits(t, store)
	release := holdWriteLock(t, path)
	const appends = 20
	results := []<-chan error{appendAsync(t.Context(), store, partyline.Message{Room: "r"})}
	nextCommit(t, began) // the writer waits for the lock
	for range appends - 1 {
		results = append(results, appendAsync(t.Context(), store, partyline.Message{Room: "r"}))
	}
	waitQueued(t, store, appends-1)
	closed := make(chan error, 1)
	go func() { closed <- store.Close() }()
	release()
	for i, done := range results {
		if err := <-done; err != nil {
			t.Errorf("append %d, queued before Close: %v", i, err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := store.Append(t.Context(), partyline.Message{Room: "r"}); !errors.Is(err, partyline.ErrUnavailable) {
		t.Errorf("Append after Close: error %v, want one wrapping ErrUnavailable", err)
	}
	reopened := openForTest(t, path)
	if got, err := reopened.LastSeq(t.Context(), "r"); err != nil || got != appends {
		t.Errorf("LastSeq after Close = %d, %v; want %d", got, err, appends)
	}
}

// TestWriteConnectionPragmas checks the write connection's settings, among
// them wal_autocheckpoint=0: no commit runs a checkpoint (the checkpointer's
// own connection does, see TestCheckpointDoesNotNeedTheWriteConnection).
func TestWriteConnectionPragmas(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "pragmas.db"))
	for pragma, want := range map[string]int64{"cache_size": -8192, "wal_autocheckpoint": 0} {
		var got int64
		if err := store.write.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s on the write connection = %d, %v; want %d", pragma, got, err, want)
		}
	}
}
