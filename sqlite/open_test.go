package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/sqlite"
)

// TestMain doubles as the helper process the lock and crash tests start:
// with PARTYLINE_SQLITE_HELPER set to a path it opens a Store there, prints
// "open", appends one message per "append" line on stdin printing its seq,
// and closes the store at the end of stdin.
func TestMain(m *testing.M) {
	if path := os.Getenv("PARTYLINE_SQLITE_HELPER"); path != "" {
		if err := runHelper(path, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(path string, in io.Reader, out io.Writer) error {
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintln(out, "open")
	lines := bufio.NewScanner(in)
	for i := 0; lines.Scan(); i++ {
		msg, err := store.Append(context.Background(), partyline.Message{
			Room: "crash", ID: fmt.Sprintf("id-%d", i), Username: "helper", Content: lines.Text(),
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, msg.Seq)
	}
	return store.Close()
}

// helper is a running helper process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startHelper starts a helper process on path and waits until its store is
// open. It kills the process when t ends.
func startHelper(t *testing.T, path string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PARTYLINE_SQLITE_HELPER="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	h := &helper{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	if got := h.readLine(t); got != "open" {
		t.Fatalf("helper said %q, want %q", got, "open")
	}
	return h
}

func (h *helper) readLine(t *testing.T) string {
	t.Helper()
	if !h.lines.Scan() {
		t.Fatalf("helper process ended early: %v", h.lines.Err())
	}
	return h.lines.Text()
}

func TestOpenRefusesFileHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "held.db")
	h := startHelper(t, path)
	_, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	want := fmt.Sprintf("sqlite: %s: database is locked by another process", path)
	if err == nil || err.Error() != want {
		t.Fatalf("Open while another process holds the file: error %v, want %q", err, want)
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	open(t, path, 0).Close()
}

func TestOpenRefusesFileHeldInThisProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "held.db")
	first := open(t, path, 0)
	if _, err := sqlite.Open(t.Context(), path, sqlite.Options{}); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open of %s: error %v, want locked by another process", path, err)
	}
	first.Close()
	open(t, path, 0).Close()
}

func TestAckedMessagesSurviveKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	h := startHelper(t, path)
	const n = 50
	for i := range n {
		fmt.Fprintf(h.stdin, "message %d\n", i)
		if got, want := h.readLine(t), fmt.Sprint(i+1); got != want {
			t.Fatalf("helper acked seq %s, want %s", got, want)
		}
	}
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	store := open(t, path, 0)
	defer store.Close()
	got, err := store.History(t.Context(), "crash", partyline.HistoryQuery{Limit: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("after SIGKILL: %d messages in history, want the %d acked", len(got), n)
	}
	for i, m := range got {
		if m.Seq != uint64(i+1) || m.Content != fmt.Sprintf("message %d", i) {
			t.Errorf("after SIGKILL: message %d = seq %d %q", i, m.Seq, m.Content)
		}
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string) string // returns the path to open
		want    string
	}{
		{"not SQLite", writeFile("this is not a database, just text\n"), "not a partyline database"},
		{"foreign SQLite tables", foreignDatabase, "not a partyline database: it has tables (customers)"},
		{"directory", func(t *testing.T, path string) string { os.Mkdir(path, 0o755); return path }, "is a directory"},
		{"missing directory", func(t *testing.T, path string) string { return filepath.Join(path, "x.db") }, "no such file or directory"},
		{"newer schema", newerSchema, "schema version 999 is newer than this partyline knows"},
		{"read-only file", readOnly, "not writable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.prepare(t, filepath.Join(t.TempDir(), "bad.db"))
			store, err := sqlite.Open(t.Context(), path, sqlite.Options{})
			if err == nil {
				store.Close()
				t.Fatalf("Open(%s) succeeded, want an error containing %q", path, tc.want)
			}
			if prefix := "sqlite: " + path + ": "; !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%s): error %q, want %q…%q", path, err, prefix, tc.want)
			}
		})
	}
}

