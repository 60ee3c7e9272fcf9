package postgres

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/partyline/partyline"
)

// An appendRequest is one Append waiting for a writer goroutine.
type appendRequest struct {
	ctx   context.Context
	msg   partyline.Message // Seq is set by the writer
	state atomic.Int32      // requestQueued, then requestTaken or requestAbandoned
	done  chan error        // receives the outcome once a writer took it
}

const (
	requestQueued int32 = iota
	requestTaken
	requestAbandoned
)

func newAppendRequest(ctx context.Context, msg partyline.Message) *appendRequest {
	return &appendRequest{ctx: ctx, msg: msg, done: make(chan error, 1)}
}

// take claims req for a batch; false means its caller already gave up.
func (req *appendRequest) take() bool {
	return req.state.CompareAndSwap(requestQueued, requestTaken)
}

// abandon withdraws req from the queue; false means a writer already took
// it and will report the outcome.
func (req *appendRequest) abandon() bool {
	return req.state.CompareAndSwap(requestQueued, requestAbandoned)
}

// result is what Append returns once the writer reported err.
func (req *appendRequest) result(err error) (partyline.Message, error) {
	if err != nil {
		return partyline.Message{}, err
	}
	return req.msg, nil
}

// runWriter is one writer goroutine: it commits batches from the queue
// until Close closes it.
func (s *Store) runWriter() {
	for req := range s.queue {
		s.commit(s.collect(req))
	}
}

// collect returns first and whatever else is queued, up to maxBatch, leaving
// out requests whose callers gave up.
func (s *Store) collect(first *appendRequest) []*appendRequest {
	batch := make([]*appendRequest, 0, min(len(s.queue)+1, maxBatch))
	if first.take() {
		batch = append(batch, first)
	}
	for len(batch) < maxBatch {
		select {
		case req, ok := <-s.queue:
			if !ok {
				return batch
			}
			if req.take() {
				batch = append(batch, req)
			}
		default:
			return batch
		}
	}
	return batch
}

// commit stores batch in one transaction and reports the outcome to each
// request. A failure before anything reached the server, such as a pooled
// connection that died while idle, is retried once on a fresh connection.
func (s *Store) commit(batch []*appendRequest) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), latestDeadline(batch))
	defer cancel()
	err := s.commitBatch(ctx, batch)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		err = s.commitBatch(ctx, batch)
	}
	if err != nil {
		err = unavailable("append", err)
	}
	for _, req := range batch {
		req.done <- err
	}
}

// latestDeadline returns when a transaction carrying batch must end: when
// the last of its appends gives up, at most appendTimeout from now.
func latestDeadline(batch []*appendRequest) time.Time {
	limit := time.Now().Add(appendTimeout)
	var latest time.Time
	for _, req := range batch {
		d, ok := req.ctx.Deadline()
		if !ok || d.After(limit) {
			return limit
		}
		if d.After(latest) {
			latest = d
		}
	}
	return latest
}

// commitBatch stores batch in one round trip: a pipeline that PostgreSQL
// runs as one implicit transaction. It bumps each room's last seq (locking
// rooms in sorted order), inserts the messages under the seqs below it,
// and trims rooms whose seq crossed a trimming step; then it gives each
// request its seq.
func (s *Store) commitBatch(ctx context.Context, batch []*appendRequest) error {
	rooms := byRoom(batch)
	pipeline := &pgx.Batch{}
	for _, r := range rooms {
		pipeline.Queue(bumpRoom, r.room, len(r.requests)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&r.last)
		})
	}
	pipeline.Queue(insertMessages, messageColumns(rooms)...)
	if s.keep != math.MaxInt64 {
		for _, r := range rooms {
			pipeline.Queue(trimRoom, r.room, len(r.requests), s.keep, s.trimEvery)
		}
	}
	if err := s.pool.SendBatch(ctx, pipeline).Close(); err != nil {
		return err
	}
	for _, r := range rooms {
		for i, req := range r.requests {
			req.msg.Seq = uint64(r.last - int64(len(r.requests)-1-i))
		}
	}
	return nil
}

// roomBatch is the part of a batch bound for one room.
type roomBatch struct {
	room     string
	requests []*appendRequest // in queue order
	last     int64            // the room's last seq after the batch
}

// byRoom groups batch by room, sorted by room name: the order in which
// every writer on every node locks rooms.
func byRoom(batch []*appendRequest) []*roomBatch {
	index := make(map[string]*roomBatch)
	var rooms []*roomBatch
	for _, req := range batch {
		r := index[req.msg.Room]
		if r == nil {
			r = &roomBatch{room: req.msg.Room}
			index[r.room] = r
			rooms = append(rooms, r)
		}
		r.requests = append(r.requests, req)
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
		for i, req := range r.requests {
			m := req.msg
			roomNames, ids, usernames = append(roomNames, m.Room), append(ids, m.ID), append(usernames, m.Username)
			below = append(below, int64(len(r.requests)-1-i))
			timestamps = append(timestamps, m.Timestamp)
			contents, data = append(contents, []byte(m.Content)), append(data, m.Data)
		}
	}
	return []any{roomNames, below, ids, usernames, contents, data, timestamps}
}
