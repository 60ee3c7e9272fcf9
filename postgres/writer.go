package postgres

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/eventlog"
	"github.com/partyline/partyline/internal/groupcommit"
)

// newQueue returns the group-commit queue of a Store whose writer
// goroutines commit with commit. A room's messages are committed by one
// writer at a time, as their commits lock its row: a room whose row a
// transaction elsewhere holds locked (another node's, cut off mid-commit)
// then stalls one writer and its own messages, not every writer and every
// room (SPEC §13).
func newQueue(commit groupcommit.CommitFunc[partyline.Message], writers int) *groupcommit.Queue[partyline.Message] {
	return groupcommit.New(commit, groupcommit.Options[partyline.Message]{
		Writers: writers,
		Timeout: appendTimeout,
		Key:     func(m partyline.Message) string { return m.Room },
	})
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
// runs as one implicit transaction (see queueMessages); then it gives each
// message its seq.
func (s *Store) commitBatch(ctx context.Context, batch []partyline.Message) error {
	rooms := byRoom(batch)
	pipeline := &pgx.Batch{}
	if err := s.queueMessages(pipeline, rooms); err != nil {
		return err
	}
	if err := s.pool.SendBatch(ctx, pipeline).Close(); err != nil {
		return err
	}
	assignSeqs(rooms)
	return nil
}

// queueMessages queues on pipeline the statements that store rooms'
// messages: it bumps each room's last seq (locking rooms in sorted order),
// inserts the messages under the seqs below it, records their message
// events when a route wants them, and trims rooms whose seq crossed a
// trimming step. The bumps fill in each room's last; assignSeqs then gives
// the messages their seqs.
func (s *Store) queueMessages(pipeline *pgx.Batch, rooms []*roomBatch) error {
	for _, r := range rooms {
		pipeline.Queue(bumpRoom, r.room, len(r.messages)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&r.last)
		})
	}
	pipeline.Queue(insertMessages, messageColumns(rooms)...)
	if urls := s.webhookRoutes()[partyline.EventMessage]; len(urls) > 0 {
		columns, err := messageEventColumns(rooms, urls)
		if err != nil {
			return err
		}
		pipeline.Queue(insertMessageEvents, columns...)
	}
	if s.keep != math.MaxInt64 {
		for _, r := range rooms {
			pipeline.Queue(trimRoom, r.room, len(r.messages), s.keep, s.trimEvery)
		}
	}
	return nil
}

// assignSeqs gives each message of rooms its seq, counting down from its
// room's last.
func assignSeqs(rooms []*roomBatch) {
	for _, r := range rooms {
		for i, m := range r.messages {
			m.Seq = uint64(r.last - int64(len(r.messages)-1-i))
		}
	}
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
	// insertMessageEvents records each message's event for each URL, in
	// the order of the URLs and then of the messages, which ascend in seq
	// within a room: positions follow the ORDER BY, as nextval is evaluated
	// above the sort.
	insertMessageEvents = `
INSERT INTO partyline_webhook_outbox (url, recorded_ms, body)
SELECT u.url, $6, m.head || convert_to((r.last_seq - m.below)::text, 'UTF8') || m.tail
FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bytea[]) WITH ORDINALITY AS m(room, below, head, tail, n)
JOIN partyline_rooms r ON r.room = m.room
CROSS JOIN unnest($5::text[]) WITH ORDINALITY AS u(url, k)
ORDER BY u.k, m.n`
	// trimRoom deletes the room's messages older than the newest $3 ($3 =
	// keep) when the bump by $2 crossed a multiple of $4 (trimEvery).
	trimRoom = `
DELETE FROM partyline_messages m USING partyline_rooms r
WHERE r.room = $1 AND m.room = $1 AND m.seq <= r.last_seq - $3
	AND (r.last_seq - $2) / $4 <> r.last_seq / $4`
)

// messageEventColumns returns the message events of rooms for urls as the
// arguments insertMessageEvents takes: each event's JSON is cut where its
// seq goes (eventlog.SplitMessageEvent), for the statement to put in the
// seq the room's bump assigned.
func messageEventColumns(rooms []*roomBatch, urls []string) ([]any, error) {
	var roomNames []string
	var below []int64
	var heads, tails [][]byte
	for _, r := range rooms {
		for i, m := range r.messages {
			head, tail, err := eventlog.SplitMessageEvent(*m)
			if err != nil {
				return nil, err
			}
			roomNames, below = append(roomNames, m.Room), append(below, int64(len(r.messages)-1-i))
			heads, tails = append(heads, head), append(tails, tail)
		}
	}
	return []any{roomNames, below, heads, tails, urls, time.Now().UnixMilli()}, nil
}

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
