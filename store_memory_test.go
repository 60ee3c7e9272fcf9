package partyline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
)

// contiguous returns messages with seqs first..last.
func contiguous(first, last uint64) []Message {
	var out []Message
	for seq := first; seq <= last; seq++ {
		out = append(out, Message{Room: "r", Seq: seq})
	}
	return out
}

func seqsOf(messages []Message) []uint64 {
	seqs := make([]uint64, 0, len(messages))
	for _, m := range messages {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func seqRange(first, last uint64) []uint64 {
	seqs := []uint64{}
	for seq := first; seq <= last; seq++ {
		seqs = append(seqs, seq)
	}
	return seqs
}

func checkSeqs(t *testing.T, what string, got []Message, want []uint64) {
	t.Helper()
	if g := seqsOf(got); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("%s: seqs %v, want %v", what, g, want)
	}
}

func TestHistoryQueryPage(t *testing.T) {
	messages := contiguous(5, 14) // as after retention trimmed 1-4
	tests := []struct {
		q    HistoryQuery
		want []uint64
	}{
		{HistoryQuery{Limit: 0}, nil},
		{HistoryQuery{Limit: -1}, nil},
		{HistoryQuery{Limit: 3}, seqRange(12, 14)},
		{HistoryQuery{Limit: 10}, seqRange(5, 14)},
		{HistoryQuery{Limit: 100}, seqRange(5, 14)},
		// Before: the newest Limit below it.
		{HistoryQuery{Before: 10, Limit: 3}, seqRange(7, 9)},
		{HistoryQuery{Before: 10, Limit: 100}, seqRange(5, 9)},
		{HistoryQuery{Before: 6, Limit: 3}, []uint64{5}},
		{HistoryQuery{Before: 5, Limit: 3}, nil},
		{HistoryQuery{Before: 1, Limit: 3}, nil},
		{HistoryQuery{Before: 14, Limit: 1}, []uint64{13}},
		{HistoryQuery{Before: 15, Limit: 2}, seqRange(13, 14)},
		{HistoryQuery{Before: 1000, Limit: 2}, seqRange(13, 14)},
		// After: the first Limit above it.
		{HistoryQuery{Forward: true, After: 1, Limit: 3}, seqRange(5, 7)},
		{HistoryQuery{Forward: true, After: 4, Limit: 3}, seqRange(5, 7)},
		{HistoryQuery{Forward: true, After: 5, Limit: 3}, seqRange(6, 8)},
		{HistoryQuery{Forward: true, After: 12, Limit: 100}, seqRange(13, 14)},
		{HistoryQuery{Forward: true, After: 13, Limit: 1}, []uint64{14}},
		{HistoryQuery{Forward: true, After: 14, Limit: 3}, nil},
		{HistoryQuery{Forward: true, After: 1000, Limit: 3}, nil},
		// After wins over Before.
		{HistoryQuery{Forward: true, After: 5, Before: 7, Limit: 3}, seqRange(6, 8)},
	}
	for _, tt := range tests {
		checkSeqs(t, fmt.Sprintf("Page(5..14, %+v)", tt.q), tt.q.Page(messages), tt.want)
	}
	checkSeqs(t, "Page(empty)", HistoryQuery{Limit: 5}.Page(nil), nil)
	checkSeqs(t, "Page(empty, After 3)", HistoryQuery{Forward: true, After: 3, Limit: 5}.Page(nil), nil)
}

// TestMemoryStorePageOfHugeSeqs covers client-controlled seqs near the top
// of uint64: history's before and join's since reach Page unchanged.
func TestHistoryQueryPageHugeSeqs(t *testing.T) {
	messages := contiguous(1, 10)
	tests := []struct {
		q    HistoryQuery
		want []uint64
	}{
		{HistoryQuery{Before: math.MaxUint64, Limit: 3}, seqRange(8, 10)},
		{HistoryQuery{Before: 1 << 63, Limit: 3}, seqRange(8, 10)},
		{HistoryQuery{Forward: true, After: 1 << 63, Limit: 3}, nil},
		{HistoryQuery{Forward: true, After: math.MaxUint64 - 1, Limit: 3}, nil},
		{HistoryQuery{Forward: true, After: math.MaxUint64, Limit: 3}, nil},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("Page(1..10, %+v) panicked: %v", tt.q, p)
				}
			}()
			checkSeqs(t, fmt.Sprintf("Page(1..10, %+v)", tt.q), tt.q.Page(messages), tt.want)
		}()
	}
}

func appendN(t *testing.T, s *MemoryStore, room string, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Append(context.Background(), Message{Room: room, Content: fmt.Sprint(i)}); err != nil {
			t.Fatalf("Append to %s: %v", room, err)
		}
	}
}

func history(t *testing.T, s *MemoryStore, room string, q HistoryQuery) []Message {
	t.Helper()
	got, err := s.History(context.Background(), room, q)
	if err != nil {
		t.Fatalf("History(%s, %+v): %v", room, q, err)
	}
	return got
}

