package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/partyline/partyline/internal/migrations"
)

// migrationFiles holds the schema, one file per step, named
// NNNN_description.sql and applied in order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

var errNewerSchema = errors.New("is newer than this partyline knows")

// migrate brings the schema in the connection's search_path up to date in
// one transaction, recording each step in partyline_migrations. An advisory
// lock keyed on the schema makes nodes that start at once take turns; the
// later ones find the work done.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	steps, err := migrations.Load(migrationFiles, "migrations")
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
		if known := steps[len(steps)-1].Version; applied > known {
			return fmt.Errorf("schema version %d %w (%d): upgrade partyline", applied, errNewerSchema, known)
		}
		for _, step := range steps {
			if step.Version <= applied {
				continue
			}
			if _, err := tx.Exec(ctx, step.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", step.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO partyline_migrations (version, name) VALUES ($1, $2)`, step.Version, step.Name); err != nil {
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
