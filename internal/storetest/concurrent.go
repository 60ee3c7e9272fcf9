package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/partyline/partyline"
)

// load describes concurrent appends: writers goroutines each appending
// perWriter messages, spread over rooms rooms.
type load struct {
	writers, perWriter, rooms int
	// checkPrefix makes each writer check, after every append, that the
	// returned seq and all lower ones are readable (only with keep 0).
	checkPrefix bool
}

// room returns the room writer w uses for its i-th append.
func (l load) room(w, i int) string { return fmt.Sprintf("busy-%d", (w+i)%l.rooms) }

// run appends l concurrently, writer w through stores[w%len(stores)], and
// returns what the appends returned, by room.
func (l load) run(t *testing.T, stores ...partyline.Store) map[string][]partyline.Message {
	t.Helper()
	ctx := testContext(t)
	results := make([][]partyline.Message, l.writers)
	var wg sync.WaitGroup
	for w := range l.writers {
		wg.Go(func() {
			store := stores[w%len(stores)]
			for i := range l.perWriter {
				got, err := store.Append(ctx, newMessage(l.room(w, i)))
				if err != nil {
					t.Errorf("writer %d: Append #%d: %v", w, i, err)
					return
				}
				results[w] = append(results[w], got)
				if l.checkPrefix && !checkPrefix(t, store, got) {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	byRoom := map[string][]partyline.Message{}
	for _, r := range results {
		for _, m := range r {
			byRoom[m.Room] = append(byRoom[m.Room], m)
		}
	}
	for _, messages := range byRoom {
		slices.SortFunc(messages, func(a, b partyline.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return byRoom
}

// checkPrefix reports whether msg, just returned by Append, and every lower
// seq of its room are committed and readable. It may run on any goroutine.
func checkPrefix(t *testing.T, store partyline.Store, msg partyline.Message) bool {
	ctx := testContext(t)
	last, err := store.LastSeq(ctx, msg.Room)
	if err != nil || last < msg.Seq {
		t.Errorf("LastSeq(%q) = %d, %v right after Append returned seq %d", msg.Room, last, err, msg.Seq)
		return false
	}
	page, err := store.History(ctx, msg.Room, partyline.HistoryQuery{Before: msg.Seq + 1, Limit: int(msg.Seq)})
	if err != nil || !equalSeqs(seqs(page), seqRange(1, msg.Seq)) {
		t.Errorf("History(%q) below seq %d right after Append returned it = seqs %v, %v; want 1…%d",
			msg.Room, msg.Seq+1, seqs(page), err, msg.Seq)
		return false
	}
	if d := DiffMessage(page[len(page)-1], msg); d != "" {
		t.Errorf("History(%q) right after Append: newest message %s", msg.Room, d)
		return false
	}
	return true
}

// checkEachSeqOnce fails t unless each room's appends received seqs 1…n
// exactly once and the store's history shows the newest keep of them (all
// when keep is 0) as returned.
func checkEachSeqOnce(t *testing.T, store partyline.Store, byRoom map[string][]partyline.Message, keep int) {
	t.Helper()
	for room, messages := range byRoom {
		n := uint64(len(messages))
		if !equalSeqs(seqs(messages), seqRange(1, n)) {
			t.Fatalf("room %q: Append returned seqs %v, want 1…%d each once", room, seqs(messages), n)
		}
		want := messages
		if keep > 0 {
			want = messages[max(0, len(messages)-keep):]
		}
		got := history(t, store, room, partyline.HistoryQuery{Limit: len(messages) + 10})
		checkMessages(t, "History of room "+room, got, want)
		if got := lastSeq(t, store, room); got != n {
			t.Errorf("LastSeq(%q) = %d, want %d", room, got, n)
		}
	}
}

func testConcurrentAppends(t *testing.T, b Backend) {
	store := open(t, b, 0)
	l := load{writers: 16, perWriter: 25, rooms: 4, checkPrefix: true}
	checkEachSeqOnce(t, store, l.run(t, store), 0)
}

func testConcurrentRetention(t *testing.T, b Backend) {
	const keep = 10
	store := open(t, b, keep)
	l := load{writers: 8, perWriter: 30, rooms: 2}
	checkEachSeqOnce(t, store, l.run(t, store), keep)
}

func testSharedStorage(t *testing.T, b Backend) {
	opener := b.NewStorage(t)
	first, second := openOn(t, opener, 0), openOn(t, opener, 0)
	l := load{writers: 16, perWriter: 25, rooms: 3, checkPrefix: true}
	byRoom := l.run(t, first, second)
	checkEachSeqOnce(t, first, byRoom, 0)
	checkEachSeqOnce(t, second, byRoom, 0)
}

func testReopen(t *testing.T, b Backend) {
	opener := b.NewStorage(t)
	store := opener(t, 0)
	lobby := appendN(t, store, "lobby", 5)
	dev := appendN(t, store, "dev", 2)
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	store = openOn(t, opener, 0)
	checkMessages(t, "History of lobby after reopening",
		history(t, store, "lobby", partyline.HistoryQuery{Limit: 100}), lobby)
	checkMessages(t, "History of dev after reopening",
		history(t, store, "dev", partyline.HistoryQuery{Limit: 100}), dev)
	if got := lastSeq(t, store, "lobby"); got != 5 {
		t.Errorf("LastSeq(lobby) after reopening = %d, want 5", got)
	}
	next := appendN(t, store, "lobby", 1)[0]
	if next.Seq != 6 {
		t.Errorf("first Append after reopening got seq %d, want 6", next.Seq)
	}
}

func testReopenRetention(t *testing.T, b Backend) {
	const keep = 3
	opener := b.NewStorage(t)
	store := opener(t, keep)
	appended := appendN(t, store, "kept", 10)
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	store = openOn(t, opener, keep)
	checkWindow(t, store, "kept", keep, appended)
	appended = append(appended, appendN(t, store, "kept", 4)...)
	checkWindow(t, store, "kept", keep, appended)
}
