// Package pgtest gives tests an empty PostgreSQL schema of their own on the
// server PARTYLINE_TEST_POSTGRES names.
package pgtest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Schema creates an empty schema, dropped when t ends, and returns a URL
// that selects it (search_path) with a pool of at most four connections.
// It skips t when PARTYLINE_TEST_POSTGRES is not set.
func Schema(t testing.TB) string {
	t.Helper()
	base := os.Getenv("PARTYLINE_TEST_POSTGRES")
	if base == "" {
		t.Skip("PARTYLINE_TEST_POSTGRES is not set; set it to a PostgreSQL URL, " +
			"e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the tests with PostgreSQL")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("PARTYLINE_TEST_POSTGRES must be a URL: %v", err)
	}
	name := "partyline_test_" + strings.ToLower(rand.Text()[:12])
	exec(t, base, "CREATE SCHEMA "+name)
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA "+name+" CASCADE") })
	q := u.Query()
	q.Set("search_path", name)
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	return u.String()
}

// exec runs sql on a connection of its own to base.
func exec(t testing.TB, base, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PARTYLINE_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
