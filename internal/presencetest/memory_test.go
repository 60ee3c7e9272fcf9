package presencetest_test

import (
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/presencetest"
)

// TestMemoryPresence runs the suite on the single-node presence: every
// MemoryPresence is storage of its own, so the multi-node cases are skipped
// (Cluster false).
func TestMemoryPresence(t *testing.T) {
	presencetest.Run(t, presencetest.Backend{
		NewStorage: func(t *testing.T) presencetest.NewNode {
			return func(t *testing.T) partyline.Presence { return partyline.NewMemoryPresence() }
		},
	})
}
