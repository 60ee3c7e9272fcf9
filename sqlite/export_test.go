package sqlite

// Commits returns how many transactions s's writer has committed, for the
// benchmarks' msgs/commit.
func (s *Store) Commits() int64 { return s.commits.Load() }
