package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/eventlogtest"
	"github.com/partyline/partyline/internal/storetest"
	"github.com/partyline/partyline/postgres"
)

// testURL returns the URL of the PostgreSQL server the tests use, or skips
// t when none is configured.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PARTYLINE_TEST_POSTGRES")
	if u == "" {
		t.Skip("PARTYLINE_TEST_POSTGRES is not set; set it to a PostgreSQL URL, " +
			"e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests")
	}
	return u
}

// newSchema creates an empty schema for t, dropped when t ends, and returns
// a URL that uses it.
func newSchema(t testing.TB) string {
	t.Helper()
	base := testURL(t)
	name := "partyline_test_" + strings.ToLower(rand.Text()[:12])
	admin(t, base, "CREATE SCHEMA "+name)
	t.Cleanup(func() { admin(t, base, "DROP SCHEMA "+name+" CASCADE") })
	return withParams(t, base, "search_path", name)
}

// admin runs sql on its own connection to base.
func admin(t testing.TB, base, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// withParams returns rawURL with the query parameters given as name, value
// pairs set.
func withParams(t testing.TB, rawURL string, pairs ...string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("PARTYLINE_TEST_POSTGRES must be a URL: %v", err)
	}
	q := u.Query()
	for i := 0; i < len(pairs); i += 2 {
		q.Set(pairs[i], pairs[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// open opens a Store on url with a small pool, failing t on error.
func open(t testing.TB, url string, keep int) *postgres.Store {
	t.Helper()
	if !strings.Contains(url, "pool_max_conns=") {
		url = withParams(t, url, "pool_max_conns", "4")
	}
	store, err := postgres.Open(context.Background(), url, keep)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return store
}

func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, storetest.Backend{
		NewStorage: func(t *testing.T) storetest.Opener {
			url := newSchema(t)
			return func(t *testing.T, keep int) partyline.Store { return open(t, url, keep) }
		},
		Durable: true,
		Shared:  true,
	})
}

func TestEventLogConformance(t *testing.T) {
	testURL(t)
	eventlogtest.Run(t, eventlogtest.Backend{
		NewStorage: func(t *testing.T) eventlogtest.Opener {
			url := newSchema(t)
			return func(t *testing.T) eventlogtest.Store { return open(t, url, 0) }
		},
		Durable: true,
		Shared:  true,
	})
}

func TestNodesStartingAtOnceMigrateOnce(t *testing.T) {
	url := newSchema(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			store, err := postgres.Open(t.Context(), withParams(t, url, "pool_max_conns", "2"), 0)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			store.Close()
		})
	}
	wg.Wait()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var got string
	err = conn.QueryRow(t.Context(), `SELECT string_agg(version || ' ' || name, ',' ORDER BY version) FROM partyline_migrations`).Scan(&got)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1 0001_init,2 0002_webhooks"; got != want {
		t.Errorf("partyline_migrations after four nodes started = %q, want %q", got, want)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	url := newSchema(t)
	open(t, url, 0).Close()
	admin(t, url, `INSERT INTO partyline_migrations (version, name) VALUES (999, '0999_future')`)
	_, err := postgres.Open(t.Context(), url, 0)
	if err == nil || !strings.Contains(err.Error(), "schema version 999 is newer than this partyline knows") {
		t.Fatalf("Open on a newer schema: error %v, want one naming version 999", err)
	}
	if errors.Is(err, partyline.ErrUnavailable) {
		t.Errorf("Open on a newer schema: error %v wraps ErrUnavailable; retrying cannot help", err)
	}
}

