package sqlite

import (
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/partyline/partyline"
)

// unmoved holds in memory the messages message_log holds: committed, not
// yet moved into message_chunks. History reads them here, as message_log
// has no index by room. Only transactions that hold the seqs' lock change
// it, in step with message_log: add after a commit that appended to the
// log, clear after the one that emptied it.
type unmoved struct {
	mu     sync.Mutex
	rooms  map[string][]partyline.Message // each room's in seq order
	count  int                            // messages in rooms
	bytes  int                            // their texts' length, about
	oldest time.Time                      // when the first of them was added
}

// newUnmoved returns an empty unmoved.
func newUnmoved() *unmoved {
	return &unmoved{rooms: make(map[string][]partyline.Message)}
}

// add records messages, just committed to message_log, each with its seq
// one more than the room's previous.
func (u *unmoved) add(messages []partyline.Message, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.count == 0 {
		u.oldest = now
	}
	for _, m := range messages {
		u.rooms[m.Room] = append(u.rooms[m.Room], m)
		u.bytes += len(m.Room) + len(m.ID) + len(m.Username) + len(m.Content) + len(m.Data)
	}
	u.count += len(messages)
}

// due reports whether the log is to be moved: once it holds rows messages
// or moveAtBytes of text, or any of them is age old.
func (u *unmoved) due(rows int, age time.Duration, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.count >= rows || u.bytes >= moveAtBytes || u.count > 0 && now.Sub(u.oldest) >= age
}

// byRoom returns the messages of each room, rooms in name order, so that
// a move writes the rooms' index pages in their order in the file.
func (u *unmoved) byRoom() [][]partyline.Message {
	u.mu.Lock()
	defer u.mu.Unlock()
	names := slices.Sorted(maps.Keys(u.rooms))
	rooms := make([][]partyline.Message, 0, len(names))
	for _, name := range names {
		if messages := u.rooms[name]; len(messages) > 0 {
			rooms = append(rooms, messages)
		}
	}
	return rooms
}

// clear forgets every message, once a move has committed them to
// message_chunks. A room that had messages keeps its slice, emptied, for
// those of the next move, which would otherwise grow it again from
// nothing; one that had none since the last move is dropped. The slices
// byRoom returned must no longer be used.
func (u *unmoved) clear() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, messages := range u.rooms {
		if len(messages) == 0 {
			delete(u.rooms, name)
			continue
		}
		clear(messages) // drop the strings
		u.rooms[name] = messages[:0]
	}
	u.count, u.bytes = 0, 0
}

// last returns room's last seq in the log, 0 if it has none there.
func (u *unmoved) last(room string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if messages := u.rooms[room]; len(messages) > 0 {
		return int64(messages[len(messages)-1].Seq)
	}
	return 0
}

// page returns room's messages that the page q asks for, of the newest
// keep seqs. It also returns the highest seq that falls out of those keep,
// for the query of the moved ones: math.MinInt64 when the log has none of
// room's.
func (u *unmoved) page(room string, q partyline.HistoryQuery, keep int64) (page []partyline.Message, lowest int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	messages := u.rooms[room] // contiguous in seq, as a room's log is
	if len(messages) == 0 {
		return nil, math.MinInt64
	}
	lowest = int64(messages[len(messages)-1].Seq) - keep // keep is MaxInt64 when all are kept
	kept := messages[max(0, int64(len(messages))-keep):]
	return slices.Clone(q.Page(kept)), lowest
}

// nearest returns the q.Limit messages of page, in seq order, nearest the
// bound q pages from: the first ones going forward, the last ones back.
func nearest(page []partyline.Message, q partyline.HistoryQuery) []partyline.Message {
	if len(page) <= q.Limit {
		return page
	}
	if q.Forward {
		return page[:q.Limit]
	}
	return page[len(page)-q.Limit:]
}

// mergePage merges stored and recent, each in seq order, into one page of
// at most q.Limit messages nearest q's bound. A message in both (moved
// while History read) counts once.
func mergePage(stored, recent []partyline.Message, q partyline.HistoryQuery) []partyline.Message {
	if len(recent) == 0 {
		return stored
	}
	merged := make([]partyline.Message, 0, len(stored)+len(recent))
	i, j := 0, 0
	for i < len(stored) || j < len(recent) {
		switch {
		case j == len(recent) || i < len(stored) && stored[i].Seq < recent[j].Seq:
			merged = append(merged, stored[i])
			i++
		case i == len(stored) || recent[j].Seq < stored[i].Seq:
			merged = append(merged, recent[j])
			j++
		default: // the same seq
			merged = append(merged, recent[j])
			i, j = i+1, j+1
		}
	}
	return nearest(merged, q)
}
