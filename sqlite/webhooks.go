package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/eventlog"
)

var (
	_ partyline.EventLog        = (*Store)(nil)
	_ partyline.IdempotentStore = (*Store)(nil)
)

// SetWebhookRoutes implements partyline.EventLog.
func (s *Store) SetWebhookRoutes(routes []partyline.WebhookRoute) {
	r := eventlog.NewRoutes(routes)
	s.routes.Store(&r)
}

// webhookRoutes returns the routes SetWebhookRoutes set; none before.
func (s *Store) webhookRoutes() eventlog.Routes {
	if r := s.routes.Load(); r != nil {
		return *r
	}
	return nil
}

// record inserts events in tx for the routes that want them.
func (s *Store) record(ctx context.Context, tx *sql.Tx, events ...partyline.WebhookEvent) error {
	rows, err := s.webhookRoutes().Rows(events...)
	if err != nil || len(rows) == 0 {
		return err
	}
	now := time.Now().UnixMilli()
	return s.insertEvents.exec(ctx, tx, len(rows), func(args []any, i int) []any {
		return append(args, rows[i].URL, now, rows[i].Body)
	})
}

const insertEventsHead = `INSERT OR FAIL INTO webhook_outbox (url, recorded_ms, body) VALUES `

// inTx runs f in a transaction on the write connection, bounded by
// writeTimeout, and commits it unless f fails. Inside f only tx may touch
// the write connection: the pool has no other to give.
func (s *Store) inTx(ctx context.Context, op string, f func(ctx context.Context, tx *sql.Tx) error) error {
	if s.closed.Load() {
		return errClosed(op)
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(op, err)
	}
	defer tx.Rollback()
	if err := f(ctx, tx); err != nil {
		return unavailable(op, err)
	}
	if err := tx.Commit(); err != nil {
		return unavailable(op, err)
	}
	return nil
}

// RecordEvent implements partyline.EventLog.
func (s *Store) RecordEvent(ctx context.Context, e partyline.WebhookEvent) error {
	if len(s.webhookRoutes()[e.Type]) == 0 {
		return nil
	}
	if _, err := e.MarshalJSON(); err != nil {
		return fmt.Errorf("sqlite: record event: %w", err)
	}
	return s.inTx(ctx, "record event", func(ctx context.Context, tx *sql.Tx) error {
		return s.record(ctx, tx, e)
	})
}

// PresenceJoined implements partyline.EventLog.
func (s *Store) PresenceJoined(ctx context.Context, room, user string, now time.Time) error {
	return s.inTx(ctx, "presence joined", func(ctx context.Context, tx *sql.Tx) error {
		var due sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT leave_due_ms FROM webhook_presence WHERE room = ? AND username = ?`, room, user).Scan(&due)
		switch {
		case err == nil && due.Valid: // leaving: a flap, called off silently
			_, err = tx.ExecContext(ctx, `UPDATE webhook_presence SET leave_due_ms = NULL WHERE room = ? AND username = ?`, room, user)
			return err
		case err == nil: // present already
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var first bool
		if err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM webhook_presence WHERE room = ?)`, room).Scan(&first); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_presence (room, username) VALUES (?, ?)`, room, user); err != nil {
			return err
		}
		return s.record(ctx, tx, eventlog.JoinedEvents(room, user, first, now)...)
	})
}

// PresenceLeft implements partyline.EventLog.
func (s *Store) PresenceLeft(ctx context.Context, room, user string, due time.Time) error {
	return s.inTx(ctx, "presence left", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
UPDATE webhook_presence SET leave_due_ms = ?
WHERE room = ? AND username = ? AND leave_due_ms IS NULL`, due.UnixMilli(), room, user)
		return err
	})
}

// SweepPresence implements partyline.EventLog. It looks for due leaves on
// a read connection first, so a sweep with nothing to do writes nothing.
// Rooms are swept in name order, their users in name order.
func (s *Store) SweepPresence(ctx context.Context, now time.Time) error {
	var due bool
	err := s.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_presence WHERE leave_due_ms <= ?)`, now.UnixMilli()).Scan(&due)
	if err != nil {
		return unavailable("sweep presence", err)
	}
	if !due {
		return nil
	}
	return s.inTx(ctx, "sweep presence", func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM webhook_presence WHERE leave_due_ms <= ? RETURNING room, username`, now.UnixMilli())
		if err != nil {
			return err
		}
		left, err := scanRoomUsers(rows)
		if err != nil {
			return err
		}
		for room, users := range eventlog.ByRoom(left) {
			var vacated bool
			if err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM webhook_presence WHERE room = ?)`, room).Scan(&vacated); err != nil {
				return err
			}
			if err := s.record(ctx, tx, eventlog.LeftEvents(room, users, vacated, now)...); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanRoomUsers reads (room, username) rows and closes rows.
func scanRoomUsers(rows *sql.Rows) ([]partyline.RoomUser, error) {
	defer rows.Close()
	var out []partyline.RoomUser
	for rows.Next() {
		var ru partyline.RoomUser
		if err := rows.Scan(&ru.Room, &ru.User); err != nil {
			return nil, err
		}
		out = append(out, ru)
	}
	return out, rows.Err()
}

// PresentUsers implements partyline.EventLog.
func (s *Store) PresentUsers(ctx context.Context) ([]partyline.RoomUser, error) {
	rows, err := s.read.QueryContext(ctx, `
