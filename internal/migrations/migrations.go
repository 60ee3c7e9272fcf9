// Package migrations reads a Store's schema steps: SQL files named
// NNNN_description.sql, one per step, which the Store applies in order and
// records. Applying them is each Store's own business; this package only
// turns the files into ordered steps.
package migrations

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// A Step is one schema migration.
type Step struct {
	// Version is the number the file name starts with; steps apply in
	// ascending Version.
	Version int
	// Name is the file name without ".sql", e.g. "0001_init".
	Name string
	// SQL is the file's text.
	SQL string
}

// Load returns the steps in the *.sql files of dir in fsys, ordered by
// file name, which is their version order. It fails when dir cannot be
// read or holds no .sql file, when a file name does not start with its
// number, and when two files share a version or their numbers do not
// ascend with their names (as "9_b", sorted after "0010_a", would not).
func Load(fsys fs.FS, dir string) ([]Step, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by file name
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var steps []Step
	for _, entry := range entries {
		if entry.IsDir() || path.Ext(entry.Name()) != ".sql" {
			continue
		}
		file := path.Join(dir, entry.Name())
		name := strings.TrimSuffix(entry.Name(), ".sql")
		number, _, _ := strings.Cut(name, "_")
		version, err := strconv.Atoi(number)
		if err != nil {
			return nil, fmt.Errorf("migrations: %s: name must start with its number", file)
		}
		if n := len(steps); n > 0 && version <= steps[n-1].Version {
			return nil, fmt.Errorf("migrations: %s: version %d does not follow %s", file, version, steps[n-1].Name)
		}
		text, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		steps = append(steps, Step{Version: version, Name: name, SQL: string(text)})
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("migrations: no .sql files in %s", dir)
	}
	return steps, nil
}
