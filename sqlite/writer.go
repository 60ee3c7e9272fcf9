package sqlite

import (
	"context"
	"database/sql"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/groupcommit"
)

// newQueue returns the group-commit queue of a Store whose writer goroutine
// commits with commit.
func newQueue(commit groupcommit.CommitFunc[partyline.Message]) *groupcommit.Queue[partyline.Message] {
	return groupcommit.New(commit, groupcommit.Options{Writers: 1, Timeout: writeTimeout})
}

// commit is the writer goroutine's commit: it stores batch in one
// transaction, giving each message its seq.
func (s *Store) commit(ctx context.Context, batch []partyline.Message) error {
	if err := s.commitBatch(ctx, batch); err != nil {
		return unavailable("append", err)
	}
	s.commits.Add(1)
	return nil
}

// commitBatch stores batch in one transaction.
func (s *Store) commitBatch(ctx context.Context, batch []partyline.Message) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.storeMessages(ctx, tx, batch); err != nil {
		return err
	}
	return tx.Commit()
}

// storeMessages assigns each message its seq and inserts it, trimming rooms
// whose seq crossed a trimming step, and records the message events of the
// routes that want them, all in tx. With no such route it adds nothing to
// the transaction.
func (s *Store) storeMessages(ctx context.Context, tx *sql.Tx, batch []partyline.Message) error {
	for room, messages := range byRoom(batch) {
		if err := s.assignSeqs(ctx, tx, room, messages); err != nil {
			return err
		}
	}
	insert := tx.StmtContext(ctx, s.insert)
	for _, m := range batch {
		var data any
		if m.Data != nil {
			data = []byte(m.Data)
		}
		if _, err := insert.ExecContext(ctx, m.Room, m.Seq, m.ID, m.Username, m.Content, data, m.Timestamp); err != nil {
			return err
		}
	}
	if len(s.webhookRoutes()[partyline.EventMessage]) > 0 {
		events := make([]partyline.WebhookEvent, len(batch))
		for i, m := range batch {
			events[i] = partyline.MessageEvent(m)
		}
		return s.record(ctx, tx, events...)
	}
	return nil
}

const insertMessage = `
INSERT INTO messages (room, seq, id, username, content, data, timestamp_ms)
VALUES (?, ?, ?, ?, ?, ?, ?)`

// byRoom groups batch by room, keeping each room's messages in queue order.
// The pointers point into batch.
func byRoom(batch []partyline.Message) map[string][]*partyline.Message {
	rooms := make(map[string][]*partyline.Message)
	for i := range batch {
		m := &batch[i]
		rooms[m.Room] = append(rooms[m.Room], m)
	}
	return rooms
}

// assignSeqs bumps room's last seq by len(messages), gives the messages the
// seqs in between in order, and trims the room when its seq crossed a
// multiple of trimEvery.
func (s *Store) assignSeqs(ctx context.Context, tx *sql.Tx, room string, messages []*partyline.Message) error {
	n := int64(len(messages))
	var last int64
	if err := tx.StmtContext(ctx, s.bump).QueryRowContext(ctx, room, n).Scan(&last); err != nil {
		return err
	}
	for i, m := range messages {
		m.Seq = uint64(last - n + 1 + int64(i))
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
