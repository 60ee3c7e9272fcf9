package partyline

import (
	"context"
	"sync"
)

// MemoryStore keeps history in memory: for tests, demos and `--store memory`.
// Its seqs restart from 1 when the process does.
type MemoryStore struct {
	keep  int
	epoch string // random: this store's life (Ephemeral)

	mu       sync.Mutex // guards the following
	rooms    map[string]*memoryRoom
	webhooks memoryWebhooks // the EventLog's and IdempotentStore's state
}

type memoryRoom struct {
	last     uint64
	messages []Message // ascending seq, at most keep (when keep > 0)
}

var (
	_ Store     = (*MemoryStore)(nil)
	_ Ephemeral = (*MemoryStore)(nil)
)

// NewMemoryStore returns a store keeping the newest keep messages per room;
// keep 0 keeps all.
func NewMemoryStore(keep int) *MemoryStore {
	return &MemoryStore{keep: keep, epoch: newMessageID(), rooms: make(map[string]*memoryRoom), webhooks: newMemoryWebhooks()}
}

// Epoch implements Ephemeral.
func (s *MemoryStore) Epoch() string { return s.epoch }

// Append implements Store.
func (s *MemoryStore) Append(ctx context.Context, msg Message) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendLocked(msg)
}

// appendLocked commits msg, with its message event for the routes that
// want it, and returns it with its seq.
func (s *MemoryStore) appendLocked(msg Message) (Message, error) {
	r := s.rooms[msg.Room]
	if r == nil {
		r = &memoryRoom{}
		s.rooms[msg.Room] = r
	}
	msg.Seq = r.last + 1
	if len(s.webhooks.urls[EventMessage]) > 0 {
		if err := s.webhooks.recordLocked(MessageEvent(msg)); err != nil {
			return Message{}, err
		}
	}
	r.last++
	r.messages = append(r.messages, msg)
	if s.keep > 0 && len(r.messages) > 2*s.keep {
		// Trim in halves so the copy is amortised over keep appends.
		r.messages = append(r.messages[:0], r.messages[len(r.messages)-s.keep:]...)
	}
	return msg, nil
}

// History implements Store.
func (s *MemoryStore) History(ctx context.Context, room string, q HistoryQuery) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return []Message{}, nil
	}
	all := r.messages
	if s.keep > 0 && len(all) > s.keep {
		all = all[len(all)-s.keep:]
	}
	return append([]Message{}, q.Page(all)...), nil
}

// LastSeq implements Store.
func (s *MemoryStore) LastSeq(ctx context.Context, room string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[room]; r != nil {
		return r.last, nil
	}
	return 0, nil
}

// Close implements Store.
func (s *MemoryStore) Close() error { return nil }
