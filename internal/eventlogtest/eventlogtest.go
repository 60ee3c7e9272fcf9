// Package eventlogtest is the conformance suite of partyline.EventLog and
// partyline.IdempotentStore: the memory store, SQLite and PostgreSQL run
// the same tests against real storage.
//
// Beyond the doc comments, the suite pins down that a message event is
// exactly partyline.MessageEvent of the message as committed, that a
// room's events reach each URL in the order they happened, that a
// presence change is decided once however many goroutines or Stores race
// on it, and that a leave is due at its due time, not after it.
package eventlogtest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/storetest"
)

// Store is what the suite tests: a Store that keeps webhook events and
// idempotency keys.
type Store interface {
	partyline.Store
	partyline.EventLog
	partyline.IdempotentStore
}

// Backend describes the implementation under test.
type Backend struct {
	// NewStorage creates fresh, empty storage private to t and returns the
	// Opener for it.
	NewStorage func(t *testing.T) Opener
	// Durable reports that a Store opened after an earlier one on the same
	// storage was closed sees the events, presence and keys it left.
	Durable bool
	// Shared reports that several Stores may be open on one storage at once,
	// as the nodes of a cluster are: the concurrency tests then spread their
	// goroutines over two Stores.
	Shared bool
}

// Opener opens a Store on one storage. It fails t when it cannot. The
// suite sets the Store's routes and closes every Store it opens.
type Opener func(t *testing.T) Store

// Run runs the conformance suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("MessageEvents", func(t *testing.T) { testMessageEvents(t, b) })
	t.Run("NoRoutes", func(t *testing.T) { testNoRoutes(t, b) })
	t.Run("RecordEvent", func(t *testing.T) { testRecordEvent(t, b) })
	t.Run("FailedAppendRecordsNothing", func(t *testing.T) { testFailedAppend(t, b) })
	t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, b) })
	t.Run("PendingAndAck", func(t *testing.T) { testPendingAndAck(t, b) })
	t.Run("PresenceJoined", func(t *testing.T) { testPresenceJoined(t, b) })
	t.Run("PresenceLeft", func(t *testing.T) { testPresenceLeft(t, b) })
	t.Run("PresenceFlap", func(t *testing.T) { testPresenceFlap(t, b) })
	t.Run("PresenceServer", func(t *testing.T) { testPresenceServer(t, b) })
	t.Run("PresentUsers", func(t *testing.T) { testPresentUsers(t, b) })
	t.Run("ConcurrentJoins", func(t *testing.T) { testConcurrentJoins(t, b) })
	t.Run("ConcurrentSweeps", func(t *testing.T) { testConcurrentSweeps(t, b) })
	t.Run("Lease", func(t *testing.T) { testLease(t, b) })
	t.Run("AppendOnce", func(t *testing.T) { testAppendOnce(t, b) })
	t.Run("AppendOnceExpires", func(t *testing.T) { testAppendOnceExpires(t, b) })
	t.Run("Recall", func(t *testing.T) { testRecall(t, b) })
	t.Run("AppendOnceCanceled", func(t *testing.T) { testAppendOnceCanceled(t, b) })
	t.Run("ConcurrentAppendOnce", func(t *testing.T) { testConcurrentAppendOnce(t, b) })
	if b.Durable {
		t.Run("Reopen", func(t *testing.T) { testReopen(t, b) })
	}
}

// The URLs of routes: one wants everything, one messages only, one
// presence only.
const (
	urlAll      = "https://all.example/hooks"
	urlMessages = "https://messages.example/hooks"
	urlPresence = "https://presence.example/hooks"
)

var (
	presenceTypes = []string{
		partyline.EventUserJoined, partyline.EventUserLeft, partyline.EventRoomOccupied,
		partyline.EventRoomVacated, partyline.EventUserOnline, partyline.EventUserOffline,
	}
	routes = []partyline.WebhookRoute{
		{URL: urlAll},
		{URL: urlMessages, Types: []string{partyline.EventMessage}},
		{URL: urlPresence, Types: presenceTypes},
	}
	// t0 is the presence, lease and key clock's start.
	t0 = time.UnixMilli(1_700_000_000_000)
)

// open opens a Store on a fresh storage of b with routes set.
func open(t *testing.T, b Backend, routes []partyline.WebhookRoute) Store {
	t.Helper()
	return openOn(t, b.NewStorage(t), routes)
}

// openOn opens a Store with opener, sets its routes and closes it when t
// ends.
func openOn(t *testing.T, opener Opener, routes []partyline.WebhookRoute) Store {
	t.Helper()
	store := opener(t)
	t.Cleanup(func() { store.Close() })
	store.SetWebhookRoutes(routes)
	return store
}

// stores returns one Store on a fresh storage of b, and a second on the
// same storage when b is Shared.
func stores(t *testing.T, b Backend) []Store {
	t.Helper()
	opener := b.NewStorage(t)
	out := []Store{openOn(t, opener, routes)}
	if b.Shared {
		out = append(out, openOn(t, opener, routes))
	}
	return out
}

// testContext returns a context that ends with t, bounded so a hanging
// Store fails the test instead of stalling it.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var messageCounter atomic.Int64

