package sqlite_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/eventlogtest"
	"github.com/partyline/partyline/internal/storetest"
	"github.com/partyline/partyline/sqlite"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewStorage: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "partyline.db")
			return func(t *testing.T, keep int) partyline.Store { return open(t, path, keep) }
		},
		Durable: true,
	})
}

// TestConformanceMovingOften runs the conformance tests with a Store that
// moves its log into messages every 3 messages, so History reads pages
// that straddle both, and retention trims across moves.
func TestConformanceMovingOften(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewStorage: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "partyline.db")
			return func(t *testing.T, keep int) partyline.Store {
				store := open(t, path, keep)
				store.MoveAt(3)
				return store
			}
		},
		Durable: true,
	})
}

func TestEventLogConformance(t *testing.T) {
	eventlogtest.Run(t, eventlogtest.Backend{
		NewStorage: func(t *testing.T) eventlogtest.Opener {
			path := filepath.Join(t.TempDir(), "partyline.db")
			return func(t *testing.T) eventlogtest.Store { return open(t, path, 0) }
		},
		Durable: true,
	})
}

// open opens path keeping keep messages per room, failing t on error.
func open(t *testing.T, path string, keep int) *sqlite.Store {
	t.Helper()
	store, err := sqlite.Open(t.Context(), path, sqlite.Options{Keep: keep})
	if err != nil {
		t.Fatalf("Open(%q, %d): %v", path, keep, err)
	}
	return store
}

func TestMessageAndEventCommitTogether(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	store := open(t, path, 0)
	defer store.Close()
	store.SetWebhookRoutes([]partyline.WebhookRoute{{URL: "https://example.com/hooks"}})
	if _, err := store.Append(t.Context(), partyline.Message{Room: "r", ID: "a"}); err != nil {
		t.Fatal(err)
	}
	rawExec(t, path, `DROP TABLE webhook_outbox`)
	if _, err := store.Append(t.Context(), partyline.Message{Room: "r", ID: "b"}); !errors.Is(err, partyline.ErrUnavailable) {
		t.Errorf("Append whose event cannot be recorded: error %v, want one wrapping ErrUnavailable", err)
	}
	if got, err := store.LastSeq(t.Context(), "r"); err != nil || got != 1 {
		t.Errorf("LastSeq after an Append whose event failed = %d, %v; want 1, nil (rolled back together)", got, err)
	}
}

func TestFailedBatchDoesNotAdvanceSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fail.db")
	store := open(t, path, 0)
	defer store.Close()
	store.SetWebhookRoutes([]partyline.WebhookRoute{{URL: "https://example.com/hooks"}})
	if msg, err := store.Append(t.Context(), partyline.Message{Room: "r"}); err != nil || msg.Seq != 1 {
		t.Fatalf("first Append = seq %d, %v; want 1", msg.Seq, err)
	}
	rawExec(t, path, `DROP TABLE webhook_outbox`)
	for range 3 {
		if _, err := store.Append(t.Context(), partyline.Message{Room: "r"}); !errors.Is(err, partyline.ErrUnavailable) {
			t.Fatalf("Append whose event cannot be recorded: error %v, want one wrapping ErrUnavailable", err)
		}
	}
	store.SetWebhookRoutes(nil)
	if msg, err := store.Append(t.Context(), partyline.Message{Room: "r"}); err != nil || msg.Seq != 2 {
		t.Errorf("Append after three failed ones = seq %d, %v; want 2, nil", msg.Seq, err)
	}
}
