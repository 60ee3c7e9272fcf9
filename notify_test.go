package partyline

import (
	"context"
	"testing"
	"time"
)

// TestSweepKeepsAUserThePresenceHasBack: a user leaves on one node and
// comes back on another, and the second node records the return before
// the first records the leave (each records what the Presence told it, in
// its own time). The Presence has the user, so the leave is called off and
// nothing is recorded.
func TestSweepKeepsAUserThePresenceHasBack(t *testing.T) {
	store, presence := NewMemoryStore(0), NewMemoryPresence()
	srv, err := New(Options{Store: store, Presence: presence, Webhooks: WebhookOptions{
		Routes: []WebhookRoute{{URL: "http://backend/hooks"}}, LeaveDelay: 50 * time.Millisecond,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ctx := context.Background()
	presence.Add(ctx, "lobby", "bob")
	srv.hub.events.joined("lobby", "bob")
	srv.hub.events.joined("lobby", "bob") // the return, recorded first: a no-op
	srv.hub.events.left("lobby", "bob")   // the leave it followed
	// A sweep past the delay settles the leave; on a busy machine the
	// first may come late, so wait for it rather than for a fixed time.
	eventually(t, "bob's leave to be settled", func() bool {
		due, err := store.DueLeaves(ctx, time.Now().Add(time.Hour))
		return err == nil && len(due) == 0
	})
	pending, err := store.PendingEvents(ctx, "http://backend/hooks", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range pending {
		t.Logf("event %s", e.Body)
	}
	if len(pending) != 2 { // room_occupied and user_joined
		t.Fatalf("%d events, want the 2 of bob's arrival and no user_left", len(pending))
	}

	presence.Remove(ctx, "lobby", "bob") // now bob is gone for good
	srv.hub.events.left("lobby", "bob")
	deadline := time.Now().Add(5 * time.Second)
	for len(pending) < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pending, _ = store.PendingEvents(ctx, "http://backend/hooks", 10)
	}
	if len(pending) != 4 { // user_left and room_vacated
		t.Fatalf("%d events after bob left for good, want 4", len(pending))
	}
}
