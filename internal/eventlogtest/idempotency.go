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

// appendOnce calls AppendOnce and fails t on error or when replayed is not
// wantReplayed.
func appendOnce(t *testing.T, store Store, key string, messages []partyline.Message, now time.Time, wantReplayed bool) []partyline.Message {
	t.Helper()
	stored, replayed, err := store.AppendOnce(testContext(t), key, messages, now)
	if err != nil {
		t.Fatalf("AppendOnce(%q): %v", key, err)
	}
	if replayed != wantReplayed {
		t.Errorf("AppendOnce(%q) at %v: replayed %t, want %t", key, now.Sub(t0), replayed, wantReplayed)
	}
	return stored
}

// batchFor returns one new message for each room, the first with data.
func batchFor(rooms ...string) []partyline.Message {
	out := make([]partyline.Message, len(rooms))
	for i, room := range rooms {
		out[i] = newMessage(room)
	}
	out[0].Data = json.RawMessage(`{ "spaced" : [1, 2.50] }`)
	out[0].Content = "a\x00b \xff"
	return out
}

func testAppendOnce(t *testing.T, b Backend) {
	store := open(t, b, routes)
	mustAppend(t, store, newMessage("a"))
	mustAppend(t, store, newMessage("a"))
	take(t, store, urlAll)
	take(t, store, urlMessages)

	messages := batchFor("a", "b", "a")
	stored := appendOnce(t, store, "key-1", messages, t0, false)
	want := append([]partyline.Message{}, messages...)
	want[0].Seq, want[1].Seq, want[2].Seq = 3, 1, 4
	checkMessages(t, "AppendOnce with a fresh key", stored, want)
	for _, url := range []string{urlAll, urlMessages} {
		events := pending(t, store, url)
		if len(events) != len(want) {
			t.Fatalf("%s: %d events after AppendOnce of %d messages, want %d", url, len(events), len(want), len(want))
		}
		for _, p := range events {
			e := decode(t, p)
			for _, m := range want {
				if m.ID == e.MessageID {
					checkMessageEvent(t, url, p, m)
				}
			}
		}
	}
	history, err := store.History(testContext(t), "a", partyline.HistoryQuery{Limit: 10})
	if err != nil || len(history) != 4 {
		t.Fatalf("History(a) after AppendOnce = %d messages, %v; want 4", len(history), err)
	}
	checkMessages(t, "History(a) after AppendOnce", history[2:], []partyline.Message{want[0], want[2]})

	for _, later := range []time.Duration{0, time.Hour, partyline.IdempotencyWindow - time.Second} {
		again := appendOnce(t, store, "key-1", batchFor("a", "c"), t0.Add(later), true)
		checkMessages(t, fmt.Sprintf("AppendOnce repeated %v later", later), again, want)
	}
	if got := lastSeq(t, store, "a"); got != 4 {
		t.Errorf("LastSeq(a) after repeats = %d, want 4", got)
	}
	if got := lastSeq(t, store, "c"); got != 0 {
		t.Errorf("LastSeq(c), a room only repeats named, = %d, want 0", got)
	}
	for _, url := range []string{urlAll, urlMessages} {
		if got := countPending(t, store, url); got != len(want) {
			t.Errorf("%s: %d events pending after repeats, want %d", url, got, len(want))
		}
	}

	other := appendOnce(t, store, "key-2", []partyline.Message{newMessage("a")}, t0.Add(time.Minute), false)
	if len(other) != 1 || other[0].Seq != 5 {
		t.Errorf("AppendOnce with another key = %+v, want one message with seq 5", other)
	}
}

func testAppendOnceExpires(t *testing.T, b Backend) {
	store := open(t, b, routes)
	first := appendOnce(t, store, "key", batchFor("a"), t0, false)
	later := t0.Add(partyline.IdempotencyWindow + time.Second)
	second := appendOnce(t, store, "key", batchFor("a"), later, false)
	if len(second) != 1 || second[0].Seq != 2 || second[0].ID == first[0].ID {
		t.Fatalf("AppendOnce with a key older than the window = %+v, want a new message with seq 2", second)
	}
	again := appendOnce(t, store, "key", batchFor("a"), later.Add(time.Hour), true)
	checkMessages(t, "AppendOnce repeated after the key was committed anew", again, second)
	if got := countPending(t, store, urlMessages); got != 2 {
		t.Errorf("events pending after two commits with one key = %d, want 2", got)
	}
}

