// Package storetest is the conformance suite every partyline.Store passes:
// the memory store, SQLite and PostgreSQL run the same tests against real
// storage.
//
// Beyond the partyline.Store doc comment, the suite pins down retention: a
// Store keeping the newest keep messages per room shows History exactly the
// seqs in (LastSeq-keep, LastSeq] of the room: no fewer, and never an older
// one, however lazily it deletes the rows behind them.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// Backend describes the Store implementation under test.
type Backend struct {
	// NewStorage creates fresh, empty storage private to t and returns the
	// Opener for it.
	NewStorage func(t *testing.T) Opener
	// Durable reports that a Store opened after an earlier one on the same
	// storage was closed sees all the earlier one committed and continues
	// its seqs.
	Durable bool
	// Shared reports that several Stores may be open on one storage at once,
	// as the nodes of a cluster are, and share its seqs.
	Shared bool
}

// Opener opens a Store on one storage, keeping the newest keep messages per
// room (0 keeps all). It fails t when it cannot. The suite closes every
// Store it opens.
type Opener func(t *testing.T, keep int) partyline.Store

// Run runs the conformance suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, b) })
	t.Run("AppendAssignsSeq", func(t *testing.T) { testAppendAssignsSeq(t, b) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, b) })
	t.Run("HistoryPages", func(t *testing.T) { testHistoryPages(t, b) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, b) })
	t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, b) })
	t.Run("ConcurrentRetention", func(t *testing.T) { testConcurrentRetention(t, b) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceledContext(t, b) })
	t.Run("Ping", func(t *testing.T) { testPing(t, b) })
	if b.Durable {
		t.Run("Reopen", func(t *testing.T) { testReopen(t, b) })
		t.Run("ReopenRetention", func(t *testing.T) { testReopenRetention(t, b) })
	}
	if b.Shared {
		t.Run("SharedStorage", func(t *testing.T) { testSharedStorage(t, b) })
	}
}

// open opens a Store on a fresh storage of b.
func open(t *testing.T, b Backend, keep int) partyline.Store {
	t.Helper()
	return openOn(t, b.NewStorage(t), keep)
}

// openOn opens a Store with opener and closes it when t ends.
func openOn(t *testing.T, opener Opener, keep int) partyline.Store {
	t.Helper()
	store := opener(t, keep)
	t.Cleanup(func() { store.Close() })
	return store
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

// appendN appends n new messages to room one after another and returns
// them as the store returned them.
func appendN(t *testing.T, store partyline.Store, room string, n int) []partyline.Message {
	t.Helper()
	ctx := testContext(t)
	out := make([]partyline.Message, 0, n)
	for range n {
		got, err := store.Append(ctx, newMessage(room))
		if err != nil {
			t.Fatalf("Append(%q): %v", room, err)
		}
		out = append(out, got)
	}
	return out
}

// history calls History and fails t on error or on a nil slice.
func history(t *testing.T, store partyline.Store, room string, q partyline.HistoryQuery) []partyline.Message {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("History(%q, %+v) panicked: %v", room, q, r)
		}
	}()
	got, err := store.History(testContext(t), room, q)
	if err != nil {
		t.Fatalf("History(%q, %+v): %v", room, q, err)
	}
	if got == nil {
		t.Fatalf("History(%q, %+v) = nil, want a non-nil slice", room, q)
	}
	return got
}

// lastSeq calls LastSeq and fails t on error.
func lastSeq(t *testing.T, store partyline.Store, room string) uint64 {
	t.Helper()
	got, err := store.LastSeq(testContext(t), room)
	if err != nil {
		t.Fatalf("LastSeq(%q): %v", room, err)
	}
	return got
}

// seqs returns the seqs of messages in order.
func seqs(messages []partyline.Message) []uint64 {
	out := make([]uint64, len(messages))
	for i, m := range messages {
		out[i] = m.Seq
	}
	return out
}

// seqRange returns from, from+1, …, to; empty when to < from.
func seqRange(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to && s >= from; s++ {
		out = append(out, s)
	}
	return out
}

