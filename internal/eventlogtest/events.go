package eventlogtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

func testMessageEvents(t *testing.T, b Backend) {
	store := open(t, b, routes)
	messages := []partyline.Message{
		newMessage("lobby"),
		{Room: "dev", ID: "with-data", Username: "bob", Content: "",
			Data: json.RawMessage(`{ "b" : 1,  "a":[1, 2.50, "x"] }`), Timestamp: 1_700_000_000_123},
		{Room: "lobby", ID: "escapes", Username: "carol", Content: "<a&b> \"q\" \\ é 中文 🎉 a\x00b\n\u2028",
			Timestamp: 1_700_000_000_124},
		{Room: "lobby", ID: "json-null", Username: "dave", Content: "x", Data: json.RawMessage(`null`)},
		newMessage("dev"),
	}
	var stored []partyline.Message
	for _, m := range messages {
		stored = append(stored, mustAppend(t, store, m))
	}
	for _, url := range []string{urlAll, urlMessages} {
		events := pending(t, store, url)
		if len(events) != len(stored) {
			t.Fatalf("%d message events pending for %s after %d appends, want %d", len(events), url, len(stored), len(stored))
		}
		for i, p := range events {
			checkMessageEvent(t, fmt.Sprintf("%s: event %d", url, i), p, stored[i])
			if p.Recorded.IsZero() || time.Since(p.Recorded) > time.Minute || time.Until(p.Recorded) > time.Minute {
				t.Errorf("%s: event %d recorded at %v, want about now", url, i, p.Recorded)
			}
		}
	}
	if got := countPending(t, store, urlPresence); got != 0 {
		t.Errorf("CountPending(%s), a route without message events, = %d, want 0", urlPresence, got)
	}
}

func testNoRoutes(t *testing.T, b Backend) {
	store := open(t, b, nil)
	ctx := testContext(t)
	mustAppend(t, store, newMessage("lobby"))
	if _, _, err := store.AppendOnce(ctx, "k", []partyline.Message{newMessage("lobby")}, t0); err != nil {
		t.Fatalf("AppendOnce: %v", err)
	}
	if err := store.RecordEvent(ctx, partyline.NewWebhookEvent(partyline.EventDirectUndelivered, t0)); err != nil {
		t.Fatalf("RecordEvent: %v", err)
	}
	if err := store.PresenceJoined(ctx, "lobby", "alice", t0); err != nil {
		t.Fatalf("PresenceJoined: %v", err)
	}
	for _, url := range []string{urlAll, urlMessages, urlPresence, ""} {
		if got := countPending(t, store, url); got != 0 {
			t.Errorf("with no routes, CountPending(%q) = %d, want 0", url, got)
		}
	}
}

func testRecordEvent(t *testing.T, b Backend) {
	store := open(t, b, routes)
	ctx := testContext(t)
	direct := partyline.NewWebhookEvent(partyline.EventDirectUndelivered, t0)
	direct.From, direct.To, direct.Content, direct.Data = "alice", "bob", "hi", json.RawMessage(`{"x":1}`)
	joined := partyline.NewWebhookEvent(partyline.EventUserJoined, t0.Add(time.Second))
	joined.Room, joined.Username = "lobby", "alice"
	for _, e := range []partyline.WebhookEvent{direct, joined} {
		if err := store.RecordEvent(ctx, e); err != nil {
			t.Fatalf("RecordEvent(%s): %v", e.Type, err)
		}
	}
	want := map[string][]partyline.WebhookEvent{
		urlAll:      {direct, joined},
		urlMessages: {},
		urlPresence: {joined},
	}
	for url, want := range want {
		got := pending(t, store, url)
		if len(got) != len(want) {
			t.Errorf("%d events pending for %s, want %d", len(got), url, len(want))
			continue
		}
		for i := range got {
			body, err := json.Marshal(want[i])
			if err != nil {
				t.Fatal(err)
			}
			if got, want := canonical(t, got[i].Body), canonical(t, body); got != want {
				t.Errorf("%s: event %d = %s, want %s", url, i, got, want)
			}
		}
	}
}