// testRecall: a key is recalled, on every store sharing the storage, for
// the window after its commit, with what it committed; no longer after.
func testRecall(t *testing.T, b Backend) {
	all := stores(t, b)
	for _, store := range all {
		if stored, ok, err := store.Recall(testContext(t), "key", t0); err != nil || ok || stored != nil {
			t.Fatalf("Recall of an unknown key = %v, %t, %v; want nothing", stored, ok, err)
		}
	}
	committed := appendOnce(t, all[0], "key", batchFor("a", "b"), t0, false)
	for i, store := range all {
		for _, later := range []time.Duration{0, partyline.IdempotencyWindow - time.Second} {
			stored, ok, err := store.Recall(testContext(t), "key", t0.Add(later))
			if err != nil || !ok {
				t.Fatalf("store %d: Recall %v after the commit = %t, %v; want the key", i, later, ok, err)
			}
			checkMessages(t, fmt.Sprintf("store %d: Recall %v after the commit", i, later), stored, committed)
		}
		if _, ok, err := store.Recall(testContext(t), "key", t0.Add(partyline.IdempotencyWindow)); err != nil || ok {
			t.Errorf("store %d: Recall once the window is over = %t, %v; want nothing", i, ok, err)
		}
	}
	if got := lastSeq(t, all[0], "a"); got != 1 {
		t.Errorf("LastSeq(a) after Recalls = %d, want 1: Recall stores nothing", got)
	}
}

func testAppendOnceCanceled(t *testing.T, b Backend) {
	store := open(t, b, routes)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := store.AppendOnce(ctx, "key", batchFor("a"), t0); err == nil {
		t.Fatal("AppendOnce with a canceled context: no error")
	}
	if got := lastSeq(t, store, "a"); got != 0 {
		t.Errorf("LastSeq after a canceled AppendOnce = %d, want 0", got)
	}
	if got := countPending(t, store, urlMessages); got != 0 {
		t.Errorf("events pending after a canceled AppendOnce = %d, want 0", got)
	}
	appendOnce(t, store, "key", batchFor("a"), t0, false) // the key was not taken
}

func testConcurrentAppendOnce(t *testing.T, b Backend) {
	const callers = 16
	all := stores(t, b)
	ctx := testContext(t)
	type result struct {
		stored   []partyline.Message
		replayed bool
	}
	results := make([]result, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			// Appends to the same rooms run alongside, so seqs are shared.
			if _, err := all[i%len(all)].Append(ctx, newMessage("x")); err != nil {
				t.Errorf("Append: %v", err)
			}
			stored, replayed, err := all[i%len(all)].AppendOnce(ctx, "same-key", batchFor("x", "y"), t0.Add(time.Duration(i)*time.Millisecond))
			if err != nil {
				t.Errorf("AppendOnce: %v", err)
			}
			results[i] = result{stored, replayed}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var committed []int
	for i, r := range results {
		if !r.replayed {
			committed = append(committed, i)
		}
	}
	if len(committed) != 1 {
		t.Fatalf("%d concurrent AppendOnce with one key: callers %v committed, want exactly one", callers, committed)
	}
	winner := results[committed[0]].stored
	for i, r := range results {
		checkMessages(t, fmt.Sprintf("caller %d", i), r.stored, winner)
	}
	if got := lastSeq(t, all[0], "x"); got != callers+1 {
		t.Errorf("LastSeq(x) = %d, want %d (the appends and one AppendOnce)", got, callers+1)
	}
	if got := lastSeq(t, all[0], "y"); got != 1 {
		t.Errorf("LastSeq(y) = %d, want 1", got)
	}
	if got := countPending(t, all[0], urlMessages); got != callers+2 {
		t.Errorf("events pending = %d, want %d", got, callers+2)
	}
}

func testReopen(t *testing.T, b Backend) {
	opener := b.NewStorage(t)
	store := opener(t)
	store.SetWebhookRoutes(routes)
	p := presence{t, store}
	mustAppend(t, store, newMessage("lobby"))
	p.joined("lobby", "alice", t0)
	p.joined("lobby", "bob", t0)
	p.left("lobby", "bob", t0.Add(time.Second))
	stored := appendOnce(t, store, "key", batchFor("lobby", "dev"), t0, false)
	before := map[string][]partyline.PendingEvent{}
	for _, url := range []string{urlAll, urlMessages, urlPresence} {
		before[url] = pending(t, store, url)
	}
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	store = openOn(t, opener, routes)
	p = presence{t, store}
	for url, want := range before {
		got := pending(t, store, url)
		if len(got) != len(want) {
			t.Errorf("%s: %d events pending after reopening, want %d", url, len(got), len(want))
			continue
		}
		for i := range got {
			if got[i].Pos != want[i].Pos || string(got[i].Body) != string(want[i].Body) || !got[i].Recorded.Equal(want[i].Recorded) {
				t.Errorf("%s: event %d after reopening = %+v, want %+v", url, i, got[i], want[i])
			}
		}
		ack(t, store, url, got)
	}
	if got, want := presentUsers(t, store), []partyline.RoomUser{{Room: "lobby", User: "alice"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PresentUsers after reopening = %v, want %v", got, want)
	}
	p.joined("lobby", "alice", t0.Add(time.Second))
	p.expect("a present user joins after reopening")
	p.sweep(t0.Add(time.Second))
	p.expect("a leave due after reopening", "user_left lobby bob")
	again := appendOnce(t, store, "key", batchFor("lobby"), t0.Add(time.Hour), true)
	checkMessages(t, "AppendOnce repeated after reopening", again, stored)
}