SELECT room, username FROM webhook_presence WHERE leave_due_ms IS NULL ORDER BY room, username`)
	if err != nil {
		return nil, unavailable("present users", err)
	}
	users, err := scanRoomUsers(rows)
	if err != nil {
		return nil, unavailable("present users", err)
	}
	return users, nil
}

// DueLeaves implements partyline.EventLog.
func (s *Store) DueLeaves(ctx context.Context, now time.Time) ([]partyline.RoomUser, error) {
	rows, err := s.read.QueryContext(ctx, `
SELECT room, username FROM webhook_presence WHERE leave_due_ms <= ? ORDER BY room, username`, now.UnixMilli())
	if err != nil {
		return nil, unavailable("due leaves", err)
	}
	users, err := scanRoomUsers(rows)
	if err != nil {
		return nil, unavailable("due leaves", err)
	}
	return users, nil
}

// PendingEvents implements partyline.EventLog.
func (s *Store) PendingEvents(ctx context.Context, url string, limit int) ([]partyline.PendingEvent, error) {
	rows, err := s.read.QueryContext(ctx, `
SELECT pos, recorded_ms, body FROM webhook_outbox WHERE url = ? ORDER BY pos LIMIT ?`, url, max(limit, 0))
	if err != nil {
		return nil, unavailable("pending events", err)
	}
	defer rows.Close()
	var events []partyline.PendingEvent
	for rows.Next() {
		var e partyline.PendingEvent
		var recorded int64
		if err := rows.Scan(&e.Pos, &recorded, &e.Body); err != nil {
			return nil, unavailable("pending events", err)
		}
		e.Recorded = time.UnixMilli(recorded)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("pending events", err)
	}
	return events, nil
}

// AckEvents implements partyline.EventLog.
func (s *Store) AckEvents(ctx context.Context, url string, pos []int64) error {
	if len(pos) == 0 {
		return nil
	}
	list, err := json.Marshal(pos)
	if err != nil {
		return err
	}
	return s.inTx(ctx, "ack events", func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
DELETE FROM webhook_outbox WHERE url = ? AND pos IN (SELECT value FROM json_each(?))`, url, list)
		return err
	})
}

// CountPending implements partyline.EventLog.
func (s *Store) CountPending(ctx context.Context, url string) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM webhook_outbox WHERE url = ?`, url).Scan(&n); err != nil {
		return 0, unavailable("count pending", err)
	}
	return n, nil
}

// LeaseSender implements partyline.EventLog.
func (s *Store) LeaseSender(ctx context.Context, url, owner string, now, until time.Time) (bool, error) {
	var held bool
	err := s.inTx(ctx, "lease sender", func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, leaseSender, url, owner, until.UnixMilli(), now.UnixMilli()).Scan(&held)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	return held, err
}

// leaseSender takes or renews the lease: the row is written, and returned,
// when the URL has no lease, when ?2 holds it, or when it expired by ?4.
const leaseSender = `
INSERT INTO webhook_leases (url, owner, until_ms) VALUES (?1, ?2, ?3)
ON CONFLICT (url) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
WHERE owner = excluded.owner OR until_ms <= ?4
RETURNING true`

// AppendOnce implements partyline.IdempotentStore. Its transaction takes
// its turn on the write connection like a batch of the writer's, and
// prunes keys older than the window at most once a minute.
func (s *Store) AppendOnce(ctx context.Context, key string, messages []partyline.Message, now time.Time) ([]partyline.Message, bool, error) {
	stored := slices.Clone(messages)
	var replayed bool
	err := s.seqs.assign(func() (bumps []roomBump, err error) {
		err = s.inTx(ctx, "append once", func(ctx context.Context, tx *sql.Tx) error {
			earlier, live, err := recallKey(ctx, tx, key, now)
			switch {
			case err != nil:
				return err
			case live:
				stored, replayed = earlier, true
				return nil
			}
			if bumps, err = s.storeMessages(ctx, tx, stored); err != nil {
				return err
			}
			return s.saveKey(ctx, tx, key, stored, now)
		})
		if err == nil && !replayed {
			s.unmoved.add(stored, time.Now())
		}
		return bumps, err
	})
	if err != nil {
		return nil, false, err
	}
	s.moveIfDue(ctx)
	return stored, replayed, nil
}

// Recall implements partyline.IdempotentStore.
func (s *Store) Recall(ctx context.Context, key string, now time.Time) ([]partyline.Message, bool, error) {
	return recallKey(ctx, s.read, key, now)
}

// recallKey returns, through q (a read connection or the write
// transaction), the messages committed with key, if it is live at now.
func recallKey(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, key string, now time.Time) ([]partyline.Message, bool, error) {
	var created int64
	var result []byte
	err := q.QueryRowContext(ctx, `SELECT created_ms, result FROM idempotency_keys WHERE key = ?`, key).Scan(&created, &result)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case !eventlog.IsLive(time.UnixMilli(created), now):
		return nil, false, nil
	}
	stored, err := eventlog.DecodeMessages(result)
	return stored, err == nil, err
}

// saveKey records in tx that key stored messages at now, and prunes keys
// older than the window at most once a minute.
func (s *Store) saveKey(ctx context.Context, tx *sql.Tx, key string, messages []partyline.Message, now time.Time) error {
	result, err := eventlog.EncodeMessages(messages)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO idempotency_keys (key, created_ms, result) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET created_ms = excluded.created_ms, result = excluded.result`,
		key, now.UnixMilli(), result)
	if err != nil {
		return err
	}
	if last := s.keysPruned.Load(); now.UnixMilli()-last >= time.Minute.Milliseconds() && s.keysPruned.CompareAndSwap(last, now.UnixMilli()) {
		_, err = tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_ms <= ?`,
			now.Add(-partyline.IdempotencyWindow).UnixMilli())
	}
	return err
}
