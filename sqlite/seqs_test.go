package sqlite

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

func TestSeqsContinueAfterReopenWithWarmCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reopen.db")
	store := openForTest(t, path)
	for i := range 6 {
		appendTo(t, store, fmt.Sprintf("room-%d", i%2), uint64(i/2+1))
	}
	if cached := store.seqs.committed["room-0"]; cached != 3 {
		t.Fatalf("cached last seq of room-0 = %d, want 3", cached)
	}
	store.Close()
	reopened := openForTest(t, path)
	appendTo(t, reopened, "room-0", 4)
	appendTo(t, reopened, "room-1", 4)
	appendTo(t, reopened, "room-2", 1)
}

// appendTo appends a message to room and fails t unless it gets seq want.
func appendTo(t *testing.T, store *Store, room string, want uint64) {
	t.Helper()
	msg, err := store.Append(t.Context(), partyline.Message{Room: room})
	if err != nil {
		t.Fatalf("Append to %s: %v", room, err)
	}
	if msg.Seq != want {
		t.Fatalf("Append to %s: seq %d, want %d", room, msg.Seq, want)
	}
}

func TestAppendOnceInterleavedWithAppendTakesEverySeqOnce(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "once.db"))
	const rounds = 40
	var mu sync.Mutex
	var seqs []uint64
	took := func(messages ...partyline.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range messages {
			seqs = append(seqs, m.Seq)
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range rounds {
				msg, err := store.Append(t.Context(), partyline.Message{Room: "r"})
				if err != nil {
					t.Error(err)
					return
				}
				took(msg)
				key := fmt.Sprintf("key-%d-%d", w, i)
				stored, _, err := store.AppendOnce(t.Context(), key, []partyline.Message{{Room: "r"}, {Room: "r"}}, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				took(stored...)
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("sorted seqs %v: position %d holds %d, want %d (a gap or a repeat)", seqs, i, seq, i+1)
		}
	}
	if want := 4 * rounds * 3; len(seqs) != want {
		t.Errorf("%d seqs, want %d", len(seqs), want)
	}
}

func TestReplayedAppendOnceTakesNoSeq(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "replay.db"))
	now := time.Now()
	for range 2 {
		stored, _, err := store.AppendOnce(t.Context(), "k", []partyline.Message{{Room: "r"}}, now)
		if err != nil || len(stored) != 1 || stored[0].Seq != 1 {
			t.Fatalf("AppendOnce(k) = %+v, %v; want seq 1 both times", stored, err)
		}
	}
	appendTo(t, store, "r", 2)
}

func TestBatchOfManyRowsIsStoredWhole(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "chunks.db"))
	rooms := []string{"a", "b", "c"}
	batch := make([]partyline.Message, 157) // 64+64+16+4+4+4+1
	for i := range batch {
		batch[i] = partyline.Message{Room: rooms[i%3], ID: fmt.Sprint(i), Content: fmt.Sprintf("content %d", i), Timestamp: int64(i)}
		if i%2 == 0 {
			batch[i].Data = []byte(fmt.Sprintf(`{"i":%d}`, i))
		}
	}
	if err := store.commit(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	for r, room := range rooms {
		history, err := store.History(t.Context(), room, partyline.HistoryQuery{Limit: 100, Forward: true})
		if err != nil {
			t.Fatal(err)
		}
		var want []partyline.Message
		for i := r; i < len(batch); i += 3 {
			m := batch[i]
			if m.Seq != uint64(len(want)+1) {
				t.Fatalf("message %d of room %s got seq %d, want %d", i, room, m.Seq, len(want)+1)
			}
			want = append(want, m)
		}
		if !slices.EqualFunc(history, want, sameMessage) {
			t.Errorf("history of %s = %+v, want %+v", room, history, want)
		}
	}
}

// sameMessage reports whether a and b agree in every field.
func sameMessage(a, b partyline.Message) bool {
	return a.Room == b.Room && a.Seq == b.Seq && a.ID == b.ID && a.Username == b.Username &&
		a.Content == b.Content && string(a.Data) == string(b.Data) && a.Timestamp == b.Timestamp
}

func TestFullCacheStartsOver(t *testing.T) {
	store := openForTest(t, filepath.Join(t.TempDir(), "limit.db"))
	store.seqs.limit = 2
	for round := range 3 {
		for i := range 5 {
			appendTo(t, store, fmt.Sprintf("room-%d", i), uint64(round+1))
			if n := len(store.seqs.committed); n > 2 {
				t.Fatalf("cache holds %d rooms, want at most 2", n)
			}
		}
	}
}

func TestLargestChunk(t *testing.T) {
	for n, want := range map[int]int{1: 1, 3: 1, 4: 4, 15: 4, 16: 16, 63: 16, 64: 64, 500: 64} {
		if got := chunkSizes[largestChunk(n)]; got != want {
			t.Errorf("largest chunk of %d rows = %d, want %d", n, got, want)
		}
	}
}