func TestRetentionDeletesRows(t *testing.T) {
	const keep = 8 // trimmed in steps of 2
	url := newSchema(t)
	store := open(t, url, keep)
	defer store.Close()
	for range 100 {
		if _, err := store.Append(t.Context(), partyline.Message{Room: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, oldest int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), min(seq) FROM partyline_messages`).Scan(&rows, &oldest); err != nil {
		t.Fatal(err)
	}
	if rows < keep || rows > keep+2 || oldest != 100-rows+1 {
		t.Errorf("after 100 appends keeping %d: %d rows from seq %d, want %d to %d rows ending at seq 100", keep, rows, oldest, keep, keep+2)
	}
}

func TestOpenUnreachable(t *testing.T) {
	url := withParams(t, "postgres://partyline@127.0.0.1:1/none", "sslmode", "disable")
	_, err := postgres.Open(t.Context(), url, 0)
	if !errors.Is(err, partyline.ErrUnavailable) || !strings.HasPrefix(err.Error(), "postgres: open: ") {
		t.Fatalf("Open on a closed port: error %v, want postgres: open: … wrapping ErrUnavailable", err)
	}
}

// TestOpenRefused: when PostgreSQL answers but refuses the connection
// (here an unknown database), Open fails with an error that does not wrap
// ErrUnavailable: waiting will not mend it.
func TestOpenRefused(t *testing.T) {
	u, err := url.Parse(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/partyline_no_such_database"
	_, err = postgres.Open(t.Context(), u.String(), 0)
	if err == nil || errors.Is(err, partyline.ErrUnavailable) || !strings.Contains(err.Error(), "3D000") {
		t.Fatalf("Open on an unknown database: %v, want PostgreSQL's refusal (3D000), not wrapping ErrUnavailable", err)
	}
}

func TestOpenBadURL(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://user:secret@127.0.0.1:5432/db?pool_max_conns=lots", 0)
	if err == nil || !strings.HasPrefix(err.Error(), "postgres: ") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open with a bad URL: error %v, want a postgres: error without the password", err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	store := open(t, newSchema(t), 0)
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := store.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := t.Context()
	_, appendErr := store.Append(ctx, partyline.Message{Room: "r"})
	_, historyErr := store.History(ctx, "r", partyline.HistoryQuery{Limit: 1})
	_, lastSeqErr := store.LastSeq(ctx, "r")
	pingErr := store.Ping(ctx)
	for name, err := range map[string]error{"Append": appendErr, "History": historyErr, "LastSeq": lastSeqErr, "Ping": pingErr} {
		if !errors.Is(err, partyline.ErrUnavailable) {
			t.Errorf("%s after Close: error %v, want one wrapping ErrUnavailable", name, err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	url := newSchema(b)
	url = withParams(b, url, "pool_max_conns", "8")
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			store := open(b, url, 1000)
			defer store.Close()
			storetest.BenchmarkAppend(b, store, writers)
		})
	}
}

func TestMessageAndEventCommitTogether(t *testing.T) {
	url := newSchema(t)
	store := open(t, url, 0)
	defer store.Close()
	store.SetWebhookRoutes([]partyline.WebhookRoute{{URL: "https://example.com/hooks"}})
	if _, err := store.Append(t.Context(), partyline.Message{Room: "r", ID: "a"}); err != nil {
		t.Fatal(err)
	}
	admin(t, url, `DROP TABLE partyline_webhook_outbox`)
	if _, err := store.Append(t.Context(), partyline.Message{Room: "r", ID: "b"}); !errors.Is(err, partyline.ErrUnavailable) {
		t.Errorf("Append whose event cannot be recorded: error %v, want one wrapping ErrUnavailable", err)
	}
	if got, err := store.LastSeq(t.Context(), "r"); err != nil || got != 1 {
		t.Errorf("LastSeq after an Append whose event failed = %d, %v; want 1, nil (rolled back together)", got, err)
	}
}

// TestLockedRoomHoldsOnlyItself: while a transaction elsewhere holds one
// room's row locked, appends to that room wait, and appends to other rooms
// go through at once, however many of the locked room's are queued.
func TestLockedRoomHoldsOnlyItself(t *testing.T) {
	u := newSchema(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, u, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, room := range []string{"hot", "cold"} {
		if _, err := store.Append(ctx, partyline.Message{Room: room, ID: room + "-0", Username: "u", Content: "first"}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM partyline_rooms WHERE room = 'hot' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			store.Append(ctx, partyline.Message{Room: "hot", ID: fmt.Sprint("hot-", i+1), Username: "u", Content: "stuck"})
		})
	}
	time.Sleep(200 * time.Millisecond) // the hot appends reach the writers
	for i := range 3 {
		quick, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := store.Append(quick, partyline.Message{Room: "cold", ID: fmt.Sprint("cold-", i+1), Username: "u", Content: "free"})
		cancel()
		if err != nil {
			t.Fatalf("append %d to another room while hot's row is locked: %v", i, err)
		}
	}
	tx.Rollback(ctx)
	wg.Wait()
	last, err := store.LastSeq(ctx, "hot")
	if err != nil || last != 9 {
		t.Fatalf("hot's last seq %d, %v after the lock went; want 9, nil", last, err)
	}
}
