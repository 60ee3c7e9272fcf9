package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema, one file per step, named
// NNNN_description.sql and applied in order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// A migration is one embedded schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded steps in order.
func migrations() ([]migration, error) {
	paths, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []migration
	for _, p := range paths {
		name := strings.TrimSuffix(path.Base(p), ".sql")
		number, _, _ := strings.Cut(name, "_")
		version, err := strconv.Atoi(number)
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its number", p)
		}
		text, err := migrationFiles.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, name: name, sql: string(text)})
	}
	return out, nil
}

var errNewerSchema = errors.New("is newer than this partyline knows")

// migrate brings the schema in the connection's search_path up to date in
// one transaction, recording each step in partyline_migrations. An advisory
// lock keyed on the schema makes nodes that start at once take turns; the
// later ones find the work done.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	steps, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockMigrations); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, createMigrations); err != nil {
			return err
		}
		var applied int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM partyline_migrations`).Scan(&applied); err != nil {
			return err
		}
		if known := steps[len(steps)-1].version; applied > known {
			return fmt.Errorf("schema version %d %w (%d): upgrade partyline", applied, errNewerSchema, known)
		}
		for _, step := range steps {
			if step.version <= applied {
				continue
			}
			if _, err := tx.Exec(ctx, step.sql); err != nil {
				return fmt.Errorf("migration %s: %w", step.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO partyline_migrations (version, name) VALUES ($1, $2)`, step.version, step.name); err != nil {
				return err
			}
		}
		return nil
	})
}

const (
	lockMigrations   = `SELECT pg_advisory_xact_lock(hashtextextended('partyline_migrations:' || current_schema(), 0))`
	createMigrations = `
CREATE TABLE IF NOT EXISTS partyline_migrations (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`
)
