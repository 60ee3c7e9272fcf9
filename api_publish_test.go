package partyline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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

func TestPublishOnceRemembersTheKeyForTheWindow(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, partyline.Options{Now: clock.Now})
	pub := partyline.Publication{Content: "hi"}
	first, replayed, err := ts.PublishOnce(t.Context(), "k", []string{"a"}, pub)
	if err != nil || replayed || len(first) != 1 {
		t.Fatalf("PublishOnce = %+v, %v, %v; want one new message", first, replayed, err)
	}
	if m := first[0]; m.Seq != 1 || m.Room != "a" || m.Username != "system" || m.ID == "" || m.Timestamp != clock.Now().UnixMilli() {
		t.Errorf("PublishOnce stored %+v, want seq 1 in a from system, an id and the clock's time", m)
	}
	clock.Advance(partyline.IdempotencyWindow - time.Second)
	again, replayed, err := ts.PublishOnce(t.Context(), "k", []string{"a"}, pub)
	if err != nil || !replayed || len(again) != 1 || again[0].ID != first[0].ID || again[0].Timestamp != first[0].Timestamp {
		t.Errorf("PublishOnce within the window = %+v, %v, %v; want the first message replayed", again, replayed, err)
	}
	clock.Advance(2 * time.Second)
	later, replayed, err := ts.PublishOnce(t.Context(), "k", []string{"a"}, pub)
	if err != nil || replayed || len(later) != 1 || later[0].Seq != 2 {
		t.Errorf("PublishOnce after the window = %+v, %v, %v; want a new message, seq 2", later, replayed, err)
	}
}