func writeFile(content string) func(t *testing.T, path string) string {
	return func(t *testing.T, path string) string {
		if err := os.WriteFile(path, []byte(strings.Repeat(content, 200)), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
}

// rawExec runs statements on path with the plain driver, bypassing Store.
func rawExec(t *testing.T, path string, statements ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range statements {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func foreignDatabase(t *testing.T, path string) string {
	rawExec(t, path, `CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)`)
	t.Cleanup(func() {
		// Open must have left the foreign database alone.
		db, _ := sql.Open("sqlite", path)
		defer db.Close()
		var tables int
		db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table'`).Scan(&tables)
		if tables != 1 {
			t.Errorf("foreign database has %d tables after Open, want its 1", tables)
		}
	})
	return path
}

func newerSchema(t *testing.T, path string) string {
	open(t, path, 0).Close()
	rawExec(t, path, `INSERT INTO partyline_migrations (version, name, applied_at_ms) VALUES (999, '0999_future', 0)`)
	return path
}

func readOnly(t *testing.T, path string) string {
	if os.Geteuid() == 0 {
		t.Skip("root writes read-only files")
	}
	open(t, path, 0).Close()
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMigrationsAreRecordedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	open(t, path, 0).Close()
	open(t, path, 0).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT version, name FROM partyline_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var version int
		var name string
		rows.Scan(&version, &name)
		got = append(got, fmt.Sprint(version, " ", name))
	}
	if want := []string{"1 0001_init", "2 0002_webhooks", "3 0003_message_log", "4 0004_message_chunks"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("partyline_migrations after two opens = %q, want %q", got, want)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	store := open(t, filepath.Join(t.TempDir(), "c.db"), 0)
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

func TestFailingDatabaseIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	store := open(t, path, 0)
	defer store.Close()
	ctx := t.Context()
	if _, err := store.Append(ctx, partyline.Message{Room: "r", Content: "before"}); err != nil {
		t.Fatal(err)
	}
	rawExec(t, path, `DROP TABLE message_chunks`, `DROP TABLE message_log`)
	if _, err := store.Append(ctx, partyline.Message{Room: "r"}); !errors.Is(err, partyline.ErrUnavailable) || !strings.HasPrefix(err.Error(), "sqlite: append: ") {
		t.Errorf("Append without a message_log table: error %v, want sqlite: append: … wrapping ErrUnavailable", err)
	}
	if _, err := store.History(ctx, "r", partyline.HistoryQuery{Limit: 1}); !errors.Is(err, partyline.ErrUnavailable) {
		t.Errorf("History without a message_chunks table: error %v, want one wrapping ErrUnavailable", err)
	}
	if got, err := store.LastSeq(ctx, "r"); err != nil || got != 1 {
		t.Errorf("LastSeq after the failed Append = %d, %v; want 1, nil (the failed batch rolled back)", got, err)
	}
}

func TestRetentionDeletesChunks(t *testing.T) {
	const keep = 8 // trimmed in steps of 2
	path := filepath.Join(t.TempDir(), "r.db")
	store := open(t, path, keep)
	store.MoveAt(10) // moves, and trims, every 10 or so
	for range 100 {
		if _, err := store.Append(t.Context(), partyline.Message{Room: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var messages, oldest, newest, oldestLast int
	err = db.QueryRow(`SELECT sum(last_seq - first_seq + 1), min(first_seq), max(last_seq), min(last_seq) FROM message_chunks`).
		Scan(&messages, &oldest, &newest, &oldestLast)
	if err != nil {
		t.Fatal(err)
	}
	if newest != 100 || messages != newest-oldest+1 || messages < keep || oldestLast <= 100-keep {
		t.Errorf("after 100 appends keeping %d: %d messages from seq %d to %d, the oldest chunk up to %d; "+
			"want at least %d up to seq 100, and no chunk all of whose seqs fell out (up to %d)",
			keep, messages, oldest, newest, oldestLast, keep, 100-keep)
	}
}
