package sqlite

// Commits returns how many transactions s's writer has committed, for the
// benchmarks' msgs/commit.
func (s *Store) Commits() int64 { return s.commits.Load() }

// MoveAt makes s move its log into message_chunks once it holds rows messages.
// Call it before the first append.
func (s *Store) MoveAt(rows int) { s.moveAt = rows }
