package postgres

import (
	"cmp"
	"context"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/groupcommit"
)

// newQueue returns the group-commit queue of a Store whose writer
// goroutines commit with commit.
func newQueue(commit groupcommit.CommitFunc[partyline.Message], writers int) *groupcommit.Queue[partyline.Message] {
	return groupcommit.New(commit, groupcommit.Options{Writers: writers, Timeout: appendTimeout})
}

// commit is a writer goroutine's commit: it stores batch in one
// transaction, giving each message its seq. A failure before anything
// reached the server, such as a pooled connection that died while idle, is
// retried once on a fresh connection.
func (s *Store) commit(ctx context.Context, batch []partyline.Message) error {
	err := s.commitBatch(ctx, batch)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		err = s.commitBatch(ctx, batch)
	}
	if err != nil {
		return unavailable("append", err)
	}
	return nil
}

// commitBatch stores batch in one round trip: a pipeline that PostgreSQL
// runs as one implicit transaction. It bumps each room's last seq (locking
// rooms in sorted order), inserts the messages under the seqs below it,
// and trims rooms whose seq crossed a trimming step; then it gives each
// message its seq.
func (s *Store) commitBatch(ctx context.Context, batch []partyline.Message) error {
	rooms := byRoom(batch)
	pipeline := &pgx.Batch{}
	for _, r := range rooms {
		pipeline.Queue(bumpRoom, r.room, len(r.messages)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&r.last)
		})
	}
	pipeline.Queue(insertMessages, messageColumns(rooms)...)
	if s.keep != math.MaxInt64 {
		for _, r := range rooms {
			pipeline.Queue(trimRoom, r.room, len(r.messages), s.keep, s.trimEvery)
		}
	}
	if err := s.pool.SendBatch(ctx, pipeline).Close(); err != nil {
		return err
	}
	for _, r := range rooms {
		for i, m := range r.messages {
			m.Seq = uint64(r.last - int64(len(r.messages)-1-i))
		}
	}
	return nil
}

// roomBatch is the part of a batch bound for one room.
type roomBatch struct {
	room     string
	messages []*partyline.Message // in queue order, pointing into the batch
	last     int64                // the room's last seq after the batch
}

// byRoom groups batch by room, sorted by room name: the order in which
// every writer on every node locks rooms.
func byRoom(batch []partyline.Message) []*roomBatch {
	index := make(map[string]*roomBatch)
	var rooms []*roomBatch
	for i := range batch {
		m := &batch[i]
		r := index[m.Room]
		if r == nil {
			r = &roomBatch{room: m.Room}
			index[r.room] = r
			rooms = append(rooms, r)
		}
		r.messages = append(r.messages, m)
	}
	slices.SortFunc(rooms, func(a, b *roomBatch) int { return cmp.Compare(a.room, b.room) })
	return rooms
}

const (
	bumpRoom = `
INSERT INTO partyline_rooms AS r (room, last_seq) VALUES ($1, $2)
ON CONFLICT (room) DO UPDATE SET last_seq = r.last_seq + excluded.last_seq
RETURNING last_seq`
	// insertMessages takes each message's distance below its room's new
	// last seq, which the bumps above set in the same transaction.
	insertMessages = `
INSERT INTO partyline_messages (room, seq, id, username, content, data, timestamp_ms)
SELECT m.room, r.last_seq - m.below, m.id, m.username, m.content, m.data, m.timestamp_ms
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::bigint[])
	AS m(room, below, id, username, content, data, timestamp_ms)
JOIN partyline_rooms r ON r.room = m.room`
	// trimRoom deletes the room's messages older than the newest $3 ($3 =
	// keep) when the bump by $2 crossed a multiple of $4 (trimEvery).
	trimRoom = `
DELETE FROM partyline_messages m USING partyline_rooms r
WHERE r.room = $1 AND m.room = $1 AND m.seq <= r.last_seq - $3
	AND (r.last_seq - $2) / $4 <> r.last_seq / $4`
)

// messageColumns returns the messages of rooms as the seven arrays
// insertMessages takes.
func messageColumns(rooms []*roomBatch) []any {
	var roomNames, ids, usernames []string
	var below, timestamps []int64
	var contents, data [][]byte
	for _, r := range rooms {
		for i, m := range r.messages {
			roomNames, ids, usernames = append(roomNames, m.Room), append(ids, m.ID), append(usernames, m.Username)
			below = append(below, int64(len(r.messages)-1-i))
			timestamps = append(timestamps, m.Timestamp)
			contents, data = append(contents, []byte(m.Content)), append(data, m.Data)
		}
	}
	return []any{roomNames, below, ids, usernames, contents, data, timestamps}
}
