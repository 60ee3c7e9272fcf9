package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
)

// waitTime bounds every wait for something that should happen promptly. It
// is wide because the tests run under the race detector on shared machines.
const waitTime = 10 * time.Second

// presenceTTL is the presence TTL of every test cluster (--presence-ttl).
const presenceTTL = 2 * time.Second

// services returns the URLs of the Redis and PostgreSQL servers the tests
// use, or skips t when either is not configured.
func services(t testing.TB) (redisURL, postgresURL string) {
	t.Helper()
	redisURL, postgresURL = os.Getenv("PARTYLINE_TEST_REDIS"), os.Getenv("PARTYLINE_TEST_POSTGRES")
	if redisURL == "" || postgresURL == "" {
		t.Skip("the cluster tests need both PARTYLINE_TEST_REDIS (e.g. redis://127.0.0.1:6379/0) and " +
			"PARTYLINE_TEST_POSTGRES (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return redisURL, postgresURL
}

// suffix returns a short random lower-case suffix for names private to a
// test.
func suffix() string { return strings.ToLower(rand.Text()[:8]) }

// newSchema creates an empty PostgreSQL schema for t, dropped when t ends,
// and returns a URL that selects it (search_path) with a small pool, so the
// nodes of one test share it and see no other test's rows.
func newSchema(t testing.TB, base string) string {
	t.Helper()
	name := "partyline_cluster_" + suffix()
	adminExec(t, base, "CREATE SCHEMA "+name)
	t.Cleanup(func() { adminExec(t, base, "DROP SCHEMA "+name+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("PARTYLINE_TEST_POSTGRES must be a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	return u.String()
}

// adminExec runs sql on a connection of its own to base.
func adminExec(t testing.TB, base, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newPrefix returns a Redis key and channel prefix private to t; its keys
// are deleted when t ends.
func newPrefix(t testing.TB, redisURL string) string {
	t.Helper()
	prefix := "partyline-cluster-test:" + suffix() + ":"
	t.Cleanup(func() {
		rdb := newRedisClient(t, redisURL)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("deleting the keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

// newRedisClient returns a plain go-redis client on redisURL, for looking at
// what the nodes did.
func newRedisClient(t testing.TB, redisURL string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(redisURL)
	if err != nil {
		t.Fatalf("PARTYLINE_TEST_REDIS must be a Redis URL: %v", err)
	}
	return goredis.NewClient(opts)
}

// waitUntil polls cond until it holds, failing t after d.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects a node's logs, shown when its test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
