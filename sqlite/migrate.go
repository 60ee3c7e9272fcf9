package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/migrations"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrationFiles holds the schema, one file per step, named
// NNNN_description.sql and applied in order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate brings db's schema up to date, recording each step applied in
// partyline_migrations. It refuses a database that has tables but no
// partyline_migrations, and one migrated by a newer partyline.
func migrate(ctx context.Context, db *sql.DB) error {
	steps, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	if err := ensureMigrationsTable(ctx, db); err != nil {
		return err
	}
	var applied int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM partyline_migrations`).Scan(&applied); err != nil {
		return err
	}
	if known := steps[len(steps)-1].Version; applied > known {
		return fmt.Errorf("schema version %d is newer than this partyline knows (%d): upgrade partyline", applied, known)
	}
	for _, step := range steps {
		if step.Version > applied {
			if err := apply(ctx, db, step); err != nil {
				return fmt.Errorf("migration %s: %w", step.Name, err)
			}
		}
	}
	return nil
}

// ensureMigrationsTable creates partyline_migrations in an empty database
// and accepts a database that has it.
func ensureMigrationsTable(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if err != nil {
		return err
	}
	tables, err := scanStrings(rows)
	if err != nil {
		return err
	}
	switch {
	case slices.Contains(tables, "partyline_migrations"):
		return nil
	case len(tables) > 0:
		return fmt.Errorf("not a partyline database: it has tables (%s) but no partyline_migrations",
			strings.Join(tables[:min(len(tables), 5)], ", "))
	}
	_, err = db.ExecContext(ctx, `
CREATE TABLE partyline_migrations (
	version       INTEGER PRIMARY KEY,
	name          TEXT    NOT NULL,
	applied_at_ms INTEGER NOT NULL
)`)
	return err
}

// afterSQL holds the steps whose SQL a Go function completes, by version.
var afterSQL = map[int]func(context.Context, *sql.Tx) error{
	4: chunkMessages,
}

// apply runs one step and records it, in one transaction.
func apply(ctx context.Context, db *sql.DB, step migrations.Step) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, step.SQL); err != nil {
		return err
	}
	if after := afterSQL[step.Version]; after != nil {
		if err := after(ctx, tx); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO partyline_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)`,
		step.Version, step.Name, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	return tx.Commit()
}

// chunkMessages completes migration 4: it writes the rows of messages,
// one per message, into message_chunks, up to maxChunk of a room's
// consecutive seqs a row, and drops messages.
func chunkMessages(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT room, seq, id, username, content, data, timestamp_ms FROM messages ORDER BY room, seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var chunk []partyline.Message
	for rows.Next() {
		var m partyline.Message
		var data []byte // NULL stays nil
		if err := rows.Scan(&m.Room, &m.Seq, &m.ID, &m.Username, &m.Content, &data, &m.Timestamp); err != nil {
			return err
		}
		m.Data = data
		if len(chunk) > 0 && (chunk[0].Room != m.Room || len(chunk) == maxChunk || m.Seq != chunk[len(chunk)-1].Seq+1) {
			if err := insertChunk(ctx, tx, chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
		chunk = append(chunk, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(chunk) > 0 {
		if err := insertChunk(ctx, tx, chunk); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE messages`)
	return err
}

// insertChunk inserts chunk, a room's consecutive messages, as one row of
// message_chunks.
func insertChunk(ctx context.Context, tx *sql.Tx, chunk []partyline.Message) error {
	_, err := tx.ExecContext(ctx, insertChunksHead+"(?, ?, ?, ?)", appendChunk(nil, chunk, appendRecords(nil, chunk, false))...)
	return err
}

// scanStrings reads a one-column result and closes rows.
func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// describe rewords the SQLite errors Open can meet into what they mean for
// the user.
func describe(err error) error {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB:
		return errors.New("not a partyline database: not a SQLite file")
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return errLocked
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN:
		return fmt.Errorf("not writable: %w", err)
	}
	return err
}

// The connection parameters of the two pools. The driver sets busy_timeout
// first, so the other pragmas wait for locks rather than fail.
var (
	busyParam  = fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())
	readParams = busyParam + "&_pragma=query_only(1)"
)

// writeCacheParams size the write connection's work for a writer whose
// batches touch a page per room: a page cache of up to 8 MiB keeps the
// index pages of a few thousand busy rooms in memory (at the default 2
// MiB, 1,000 busy rooms read a page back from disk for every few
// messages). A larger cache costs every commit more: when an insert splits
// an index page, SQLite parks a page for a moment under the number of the
// file's lock-byte page (balance_nonroot), and the commit then looks at
// every page in the cache to drop those past the end of the file. With 32
// MiB that look took 7% of the writer's CPU; 8 MiB took the CPU per
// message down 2–3% with 1,000 rooms and 7–14% with 10,000
// (BenchmarkAppend, docs/performance.md item 16). wal_autocheckpoint=0
// turns off the checkpoint SQLite would run inside a commit: the Store's
// checkpointer runs them on a connection of its own (checkpoint.go).
const writeCacheParams = "&_pragma=cache_size(-8192)&_pragma=wal_autocheckpoint(0)"

// writeParams are the writer pool's parameters, with synchronous=FULL or
// NORMAL.
func writeParams(fullSync bool) string {
	sync := "NORMAL"
	if fullSync {
		sync = "FULL"
	}
	return busyParam + "&_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")" + writeCacheParams
}

// dsn returns the URI that opens path with params, escaping the path so any
// file name works.
func dsn(path, params string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params
}