func TestMemoryStoreAppendAssignsSeqs(t *testing.T) {
	s := NewMemoryStore(0)
	ctx := context.Background()
	for i, room := range []string{"a", "b", "a", "a", "b"} {
		m, err := s.Append(ctx, Message{Room: room, Seq: 999, Content: fmt.Sprint(i)})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		want := map[int]uint64{0: 1, 1: 1, 2: 2, 3: 3, 4: 2}[i]
		if m.Seq != want || m.Room != room || m.Content != fmt.Sprint(i) {
			t.Errorf("Append %d to %s = {Room:%s Seq:%d Content:%s}, want seq %d", i, room, m.Room, m.Seq, m.Content, want)
		}
	}
	for room, want := range map[string]uint64{"a": 3, "b": 2, "none": 0} {
		if last, err := s.LastSeq(ctx, room); err != nil || last != want {
			t.Errorf("LastSeq(%s) = %d, %v; want %d", room, last, err, want)
		}
	}
}

func TestMemoryStoreUnknownRoom(t *testing.T) {
	s := NewMemoryStore(10)
	appendN(t, s, "known", 3)
	for _, q := range []HistoryQuery{{Limit: 50}, {Before: 5, Limit: 5}, {After: 1, Limit: 5}, {Limit: 0}} {
		got := history(t, s, "unknown", q)
		if got == nil || len(got) != 0 {
			t.Errorf("History(unknown, %+v) = %#v, want an empty non-nil slice", q, got)
		}
	}
	if got := history(t, s, "known", HistoryQuery{Limit: 0}); got == nil || len(got) != 0 {
		t.Errorf("History(known, Limit 0) = %#v, want an empty non-nil slice", got)
	}
	if got := history(t, s, "known", HistoryQuery{Forward: true, After: 3, Limit: 5}); got == nil || len(got) != 0 {
		t.Errorf("History(known, After last) = %#v, want an empty non-nil slice", got)
	}
}

func TestMemoryStoreRetention(t *testing.T) {
	const keep = 3
	s := NewMemoryStore(keep)
	appendN(t, s, "r", 10)
	tests := []struct {
		q    HistoryQuery
		want []uint64
	}{
		{HistoryQuery{Limit: 100}, seqRange(8, 10)},
		{HistoryQuery{Limit: 2}, seqRange(9, 10)},
		{HistoryQuery{Forward: true, After: 2, Limit: 100}, seqRange(8, 10)}, // trimmed seqs are skipped
		{HistoryQuery{Forward: true, After: 7, Limit: 100}, seqRange(8, 10)},
		{HistoryQuery{Forward: true, After: 8, Limit: 1}, []uint64{9}},
		{HistoryQuery{Before: 9, Limit: 100}, []uint64{8}},
		{HistoryQuery{Before: 8, Limit: 100}, []uint64{}},
		{HistoryQuery{Before: 3, Limit: 100}, []uint64{}},
	}
	for _, tt := range tests {
		checkSeqs(t, fmt.Sprintf("keep %d, 10 appended, History(%+v)", keep, tt.q), history(t, s, "r", tt.q), tt.want)
	}
	if last, _ := s.LastSeq(context.Background(), "r"); last != 10 {
		t.Errorf("LastSeq after trimming = %d, want 10", last)
	}
}

func TestMemoryStoreRetentionBoundsMemory(t *testing.T) {
	const keep = 5
	s := NewMemoryStore(keep)
	for n := 1; n <= 100; n++ {
		appendN(t, s, "r", 1)
		s.mu.Lock()
		held := len(s.rooms["r"].messages)
		s.mu.Unlock()
		if held > 2*keep {
			t.Fatalf("keep %d: %d messages held after %d appends, want at most %d", keep, held, n, 2*keep)
		}
		if got := history(t, s, "r", HistoryQuery{Limit: 100}); len(got) != min(n, keep) || got[len(got)-1].Seq != uint64(n) {
			t.Fatalf("keep %d, %d appended: History = seqs %v, want the newest %d", keep, n, seqsOf(got), min(n, keep))
		}
	}
}

func TestMemoryStoreKeepZeroKeepsAll(t *testing.T) {
	s := NewMemoryStore(0)
	appendN(t, s, "r", 250)
	checkSeqs(t, "keep 0, History(After 0, Limit 1000)", history(t, s, "r", HistoryQuery{Limit: 1000}), seqRange(1, 250))
	checkSeqs(t, "keep 0, History(After 1, Limit 2)", history(t, s, "r", HistoryQuery{Forward: true, After: 1, Limit: 2}), seqRange(2, 3))
}

func TestMemoryStoreHistoryReturnsCopy(t *testing.T) {
	s := NewMemoryStore(0)
	appendN(t, s, "r", 3)
	got := history(t, s, "r", HistoryQuery{Limit: 10})
	got[0].Content = "changed"
	_ = append(got[:1], Message{Seq: 99})
	again := history(t, s, "r", HistoryQuery{Limit: 10})
	checkSeqs(t, "History after the caller changed its result", again, seqRange(1, 3))
	if again[0].Content != "0" {
		t.Errorf("stored content = %q after the caller changed its result, want %q", again[0].Content, "0")
	}
}

func TestMemoryStoreCancelledContext(t *testing.T) {
	s := NewMemoryStore(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, Message{Room: "r"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := s.History(ctx, "r", HistoryQuery{Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("History with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := s.LastSeq(ctx, "r"); !errors.Is(err, context.Canceled) {
		t.Errorf("LastSeq with a cancelled context: %v, want context.Canceled", err)
	}
	if last, _ := s.LastSeq(context.Background(), "r"); last != 0 {
		t.Errorf("LastSeq after a cancelled Append = %d, want 0", last)
	}
}
