package sqlite

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// countRows returns how many rows table has in store's database.
func countRows(t *testing.T, store *Store, table string) int {
	t.Helper()
	var n int
	if err := store.read.QueryRowContext(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// logged returns how many messages message_log holds in store's database.
func logged(t *testing.T, store *Store) int {
	t.Helper()
	messages, err := store.readLog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(messages)
}

// stored returns how many messages message_chunks holds in store's
// database.
func stored(t *testing.T, store *Store) int {
	t.Helper()
	var n int
	if err := store.read.QueryRowContext(t.Context(), `SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM message_chunks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriterMovesTheLogWhenItIsFull(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "full.db"))
	store.moveAt = 100
	appendRooms(t, store, 1000)
	if logged, stored := logged(t, store), stored(t, store); logged >= 100+64 || logged+stored != 1000 {
		t.Errorf("after 1,000 appends moving at 100: %d messages in message_log, %d in message_chunks; want under 164 and 1,000 in all", logged, stored)
	}
}

func TestWriterMovesTheLogWhenItIsOld(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "old.db"))
	// The ten may take several commits, and on a busy machine those may
	// span more than the age that makes a move due: none is due while
	// they commit.
	store.moveAfter = time.Hour
	appendRooms(t, store, 10)
	if logged := logged(t, store); logged != 10 {
		t.Fatalf("message_log holds %d messages after 10 appends, moving after an hour; want 10", logged)
	}
	store.moveAfter = 20 * time.Millisecond
	time.Sleep(30 * time.Millisecond)
	appendRooms(t, store, 1) // the commit after which the first ten are due
	if logged := logged(t, store); logged != 0 {
		t.Errorf("message_log holds %d messages after a commit 30 ms after the first, moving after 20 ms; want 0", logged)
	}
}

func TestAppendOnceMovesTheLog(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "once.db"))
	store.moveAt = 5
	for i := range 12 {
		msg := partyline.Message{Room: "r", Content: "hello"}
		if _, _, err := store.AppendOnce(t.Context(), fmt.Sprint("key-", i), []partyline.Message{msg}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if logged, stored := logged(t, store), stored(t, store); logged >= 5 || logged+stored != 12 {
		t.Errorf("after 12 AppendOnce moving at 5: %d messages in message_log, %d in message_chunks; want under 5 and 12 in all", logged, stored)
	}
}

// TestOpenMovesTheLogOfACrashedProcess copies the database of a Store that
// is still open, as a process killed at that moment leaves it, and opens
// the copy.
func TestOpenMovesTheLogOfACrashedProcess(t *testing.T) {
	dir := t.TempDir()
	path, crashed := filepath.Join(dir, "live.db"), filepath.Join(dir, "crashed.db")
	store := openForTest(t, path)
	store.moveAfter = time.Hour       // no move
	store.checkpoints.every = 1 << 40 // nor a checkpoint writing the file while it is copied
	appendRooms(t, store, 500)
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if logged := logged(t, store); logged != 500 {
		t.Fatalf("message_log of the live Store holds %d messages, want all 500", logged)
	}
	reopened := openForTest(t, crashed)
	if logged, stored := logged(t, reopened), stored(t, reopened); logged != 0 || stored != 500 {
		t.Errorf("after Open: %d messages in message_log, %d in message_chunks; want 0 and 500", logged, stored)
	}
	if got := countRows(t, reopened, "rooms"); got != 500 {
		t.Errorf("after Open the rooms table has %d rows, want the 500 rooms' last seqs", got)
	}
	page, err := reopened.History(t.Context(), "room-7", partyline.HistoryQuery{Limit: 10})
	if err != nil || len(page) != 1 || page[0].Seq != 1 || page[0].Content != "hello" {
		t.Errorf("History of room-7 after Open = %+v, %v; want its one message", page, err)
	}
	if next, err := reopened.Append(t.Context(), partyline.Message{Room: "room-7"}); err != nil || next.Seq != 2 {
		t.Errorf("Append to room-7 after Open = seq %d, %v; want seq 2", next.Seq, err)
	}
}

func TestMergePage(t *testing.T) {
	messages := func(seqs ...uint64) []partyline.Message {
		out := make([]partyline.Message, len(seqs))
		for i, seq := range seqs {
			out[i] = partyline.Message{Seq: seq}
		}
		return out
	}
	for _, tt := range []struct {
		name           string
		stored, recent []partyline.Message
		q              partyline.HistoryQuery
		want           []uint64
	}{
		{"stored only", messages(1, 2, 3), nil, partyline.HistoryQuery{Limit: 2}, []uint64{1, 2, 3}},
		{"recent only, back", nil, messages(4, 5, 6), partyline.HistoryQuery{Limit: 2}, []uint64{5, 6}},
		{"recent only, forward", nil, messages(4, 5, 6), partyline.HistoryQuery{Forward: true, Limit: 2}, []uint64{4, 5}},
		{"both, back", messages(1, 2, 3), messages(4, 5), partyline.HistoryQuery{Limit: 3}, []uint64{3, 4, 5}},
		{"both, forward", messages(1, 2, 3), messages(4, 5), partyline.HistoryQuery{Forward: true, Limit: 4}, []uint64{1, 2, 3, 4}},
		{"moved while read", messages(1, 2, 3, 4), messages(3, 4, 5), partyline.HistoryQuery{Forward: true, Limit: 10}, []uint64{1, 2, 3, 4, 5}},
	} {
		got := mergePage(tt.stored, tt.recent, tt.q)
		if seqs := seqsOf(got); !slices.Equal(seqs, tt.want) {
			t.Errorf("%s: mergePage = %v, want %v", tt.name, seqs, tt.want)
		}
	}
}

func TestUnmovedPage(t *testing.T) {
	u := newUnmoved()
	var batch []partyline.Message
	for seq := uint64(11); seq <= 20; seq++ {
		batch = append(batch, partyline.Message{Room: "r", Seq: seq}, partyline.Message{Room: "other", Seq: seq})
	}
	u.add(batch, time.Now())
	for _, tt := range []struct {
		name string
		q    partyline.HistoryQuery
		keep int64
		want []uint64
	}{
		{"newest", partyline.HistoryQuery{Limit: 3}, 1 << 62, []uint64{18, 19, 20}},
		{"before 15", partyline.HistoryQuery{Before: 15, Limit: 3}, 1 << 62, []uint64{12, 13, 14}},
		{"after 17", partyline.HistoryQuery{Forward: true, After: 17, Limit: 5}, 1 << 62, []uint64{18, 19, 20}},
		{"from the first", partyline.HistoryQuery{Forward: true, Limit: 2}, 1 << 62, []uint64{11, 12}},
		{"keeping 4", partyline.HistoryQuery{Forward: true, Limit: 10}, 4, []uint64{17, 18, 19, 20}},
		{"before all", partyline.HistoryQuery{Before: 11, Limit: 3}, 1 << 62, nil},
	} {
		page, lowest := u.page("r", tt.q, tt.keep)
		if got := seqsOf(page); !slices.Equal(got, tt.want) {
			t.Errorf("%s: page = %v, want %v", tt.name, got, tt.want)
		}
		if lowest != 20-tt.keep {
			t.Errorf("%s: lowest seq out of keep = %d, want %d", tt.name, lowest, 20-tt.keep)
		}
	}
	if got, lowest := u.page("nobody", partyline.HistoryQuery{Limit: 3}, 1<<62); got != nil || lowest != math.MinInt64 {
		t.Errorf("page of a room with nothing unmoved = %v, %d; want nil, math.MinInt64", got, lowest)
	}
	if last, none := u.last("r"), u.last("nobody"); last != 20 || none != 0 {
		t.Errorf("last = %d and %d for a room with nothing unmoved; want 20 and 0", last, none)
	}
}

func TestUnmovedClear(t *testing.T) {
	u := newUnmoved()
	u.add([]partyline.Message{{Room: "r", Seq: 1}, {Room: "r", Seq: 2}, {Room: "other", Seq: 1}}, time.Now())
	u.clear()
	if rooms, last := u.byRoom(), u.last("r"); len(rooms) != 0 || last != 0 {
		t.Errorf("after clear: byRoom = %v, last = %d; want nothing", rooms, last)
	}
	if got, lowest := u.page("r", partyline.HistoryQuery{Limit: 3}, 1<<62); got != nil || lowest != math.MinInt64 {
		t.Errorf("after clear: page = %v, %d; want nil, math.MinInt64", got, lowest)
	}
	next := []partyline.Message{{Room: "r", Seq: 3}, {Room: "r", Seq: 4}}
	if allocs := testing.AllocsPerRun(10, func() { u.clear(); u.add(next, time.Now()) }); allocs != 0 {
		t.Errorf("a room's next messages after a clear: %v allocations, want 0 (its slice is kept)", allocs)
	}
	if rooms := u.byRoom(); len(rooms) != 1 || !slices.Equal(seqsOf(rooms[0]), []uint64{3, 4}) {
		t.Errorf("byRoom = %v, want r's 3 and 4 alone", rooms)
	}
	if _, kept := u.rooms["other"]; kept {
		t.Error("a room without messages since the last clear is still held")
	}
}

// seqsOf returns the seqs of messages.
func seqsOf(messages []partyline.Message) []uint64 {
	var seqs []uint64
	for _, m := range messages {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}
