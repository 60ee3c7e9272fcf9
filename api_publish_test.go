package partyline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/partyline/partyline"
)

// failingStore fails every Append after the first ok.
type failingStore struct {
	partyline.Store
	ok       int32
	appended atomic.Int32
}

func (s *failingStore) Append(ctx context.Context, msg partyline.Message) (partyline.Message, error) {
	if s.appended.Add(1) > s.ok {
		return partyline.Message{}, errors.New("disk full")
	}
	return s.Store.Append(ctx, msg)
}

func TestPublishManyStopsAtTheFirstFailure(t *testing.T) {
	store := &failingStore{Store: partyline.NewMemoryStore(10), ok: 2}
	ts := startServer(t, partyline.Options{Store: store})
	alice := ts.dial(t, "/ws?username=alice&room=b")
	alice.WaitFor("joined")

	stored, err := ts.PublishMany(t.Context(), []string{"a", "b", "c", "d"}, partyline.Publication{Content: "hi"})
	if code := partyline.ErrorCode(err); code != partyline.CodeUnavailable {
		t.Fatalf("PublishMany with the store failing at the third room: error %v, want code unavailable", err)
	}
	if len(stored) != 2 || stored[0].Room != "a" || stored[1].Room != "b" || stored[1].Seq != 1 {
		t.Fatalf("PublishMany returned %+v, want the messages of a and b, committed before the failure", stored)
	}
	if f := alice.WaitFor("chat"); f.Str("id") != stored[1].ID {
		t.Errorf("alice in b got %v, want the committed message %s", f, stored[1].ID)
	}
	if n := store.appended.Load(); n != 3 {
		t.Errorf("%d appends, want 3: none after the failure", n)
	}
}
