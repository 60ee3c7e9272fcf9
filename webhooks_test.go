package partyline_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

const hookURL = "http://backend.example/hooks"

// leaveDelay is the tests' --webhook-leave-delay: short, so leaves are
// decided quickly, and long enough that a reconnect beats it.
const leaveDelay = 300 * time.Millisecond

// startWebhookServer serves a memory store that records every event type
// for one URL.
func startWebhookServer(t *testing.T, types []string) (*testServer, *partyline.MemoryStore) {
	t.Helper()
	store := partyline.NewMemoryStore(0)
	ts := startServer(t, partyline.Options{Store: store, Webhooks: partyline.WebhookOptions{
		Routes:     []partyline.WebhookRoute{{URL: hookURL, Types: types}},
		LeaveDelay: leaveDelay,
	}})
	return ts, store
}

// recordedEvents returns the events pending for hookURL, decoded.
func recordedEvents(t *testing.T, log partyline.EventLog) []map[string]any {
	t.Helper()
	pending, err := log.PendingEvents(context.Background(), hookURL, 1000)
	if err != nil {
		t.Fatal(err)
	}
	events := make([]map[string]any, len(pending))
	for i, p := range pending {
		if err := json.Unmarshal(p.Body, &events[i]); err != nil {
			t.Fatalf("event %s: %v", p.Body, err)
		}
	}
	return events
}

// eventSummary is "type room/user" for each event, to compare sequences.
func eventSummary(events []map[string]any) []string {
	var out []string
	for _, e := range events {
		s := e["type"].(string)
		for _, field := range []string{"room", "username", "to"} {
			if v, ok := e[field].(string); ok {
				s += " " + v
			}
		}
		out = append(out, s)
	}
	return out
}

// waitForEvents waits until the recorded events summarize to want.
func waitForEvents(t *testing.T, log partyline.EventLog, want ...string) {
	t.Helper()
	var got []string
	waitUntil(t, "events "+strings.Join(want, ", "), func() bool {
		got = eventSummary(recordedEvents(t, log))
		return slices.Equal(got, want)
	})
}

func TestMessageEventIsRecordedWithItsMessage(t *testing.T) {
	ts, store := startWebhookServer(t, []string{partyline.EventMessage})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Send(map[string]any{"type": "chat", "room": "lobby", "content": "hello", "data": map[string]int{"n": 1}, "id": 7})
	ack := alice.WaitFor("ack")
	events := recordedEvents(t, store) // recorded by the time of the ack
	if len(events) != 1 {
		t.Fatalf("events after one chat = %v, want one message event", events)
	}
	e := events[0]
	if e["type"] != "message" || e["room"] != "lobby" || e["username"] != "alice" || e["content"] != "hello" ||
		e["seq"] != float64(ack.Num("seq")) || e["message_id"] == "" || e["id"] == "" || e["timestamp"] == nil {
		t.Errorf("message event = %v", e)
	}
	if data, _ := json.Marshal(e["data"]); string(data) != `{"n":1}` {
		t.Errorf("message event data = %s, want {\"n\":1}", data)
	}
}

func TestPresenceEventsWaitForTheLeaveDelay(t *testing.T) {
	ts, store := startWebhookServer(t, nil)
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Expect("joined")
	waitForEvents(t, store, "user_online alice", "room_occupied lobby", "user_joined lobby alice")

	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.Expect("joined")
	waitForEvents(t, store, "user_online alice", "room_occupied lobby", "user_joined lobby alice",
		"user_online bob", "user_joined lobby bob")

	// bob drops and is back within the delay: no event at all.
	bob.Conn.Close()
	bob = ts.dial(t, "/ws?username=bob&room=lobby")
	bob.Expect("joined")
	time.Sleep(2 * leaveDelay)
	if got := eventSummary(recordedEvents(t, store)); len(got) != 5 {
		t.Fatalf("events after a flap = %v, want the five before it", got)
	}

	// alice leaves; bob stays, so the room is not vacated.
	alice.Conn.Close()
	waitForTail(t, store, 5, "user_left lobby alice", "user_offline alice")
	bob.Conn.Close()
	tail := waitForTail(t, store, 7, "user_left lobby bob", "room_vacated lobby", "user_offline bob")
	if slices.Index(tail, "room_vacated lobby") < slices.Index(tail, "user_left lobby bob") {
		t.Errorf("room_vacated before the last member's user_left: %v", tail)
	}
}

// waitForTail waits until the events after the first n are want, in any
// order, and stay so for a few sweeps; it returns them in recorded order.
func waitForTail(t *testing.T, log partyline.EventLog, n int, want ...string) []string {
	t.Helper()
	var got []string
	waitUntil(t, "events "+strings.Join(want, ", "), func() bool {
		got = eventSummary(recordedEvents(t, log))
		return len(got) >= n+len(want)
	})
	time.Sleep(2 * leaveDelay) // later sweeps must not record them again
	got = eventSummary(recordedEvents(t, log))[n:]
	sorted, wanted := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(sorted, wanted) {
		t.Fatalf("events after the first %d = %v, want %v", n, got, want)
	}
	return got
}

func TestLeavesAreDecidedOnce(t *testing.T) {
	ts, store := startWebhookServer(t, nil)
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Expect("joined")
	waitForEvents(t, store, "user_online alice", "room_occupied lobby", "user_joined lobby alice")
	alice.Conn.Close()
	waitForTail(t, store, 3, "user_left lobby alice", "room_vacated lobby", "user_offline alice")
}

func TestUndeliveredDirectIsRecorded(t *testing.T) {
	ts, store := startWebhookServer(t, []string{partyline.EventDirectUndelivered})
	alice := ts.dial(t, "/ws?username=alice")
	alice.Send(map[string]any{"type": "direct", "to": "carol", "content": "are you there?", "id": 1})
	if e := alice.WaitFor("error"); e.Str("code") != "user_offline" {
		t.Fatalf("direct to an offline user = %v, want user_offline", e)
	}
	err := ts.SendDirect(context.Background(), partyline.DirectMessage{To: "dave", Content: "deploy done"})
	if partyline.ErrorCode(err) != partyline.CodeUserOffline {
		t.Fatalf("SendDirect to an offline user = %v, want user_offline", err)
	}
	events := recordedEvents(t, store)
	if got := eventSummary(events); !slices.Equal(got, []string{"direct_undelivered carol", "direct_undelivered dave"}) {
		t.Fatalf("events = %v", got)
	}
	if events[0]["from"] != "alice" || events[0]["content"] != "are you there?" || events[1]["from"] != "system" {
		t.Errorf("direct_undelivered events = %v", events)
	}
}

// storeOnly hides every method of a Store but the interface's own.
type storeOnly struct{ partyline.Store }

func TestWebhooksNeedAnEventLog(t *testing.T) {
	_, err := partyline.New(partyline.Options{
		Store:    storeOnly{partyline.NewMemoryStore(0)},
		Webhooks: partyline.WebhookOptions{Routes: []partyline.WebhookRoute{{URL: hookURL}}},
	})
	if err == nil || !strings.Contains(err.Error(), "webhooks") {
		t.Fatalf("New with webhooks over a store without an event log = %v, want an error naming webhooks", err)
	}
}

func TestPublishRefusesDataThatIsNotJSON(t *testing.T) {
	srv, err := partyline.New(partyline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	_, err = srv.Publish(context.Background(), "lobby", partyline.Publication{Content: "x", Data: json.RawMessage(`{"broken"`)})
	if partyline.ErrorCode(err) != partyline.CodeBadRequest {
		t.Fatalf("Publish with data that is not JSON = %v, want bad_request", err)
	}
}
