package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"

	"github.com/partyline/partyline"
)

// An appendRequest is one Append waiting for the writer goroutine.
type appendRequest struct {
	ctx   context.Context
	msg   partyline.Message // Seq is set by the writer
	state atomic.Int32      // requestQueued, then requestTaken or requestAbandoned
	done  chan error        // receives the outcome once the writer took it
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

// abandon withdraws req from the queue; false means the writer already took
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

// runWriter is the writer goroutine: it commits the queue batch by batch
// until Close closes the queue, then returns.
func (s *Store) runWriter() {
	defer close(s.writerDone)
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
// request.
func (s *Store) commit(batch []*appendRequest) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), latestDeadline(batch))
	defer cancel()
	err := s.commitBatch(ctx, batch)
	if err != nil {
		err = unavailable("append", err)
	} else {
		s.commits.Add(1)
	}
	for _, req := range batch {
		req.done <- err
	}
}

// latestDeadline returns when a transaction carrying batch must end: when
// the last of its appends gives up, at most writeTimeout from now.
func latestDeadline(batch []*appendRequest) time.Time {
	limit := time.Now().Add(writeTimeout)
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

// commitBatch assigns each message its seq and inserts the batch, trimming
// rooms whose seq crossed a trimming step, all in one transaction.
func (s *Store) commitBatch(ctx context.Context, batch []*appendRequest) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for room, requests := range byRoom(batch) {
		if err := s.assignSeqs(ctx, tx, room, requests); err != nil {
			return err
		}
	}
	insert, err := tx.PrepareContext(ctx, insertMessage)
	if err != nil {
		return err
	}
	defer insert.Close()
	for _, req := range batch {
		m := req.msg
		var data any
		if m.Data != nil {
			data = []byte(m.Data)
		}
		if _, err := insert.ExecContext(ctx, m.Room, m.Seq, m.ID, m.Username, m.Content, data, m.Timestamp); err != nil {
			return err
		}
	}
	return tx.Commit()
}

const insertMessage = `
INSERT INTO messages (room, seq, id, username, content, data, timestamp_ms)
VALUES (?, ?, ?, ?, ?, ?, ?)`

// byRoom groups batch by room, keeping each room's requests in queue order.
func byRoom(batch []*appendRequest) map[string][]*appendRequest {
	rooms := make(map[string][]*appendRequest)
	for _, req := range batch {
		rooms[req.msg.Room] = append(rooms[req.msg.Room], req)
	}
	return rooms
}

// assignSeqs bumps room's last seq by len(requests), gives the requests the
// seqs in between in order, and trims the room when its seq crossed a
// multiple of trimEvery.
func (s *Store) assignSeqs(ctx context.Context, tx *sql.Tx, room string, requests []*appendRequest) error {
	n := int64(len(requests))
	var last int64
	if err := tx.QueryRowContext(ctx, bumpRoom, room, n).Scan(&last); err != nil {
		return err
	}
	for i, req := range requests {
		req.msg.Seq = uint64(last - n + 1 + int64(i))
	}
	if cutoff := last - s.keep; cutoff > 0 && (last-n)/s.trimEvery != last/s.trimEvery {
		_, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE room = ? AND seq <= ?`, room, cutoff)
		return err
	}
	return nil
}

const bumpRoom = `
INSERT INTO rooms (room, last_seq) VALUES (?1, ?2)
ON CONFLICT (room) DO UPDATE SET last_seq = last_seq + excluded.last_seq
RETURNING last_seq`