// equalSeqs reports whether a and b hold the same seqs in the same order.
func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DiffMessage describes how got differs from want, field by field, or
// returns "" when they are equal.
func DiffMessage(got, want partyline.Message) string {
	switch {
	case got.Room != want.Room:
		return fmt.Sprintf("Room = %q, want %q", got.Room, want.Room)
	case got.Seq != want.Seq:
		return fmt.Sprintf("Seq = %d, want %d", got.Seq, want.Seq)
	case got.ID != want.ID:
		return fmt.Sprintf("ID = %q, want %q", got.ID, want.ID)
	case got.Username != want.Username:
		return fmt.Sprintf("Username = %q, want %q", got.Username, want.Username)
	case got.Content != want.Content:
		return fmt.Sprintf("Content = %q, want %q", got.Content, want.Content)
	case (got.Data == nil) != (want.Data == nil) || !bytes.Equal(got.Data, want.Data):
		return fmt.Sprintf("Data = %q (nil %t), want %q (nil %t)", got.Data, got.Data == nil, want.Data, want.Data == nil)
	case got.Timestamp != want.Timestamp:
		return fmt.Sprintf("Timestamp = %d, want %d", got.Timestamp, want.Timestamp)
	}
	return ""
}

// checkMessages fails t unless got equals want message by message.
func checkMessages(t *testing.T, what string, got, want []partyline.Message) {
	t.Helper()
	if !equalSeqs(seqs(got), seqs(want)) {
		t.Fatalf("%s: seqs %v, want %v", what, seqs(got), seqs(want))
	}
	for i := range got {
		if d := DiffMessage(got[i], want[i]); d != "" {
			t.Errorf("%s: message %d: %s", what, i, d)
		}
	}
}

func testEmpty(t *testing.T, b Backend) {
	store := open(t, b, 0)
	if got := lastSeq(t, store, "nobody-here"); got != 0 {
		t.Errorf("LastSeq(unknown room) = %d, want 0", got)
	}
	for _, q := range []partyline.HistoryQuery{
		{Limit: 10},
		{Before: 5, Limit: 10},
		{Forward: true, After: 5, Limit: 10},
		{Forward: true, Limit: 10},
		{Limit: 0},
	} {
		if got := history(t, store, "nobody-here", q); len(got) != 0 {
			t.Errorf("History(unknown room, %+v) = seqs %v, want []", q, seqs(got))
		}
	}
}

func testAppendAssignsSeq(t *testing.T, b Backend) {
	store := open(t, b, 0)
	ctx := testContext(t)
	want := map[string]uint64{}
	for i := range 10 {
		room := []string{"lobby", "dev", "lobby:2"}[i%3]
		msg := newMessage(room)
		got, err := store.Append(ctx, msg)
		if err != nil {
			t.Fatalf("Append #%d: %v", i, err)
		}
		want[room]++
		msg.Seq = want[room]
		if d := DiffMessage(got, msg); d != "" {
			t.Errorf("Append #%d to %q returned %s", i, room, d)
		}
	}
	for room, last := range want {
		if got := lastSeq(t, store, room); got != last {
			t.Errorf("LastSeq(%q) = %d, want %d", room, got, last)
		}
	}
}

func testCanceledContext(t *testing.T, b Backend) {
	store := open(t, b, 0)
	appendN(t, store, "lobby", 2)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := store.Append(ctx, newMessage("lobby")); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a canceled context: error %v, want one wrapping context.Canceled", err)
	}
	if _, err := store.History(ctx, "lobby", partyline.HistoryQuery{Limit: 10}); err == nil {
		t.Errorf("History with a canceled context: no error")
	}
	if got := lastSeq(t, store, "lobby"); got != 2 {
		t.Errorf("LastSeq after a canceled Append = %d, want 2", got)
	}
}

func testPing(t *testing.T, b Backend) {
	store := open(t, b, 0)
	pinger, ok := store.(partyline.Pinger)
	if !ok {
		t.Skip("store does not implement partyline.Pinger")
	}
	if err := pinger.Ping(testContext(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
