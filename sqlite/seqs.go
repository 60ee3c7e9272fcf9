package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/partyline/partyline"
)

// maxCachedRooms bounds lastSeqs: past it the cache starts over, so rooms
// that come and go cannot grow it without end.
const maxCachedRooms = 1 << 18

// lastSeqs caches each room's committed last seq, so that a transaction
// assigning seqs reads the rooms table (or the log's messages, which the
// rooms table gets at the next move) only for a room it has not met
// before. The Store's flock makes this process the file's only writer, and
// mu makes each transaction that assigns seqs, and each move, the cache's
// and the log's only user from before it begins until it has settled, so
// what the cache holds is what the rooms table and the log hold.
//
// mu is taken before the write connection and released after it, and the
// transactions that do not assign seqs (and the checkpointer, which holds
// the write connection for a moment) never take it, so no two wait for
// each other in opposite order.
type lastSeqs struct {
	mu        sync.Mutex
	committed map[string]int64 // room → last seq committed
	limit     int              // how many rooms the cache holds at most
	logged    *unmoved         // whose last seqs the rooms table has yet to get

	// bump's scratch, kept from batch to batch: a batch's rooms by their
	// index in bumps.
	index map[string]int
	bumps []roomBump
}

// newLastSeqs returns an empty cache of the seqs committed to the rooms
// table or, later ones, to the log that logged holds.
func newLastSeqs(logged *unmoved) *lastSeqs {
	return &lastSeqs{committed: make(map[string]int64), limit: maxCachedRooms, logged: logged, index: make(map[string]int)}
}

// roomBump is what one transaction does to one room's seq: from the last
// seq committed before it (before) to the one it commits (after).
type roomBump struct {
	room          string
	before, after int64
}

// assign runs store, a transaction that assigns seqs and returns its rooms'
// bumps, holding mu until its outcome is known. Once store has committed
// the cache takes the bumps; when it failed, the cache forgets the bumped
// rooms, so the next transaction reads them back from the log or the
// rooms table (whatever a failed COMMIT left there).
func (c *lastSeqs) assign(store func() ([]roomBump, error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	bumps, err := store()
	if err != nil {
		for _, b := range bumps {
			delete(c.committed, b.room)
		}
		return err
	}
	if len(c.committed)+len(bumps) > c.limit {
		clear(c.committed)
	}
	for _, b := range bumps {
		c.committed[b.room] = b.after
	}
	clear(bumps) // drop the rooms' names
	c.bumps = bumps[:0]
	return nil
}

// bump gives each message of batch the next seq of its room, in batch
// order, and returns what it did to each room, rooms in order of first
// appearance, in c.bumps for assign to give back. It reads from tx the
// last seq of each room the cache lacks. The caller must hold mu.
func (c *lastSeqs) bump(ctx context.Context, tx *sql.Tx, batch []partyline.Message) ([]roomBump, error) {
	index, bumps := c.index, c.bumps[:0]
	clear(index)
	for i := range batch {
		m := &batch[i]
		at, seen := index[m.Room]
		if !seen {
			last, err := c.last(ctx, tx, m.Room)
			if err != nil {
				return nil, err
			}
			at = len(bumps)
			index[m.Room] = at
			bumps = append(bumps, roomBump{room: m.Room, before: last, after: last})
		}
		bumps[at].after++
		m.Seq = uint64(bumps[at].after)
	}
	return bumps, nil
}

// last returns room's committed last seq, 0 for a room without messages,
// from the cache, or else the log's, or else the rooms table's through tx.
func (c *lastSeqs) last(ctx context.Context, tx *sql.Tx, room string) (int64, error) {
	if last, ok := c.committed[room]; ok {
		return last, nil
	}
	if last := c.logged.last(room); last > 0 {
		return last, nil
	}
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT last_seq FROM rooms WHERE room = ?`, room).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return last, err
}