func testFailedAppend(t *testing.T, b Backend) {
	store := open(t, b, routes)
	mustAppend(t, store, newMessage("lobby"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := store.Append(ctx, newMessage("lobby")); err == nil {
		t.Fatal("Append with a canceled context: no error")
	}
	if got := countPending(t, store, urlAll); got != 1 {
		t.Errorf("events pending after one Append and one failed = %d, want 1", got)
	}
	if got := lastSeq(t, store, "lobby"); got != 1 {
		t.Errorf("LastSeq after a failed Append = %d, want 1", got)
	}
}

func testConcurrentAppends(t *testing.T, b Backend) {
	const writers, perWriter, rooms = 16, 20, 3
	all := stores(t, b)
	ctx := testContext(t)
	stored := make(chan partyline.Message, writers*perWriter)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			store := all[w%len(all)]
			for i := range perWriter {
				m, err := store.Append(ctx, newMessage(fmt.Sprintf("busy-%d", (w+i)%rooms)))
				if err != nil {
					t.Errorf("writer %d: Append: %v", w, err)
					return
				}
				stored <- m
			}
		})
	}
	wg.Wait()
	close(stored)
	if t.Failed() {
		t.FailNow()
	}
	byID := map[string]partyline.Message{}
	for m := range stored {
		byID[m.ID] = m
	}
	for _, url := range []string{urlAll, urlMessages} {
		events := pending(t, all[0], url)
		if len(events) != len(byID) {
			t.Errorf("%s: %d events pending after %d appends, want one each", url, len(events), len(byID))
		}
		next := map[string]uint64{} // by room, the seq the next event must carry
		for _, p := range events {
			e := decode(t, p)
			m, ok := byID[e.MessageID]
			if !ok {
				t.Fatalf("%s: event of unknown message %q", url, e.MessageID)
			}
			checkMessageEvent(t, url, p, m)
			if want := next[e.Room] + 1; e.Seq != want {
				t.Fatalf("%s: in Pos order, room %s's event has seq %d after seq %d; want %d",
					url, e.Room, e.Seq, next[e.Room], want)
			}
			next[e.Room] = e.Seq
		}
	}
}

func testPendingAndAck(t *testing.T, b Backend) {
	store := open(t, b, routes)
	ctx := testContext(t)
	var recorded []partyline.WebhookEvent
	for i := range 5 {
		e := partyline.NewWebhookEvent(partyline.EventUserOnline, t0.Add(time.Duration(i)*time.Second))
		e.Username = fmt.Sprintf("user%d", i)
		if err := store.RecordEvent(ctx, e); err != nil {
			t.Fatalf("RecordEvent: %v", err)
		}
		recorded = append(recorded, e)
	}
	first, err := store.PendingEvents(ctx, urlAll, 3)
	if err != nil {
		t.Fatalf("PendingEvents: %v", err)
	}
	if len(first) != 3 {
		t.Fatalf("PendingEvents(limit 3) returned %d events, want 3", len(first))
	}
	for i, p := range first {
		if got := decode(t, p); got.ID != recorded[i].ID {
			t.Errorf("PendingEvents(limit 3): event %d has id %s, want %s (oldest first)", i, got.ID, recorded[i].ID)
		}
	}
	if got := countPending(t, store, urlAll); got != 5 {
		t.Errorf("CountPending before any ack = %d, want 5", got)
	}

	// Acknowledging urlAll's positions for another URL removes nothing.
	ack(t, store, urlPresence, first)
	ack(t, store, urlMessages, first)
	if got := countPending(t, store, urlAll); got != 5 {
		t.Errorf("CountPending(%s) after acking its positions for other URLs = %d, want 5", urlAll, got)
	}
	if got := countPending(t, store, urlPresence); got != 5 {
		t.Errorf("CountPending(%s) after acking %s's positions for it = %d, want 5", urlPresence, urlAll, got)
	}

	ack(t, store, urlAll, first[:2])
	rest := pending(t, store, urlAll)
	if len(rest) != 3 || decode(t, rest[0]).ID != recorded[2].ID {
		t.Errorf("after acking the first 2 of 5: %d pending starting with %v, want 3 starting with %s", len(rest), rest, recorded[2].ID)
	}
	if got := countPending(t, store, urlPresence); got != 5 {
		t.Errorf("CountPending(%s) after acking %s's events = %d, want 5", urlPresence, urlAll, got)
	}
	ack(t, store, urlAll, rest)
	ack(t, store, urlAll, rest) // again: nothing left to remove
	if got := countPending(t, store, urlAll); got != 0 {
		t.Errorf("CountPending after acking all = %d, want 0", got)
	}
	if got, err := store.PendingEvents(ctx, urlAll, 10); err != nil || len(got) != 0 {
		t.Errorf("PendingEvents after acking all = %v, %v; want none", got, err)
	}
}

func testLease(t *testing.T, b Backend) {
	all := stores(t, b)
	a, other := all[0], all[len(all)-1]
	ctx := testContext(t)
	lease := func(store Store, url, owner string, now, until time.Time, want bool) {
		t.Helper()
		got, err := store.LeaseSender(ctx, url, owner, now, until)
		if err != nil {
			t.Fatalf("LeaseSender(%s, %s): %v", url, owner, err)
		}
		if got != want {
			t.Errorf("LeaseSender(%s, %s, now %v, until %v) = %t, want %t",
				url, owner, now.Sub(t0), until.Sub(t0), got, want)
		}
	}
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	lease(a, urlAll, "A", sec(0), sec(10), true)
	lease(other, urlAll, "B", sec(1), sec(11), false)
	lease(other, urlMessages, "B", sec(1), sec(11), true) // per URL
	lease(a, urlAll, "A", sec(5), sec(15), true)          // renewed
	lease(other, urlAll, "B", sec(12), sec(22), false)    // A's renewal holds
	lease(other, urlAll, "B", sec(15), sec(25), true)     // expired at 15
	lease(a, urlAll, "A", sec(16), sec(26), false)
	lease(a, urlMessages, "A", sec(2), sec(12), false)
}