// newMessage returns a message for room with a unique id and content.
func newMessage(room string) partyline.Message {
	n := messageCounter.Add(1)
	return partyline.Message{
		Room:      room,
		ID:        fmt.Sprintf("m%06d", n),
		Username:  "alice",
		Content:   fmt.Sprintf("message %d", n),
		Timestamp: 1_700_000_000_000 + n,
	}
}

// mustAppend appends msg and fails t on error.
func mustAppend(t *testing.T, store Store, msg partyline.Message) partyline.Message {
	t.Helper()
	got, err := store.Append(testContext(t), msg)
	if err != nil {
		t.Fatalf("Append to %q: %v", msg.Room, err)
	}
	return got
}

// pending returns every event pending for url, failing t on error or when
// they are not in ascending Pos.
func pending(t *testing.T, store Store, url string) []partyline.PendingEvent {
	t.Helper()
	events, err := store.PendingEvents(testContext(t), url, 100_000)
	if err != nil {
		t.Fatalf("PendingEvents(%s): %v", url, err)
	}
	for i := 1; i < len(events); i++ {
		if events[i].Pos <= events[i-1].Pos {
			t.Fatalf("PendingEvents(%s): Pos %d follows %d, want ascending", url, events[i].Pos, events[i-1].Pos)
		}
	}
	return events
}

// countPending calls CountPending and fails t on error.
func countPending(t *testing.T, store Store, url string) int {
	t.Helper()
	n, err := store.CountPending(testContext(t), url)
	if err != nil {
		t.Fatalf("CountPending(%s): %v", url, err)
	}
	return n
}

// ack acknowledges events for url, failing t on error.
func ack(t *testing.T, store Store, url string, events []partyline.PendingEvent) {
	t.Helper()
	pos := make([]int64, len(events))
	for i, e := range events {
		pos[i] = e.Pos
	}
	if err := store.AckEvents(testContext(t), url, pos); err != nil {
		t.Fatalf("AckEvents(%s, %v): %v", url, pos, err)
	}
}

// event is the decoded JSON of an event.
type event struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Timestamp int64  `json:"timestamp"`
	Room      string `json:"room"`
	Username  string `json:"username"`
	Seq       uint64 `json:"seq"`
	MessageID string `json:"message_id"`
}

// String describes e without its id and timestamp: "user_joined lobby
// alice".
func (e event) String() string {
	parts := []string{e.Type}
	if e.Room != "" {
		parts = append(parts, e.Room)
	}
	if e.Username != "" {
		parts = append(parts, e.Username)
	}
	if e.Type == partyline.EventMessage {
		parts = append(parts, fmt.Sprint(e.Seq))
	}
	return strings.Join(parts, " ")
}

// decode decodes a pending event's body, failing t when it is not JSON.
func decode(t *testing.T, p partyline.PendingEvent) event {
	t.Helper()
	var e event
	if err := json.Unmarshal(p.Body, &e); err != nil {
		t.Fatalf("event at Pos %d is not JSON: %v: %s", p.Pos, err, p.Body)
	}
	return e
}

// take returns the events pending for url, decoded, and acknowledges them.
func take(t *testing.T, store Store, url string) []event {
	t.Helper()
	events := pending(t, store, url)
	ack(t, store, url, events)
	out := make([]event, len(events))
	for i, p := range events {
		out[i] = decode(t, p)
	}
	return out
}

// describe describes events, one string each.
func describe(events []event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.String()
	}
	return out
}

// expectEvents fails t unless the events pending for url are described by
// want, in order; it acknowledges them.
func expectEvents(t *testing.T, store Store, url, what string, want ...string) []event {
	t.Helper()
	events := take(t, store, url)
	if got := describe(events); !slices.Equal(got, want) {
		t.Errorf("%s: events for %s = %q, want %q", what, url, got, want)
	}
	return events
}

// canonical returns raw's JSON re-encoded with sorted keys and exact
// numbers, for comparing JSON by meaning.
func canonical(t *testing.T, raw []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// checkMessageEvent fails t unless p is the message event of m.
func checkMessageEvent(t *testing.T, what string, p partyline.PendingEvent, m partyline.Message) {
	t.Helper()
	want, err := json.Marshal(partyline.MessageEvent(m))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := canonical(t, p.Body), canonical(t, want); got != want {
		t.Errorf("%s: event\n%s\nwant\n%s", what, got, want)
	}
}

// checkMessages fails t unless got equals want message by message.
func checkMessages(t *testing.T, what string, got, want []partyline.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := storetest.DiffMessage(got[i], want[i]); d != "" {
			t.Errorf("%s: message %d: %s", what, i, d)
		}
	}
}

// lastSeq calls LastSeq and fails t on error.
func lastSeq(t *testing.T, store Store, room string) uint64 {
	t.Helper()
	got, err := store.LastSeq(testContext(t), room)
	if err != nil {
		t.Fatalf("LastSeq(%q): %v", room, err)
	}
	return got
}

// presentUsers calls PresentUsers and returns its answer sorted.
func presentUsers(t *testing.T, store Store) []partyline.RoomUser {
	t.Helper()
	got, err := store.PresentUsers(testContext(t))
	if err != nil {
		t.Fatalf("PresentUsers: %v", err)
	}
	slices.SortFunc(got, func(a, b partyline.RoomUser) int {
		return cmp.Or(cmp.Compare(a.Room, b.Room), cmp.Compare(a.User, b.User))
	})
	return got
}
