package storetest

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/partyline/partyline"
)

func testRoundTrip(t *testing.T, b Backend) {
	store := open(t, b, 0)
	ctx := testContext(t)
	messages := []partyline.Message{
		{ID: "plain", Username: "alice", Content: "hello", Timestamp: 1_700_000_000_123},
		{ID: "spaced-json", Username: "bob", Content: "with data",
			Data: json.RawMessage(`{ "b" : 1,  "a":[1, 2.50, "x"] }`), Timestamp: 1},
		{ID: "json-null", Username: "bob", Content: "", Data: json.RawMessage(`null`)},
		{ID: "json-string", Username: "carol", Content: "é ü 中文 🎉", Data: json.RawMessage(`"\u00e9"`)},
		{ID: "nul-and-newlines", Username: "dave", Content: "a\x00b\nc\r\n\t\"'\\",
			Timestamp: math.MaxInt64},
		{ID: "big", Username: "erin", Content: strings.Repeat("x", 16384),
			Data: json.RawMessage(`[` + strings.Repeat(`1,`, 4000) + `1]`), Timestamp: -5},
		{ID: "invalid-utf8", Username: "frank", Content: "\xff\xfe bytes"},
	}
	for i := range messages {
		messages[i].Room = "roundtrip"
		messages[i].Seq = uint64(i + 1)
		got, err := store.Append(ctx, messages[i])
		if err != nil {
			t.Fatalf("Append(%s): %v", messages[i].ID, err)
		}
		if d := DiffMessage(got, messages[i]); d != "" {
			t.Errorf("Append(%s) returned %s", messages[i].ID, d)
		}
	}
	got := history(t, store, "roundtrip", partyline.HistoryQuery{Limit: 100})
	checkMessages(t, "History after round trip", got, messages)
}

func testHistoryPages(t *testing.T, b Backend) {
	store := open(t, b, 0)
	want := appendN(t, store, "pages", 10)
	appendN(t, store, "other", 3)
	for _, tc := range []struct {
		q    partyline.HistoryQuery
		want []uint64
	}{
		{partyline.HistoryQuery{Limit: 3}, seqRange(8, 10)},
		{partyline.HistoryQuery{Limit: 100}, seqRange(1, 10)},
		{partyline.HistoryQuery{Limit: 10}, seqRange(1, 10)},
		{partyline.HistoryQuery{Limit: 1}, seqRange(10, 10)},
		{partyline.HistoryQuery{Limit: 0}, nil},
		{partyline.HistoryQuery{Limit: -1}, nil},
		{partyline.HistoryQuery{Before: 5, Limit: 2}, seqRange(3, 4)},
		{partyline.HistoryQuery{Before: 5, Limit: 100}, seqRange(1, 4)},
		{partyline.HistoryQuery{Before: 1, Limit: 5}, nil},
		{partyline.HistoryQuery{Before: 11, Limit: 1}, seqRange(10, 10)},
		{partyline.HistoryQuery{Before: 99, Limit: 2}, seqRange(9, 10)},
		{partyline.HistoryQuery{Before: math.MaxUint64, Limit: 2}, seqRange(9, 10)},
		{partyline.HistoryQuery{Forward: true, After: 3, Limit: 2}, seqRange(4, 5)},
		{partyline.HistoryQuery{Forward: true, After: 8, Limit: 5}, seqRange(9, 10)},
		{partyline.HistoryQuery{Forward: true, After: 9, Limit: 1}, seqRange(10, 10)},
		{partyline.HistoryQuery{Forward: true, After: 10, Limit: 5}, nil},
		{partyline.HistoryQuery{Forward: true, After: 50, Limit: 5}, nil},
		{partyline.HistoryQuery{Forward: true, After: math.MaxUint64, Limit: 5}, nil},
		{partyline.HistoryQuery{Forward: true, After: 3, Limit: 0}, nil},
		{partyline.HistoryQuery{Forward: true, Limit: 3}, seqRange(1, 3)},
		{partyline.HistoryQuery{Forward: true, After: 0, Limit: 100}, seqRange(1, 10)},
		// Forward pages ignore Before; backward pages ignore After.
		{partyline.HistoryQuery{Forward: true, After: 3, Before: 5, Limit: 10}, seqRange(4, 10)},
		{partyline.HistoryQuery{After: 3, Before: 5, Limit: 10}, seqRange(1, 4)},
		{partyline.HistoryQuery{After: 3, Limit: 2}, seqRange(9, 10)},
	} {
		got := history(t, store, "pages", tc.q)
		if !equalSeqs(seqs(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("History(%+v) = seqs %v, want %v", tc.q, seqs(got), tc.want)
			continue
		}
		if len(got) > 0 {
			first := got[0].Seq - 1
			checkMessages(t, "History page", got, want[first:first+uint64(len(got))])
		}
	}
}

func testRetention(t *testing.T, b Backend) {
	const keep = 5
	store := open(t, b, keep)
	appended := appendN(t, store, "kept", 12)
	other := appendN(t, store, "short", 3)
	checkWindow(t, store, "kept", keep, appended)
	checkMessages(t, "History of a room below keep",
		history(t, store, "short", partyline.HistoryQuery{Limit: 100}), other)
	for _, tc := range []struct {
		q    partyline.HistoryQuery
		want []uint64
	}{
		{partyline.HistoryQuery{Limit: 2}, seqRange(11, 12)},
		{partyline.HistoryQuery{Forward: true, After: 1, Limit: 100}, seqRange(8, 12)},
		{partyline.HistoryQuery{Forward: true, Limit: 2}, seqRange(8, 9)},
		{partyline.HistoryQuery{Forward: true, After: 6, Limit: 2}, seqRange(8, 9)},
		{partyline.HistoryQuery{Forward: true, After: 9, Limit: 100}, seqRange(10, 12)},
		{partyline.HistoryQuery{Before: 10, Limit: 100}, seqRange(8, 9)},
		{partyline.HistoryQuery{Before: 8, Limit: 100}, nil},
		{partyline.HistoryQuery{Before: 3, Limit: 100}, nil},
	} {
		got := history(t, store, "kept", tc.q)
		if !equalSeqs(seqs(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("keep %d: History(%+v) = seqs %v, want %v", keep, tc.q, seqs(got), tc.want)
		}
	}
	// Many more appends cross whatever trimming steps the store takes.
	for range 40 {
		appended = append(appended, appendN(t, store, "kept", 7)...)
		checkWindow(t, store, "kept", keep, appended)
	}
}

// checkWindow fails t unless History of room shows exactly the newest keep
// of appended, the room's messages in seq order.
func checkWindow(t *testing.T, store partyline.Store, room string, keep int, appended []partyline.Message) {
	t.Helper()
	want := appended[max(0, len(appended)-keep):]
	got := history(t, store, room, partyline.HistoryQuery{Limit: 10 * keep})
	checkMessages(t, "History of the newest keep", got, want)
	got = history(t, store, room, partyline.HistoryQuery{Forward: true, Limit: 10 * keep})
	checkMessages(t, "History forward from the oldest retained", got, want)
	if got, last := lastSeq(t, store, room), uint64(len(appended)); got != last {
		t.Fatalf("LastSeq(%q) = %d, want %d", room, got, last)
	}
}
