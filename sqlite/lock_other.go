//go:build !unix

package sqlite

import "os"

// lockFile creates path if needed. Without flock it cannot refuse a second
// process; SQLite's own locking still keeps that process's seqs correct,
// since every batch reads and bumps a room's last seq inside its write
// transaction.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}
