package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// querier is what record needs of a pgx.Tx or the pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// record inserts events for the routes that want them, in order.
func (s *Store) record(ctx context.Context, q querier, events ...partyline.WebhookEvent) error {
	rows, err := s.webhookRoutes().Rows(events...)
	if err != nil || len(rows) == 0 {
		return err
	}
	urls, bodies := make([]string, len(rows)), make([][]byte, len(rows))
	for i, row := range rows {
		urls[i], bodies[i] = row.URL, row.Body
	}
	_, err = q.Exec(ctx, insertEvents, urls, bodies, time.Now().UnixMilli())
	return err
}

const insertEvents = `
INSERT INTO partyline_webhook_outbox (url, recorded_ms, body)
SELECT e.url, $3, e.body FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS e(url, body, n)
ORDER BY e.n`

// inTx runs f in a transaction, bounded by appendTimeout, and commits it
// unless f fails.
func (s *Store) inTx(ctx context.Context, op string, f func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return f(ctx, tx) })
	if err != nil {
		return unavailable(op, err)
	}
	return nil
}

// exec runs one statement, bounded by appendTimeout.
func (s *Store) exec(ctx context.Context, op, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	if _, err := s.pool.Exec(ctx, sql, args...); err != nil {
		return unavailable(op, err)
	}
	return nil
}

// RecordEvent implements partyline.EventLog.
func (s *Store) RecordEvent(ctx context.Context, e partyline.WebhookEvent) error {
	if _, err := e.MarshalJSON(); err != nil {
		return fmt.Errorf("postgres: record event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	if err := s.record(ctx, s.pool, e); err != nil {
		return unavailable("record event", err)
	}
	return nil
}

// PresenceJoined implements partyline.EventLog.
func (s *Store) PresenceJoined(ctx context.Context, room, user string, now time.Time) error {
	return s.inTx(ctx, "presence joined", func(ctx context.Context, tx pgx.Tx) error {
		if joined, err := claimMember(ctx, tx, room, user); err != nil || !joined {
			return err
		}
		first := true
		if room != "" {
			var members int
			if err := tx.QueryRow(ctx, countMember, room).Scan(&members); err != nil {
				return err
			}
			first = members == 1
		}
		return s.record(ctx, tx, eventlog.JoinedEvents(room, user, first, now)...)
	})
}

// claimMember makes user a present member of room and reports whether the
// user is a new member. A user with a row is not: if leaving, the leave is
// called off. A row that a concurrent sweep deletes meanwhile is claimed
// anew once the sweep has committed.
func claimMember(ctx context.Context, tx pgx.Tx, room, user string) (bool, error) {
	for range 10 {
		var joined bool
		err := tx.QueryRow(ctx, insertMember, room, user).Scan(&joined)
		if !errors.Is(err, pgx.ErrNoRows) {
			return joined, err
		}
		tag, err := tx.Exec(ctx, callOffLeave, room, user)
		if err != nil || tag.RowsAffected() == 1 {
			return false, err
		}
		var present bool
		err = tx.QueryRow(ctx, `SELECT true FROM partyline_webhook_presence WHERE room = $1 AND username = $2`, room, user).Scan(&present)
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, err // nil: present already
		}
	}
	return false, fmt.Errorf("presence of %q in %q kept changing", user, room)
}

const (
	insertMember = `
INSERT INTO partyline_webhook_presence (room, username) VALUES ($1, $2)
ON CONFLICT (room, username) DO NOTHING
RETURNING true`
	callOffLeave = `
UPDATE partyline_webhook_presence SET leave_due_ms = NULL
WHERE room = $1 AND username = $2 AND leave_due_ms IS NOT NULL`
	// countMember adds one to the room's members under its row lock, where
	// arrivals and sweeps of the room take turns.
	countMember = `
INSERT INTO partyline_webhook_rooms AS r (room, members) VALUES ($1, 1)
ON CONFLICT (room) DO UPDATE SET members = r.members + 1
RETURNING members`
)

// PresenceLeft implements partyline.EventLog.
func (s *Store) PresenceLeft(ctx context.Context, room, user string, due time.Time) error {
	return s.exec(ctx, "presence left", `
UPDATE partyline_webhook_presence SET leave_due_ms = $3
WHERE room = $1 AND username = $2 AND leave_due_ms IS NULL`, room, user, due.UnixMilli())
}

// SweepPresence implements partyline.EventLog. It sweeps the rooms with
// due leaves one transaction each, in name order, their users in name
// order.
func (s *Store) SweepPresence(ctx context.Context, now time.Time) error {
	rooms, err := s.roomsWithDueLeaves(ctx, now)
	if err != nil {
		return unavailable("sweep presence", err)
	}
	for _, room := range rooms {
		err := s.inTx(ctx, "sweep presence", func(ctx context.Context, tx pgx.Tx) error {
			return s.sweepRoom(ctx, tx, room, now)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// roomsWithDueLeaves returns the rooms where a leave is due at now.
func (s *Store) roomsWithDueLeaves(ctx context.Context, now time.Time) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT room FROM partyline_webhook_presence WHERE leave_due_ms <= $1 ORDER BY room`, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// sweepRoom removes room's members whose leave is due at now and records
// their leaves. For a room other than "", it first locks the room's
// members row, so a concurrent sweep of the room waits and then finds
// nothing left to remove, and an arrival counts itself either before the
// sweep (no room_vacated) or after it (room_occupied).
func (s *Store) sweepRoom(ctx context.Context, tx pgx.Tx, room string, now time.Time) error {
	if room != "" {
		if _, err := tx.Exec(ctx, `SELECT FROM partyline_webhook_rooms WHERE room = $1 FOR UPDATE`, room); err != nil {
			return err
		}
	}
	rows, err := tx.Query(ctx, deleteDue, room, now.UnixMilli())
	if err != nil {
		return err
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(users) == 0 {
		return err
	}
	slices.Sort(users)
	vacated := false
	if room != "" {
		var members int
		err := tx.QueryRow(ctx, uncountMembers, room, len(users)).Scan(&members)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		vacated = members <= 0
		if vacated {
			if _, err := tx.Exec(ctx, `DELETE FROM partyline_webhook_rooms WHERE room = $1`, room); err != nil {
				return err
			}
		}
	}
	return s.record(ctx, tx, eventlog.LeftEvents(room, users, vacated, now)...)
}

const (
	// deleteDue deletes the room's members whose leave is due at $2,
	// skipping rows another transaction holds: a concurrent sweep of ""
	// (which has no members row) deletes those, and a join calling the
	// leave off makes them present again.
	deleteDue = `
DELETE FROM partyline_webhook_presence
WHERE room = $1 AND username IN (
	SELECT username FROM partyline_webhook_presence
	WHERE room = $1 AND leave_due_ms <= $2
	ORDER BY username
	FOR UPDATE SKIP LOCKED)
RETURNING username`
	uncountMembers = `
UPDATE partyline_webhook_rooms SET members = members - $2 WHERE room = $1
RETURNING members`
)

// PresentUsers implements partyline.EventLog.
func (s *Store) PresentUsers(ctx context.Context) ([]partyline.RoomUser, error) {
	return s.roomUsers(ctx, "present users", `
SELECT room, username FROM partyline_webhook_presence WHERE leave_due_ms IS NULL ORDER BY room, username`)
}

// DueLeaves implements partyline.EventLog.
func (s *Store) DueLeaves(ctx context.Context, now time.Time) ([]partyline.RoomUser, error) {
	return s.roomUsers(ctx, "due leaves", `
SELECT room, username FROM partyline_webhook_presence WHERE leave_due_ms <= $1 ORDER BY room, username`, now.UnixMilli())
}

// roomUsers runs a query of (room, username) rows.
func (s *Store) roomUsers(ctx context.Context, op, query string, args ...any) ([]partyline.RoomUser, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, unavailable(op, err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (partyline.RoomUser, error) {
		var ru partyline.RoomUser
		err := row.Scan(&ru.Room, &ru.User)
		return ru, err
	})
	if err != nil {
		return nil, unavailable(op, err)
	}
	return users, nil
}

// PendingEvents implements partyline.EventLog.
func (s *Store) PendingEvents(ctx context.Context, url string, limit int) ([]partyline.PendingEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `
SELECT pos, recorded_ms, body FROM partyline_webhook_outbox WHERE url = $1 ORDER BY pos LIMIT $2`, url, max(limit, 0))
	if err != nil {
		return nil, unavailable("pending events", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (partyline.PendingEvent, error) {
		var e partyline.PendingEvent
		var recorded int64
		err := row.Scan(&e.Pos, &recorded, &e.Body)
		e.Recorded = time.UnixMilli(recorded)
		return e, err
	})
	if err != nil {
		return nil, unavailable("pending events", err)
	}
	return events, nil
}

// AckEvents implements partyline.EventLog.
func (s *Store) AckEvents(ctx context.Context, url string, pos []int64) error {
	if len(pos) == 0 {
		return nil
	}
	return s.exec(ctx, "ack events", `DELETE FROM partyline_webhook_outbox WHERE url = $1 AND pos = ANY($2)`, url, pos)
}

// CountPending implements partyline.EventLog.
func (s *Store) CountPending(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM partyline_webhook_outbox WHERE url = $1`, url).Scan(&n); err != nil {
		return 0, unavailable("count pending", err)
	}
	return n, nil
}

// LeaseSender implements partyline.EventLog.
func (s *Store) LeaseSender(ctx context.Context, url, owner string, now, until time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	var held bool
	err := s.pool.QueryRow(ctx, leaseSender, url, owner, until.UnixMilli(), now.UnixMilli()).Scan(&held)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, unavailable("lease sender", err)
	}
	return held, nil
}

// leaseSender takes or renews the lease: the row is written, and returned,
// when the URL has no lease, when $2 holds it, or when it expired by $4.
const leaseSender = `
INSERT INTO partyline_webhook_leases AS l (url, owner, until_ms) VALUES ($1, $2, $3)
ON CONFLICT (url) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
WHERE l.owner = excluded.owner OR l.until_ms <= $4
RETURNING true`

// AppendOnce implements partyline.IdempotentStore. It claims the key
// first: a caller repeating a key that another transaction is committing
// waits for it and then reads its result. The messages are stored with the
// statements of the writers' pipeline, inside the key's transaction. Keys
// older than the window are replaced when reused, and pruned at most once
// a minute by each Store.
func (s *Store) AppendOnce(ctx context.Context, key string, messages []partyline.Message, now time.Time) ([]partyline.Message, bool, error) {
	var stored []partyline.Message
	var replayed bool
	err := s.inTx(ctx, "append once", func(ctx context.Context, tx pgx.Tx) error {
		stored, replayed = slices.Clone(messages), false
		var claimed bool
		err := tx.QueryRow(ctx, claimKey, key, now.UnixMilli(), expiredBefore(now)).Scan(&claimed)
		if errors.Is(err, pgx.ErrNoRows) { // live, and committed: replay it
			var result []byte
			if err := tx.QueryRow(ctx, `SELECT result FROM partyline_idempotency_keys WHERE key = $1`, key).Scan(&result); err != nil {
				return err
			}
			replayed = true
			stored, err = eventlog.DecodeMessages(result)
			return err
		}
		if err != nil {
			return err
		}
		rooms := byRoom(stored)
		pipeline := &pgx.Batch{}
		if err := s.queueMessages(pipeline, rooms); err != nil {
			return err
		}
		if err := tx.SendBatch(ctx, pipeline).Close(); err != nil {
			return err
		}
		assignSeqs(rooms)
		result, err := eventlog.EncodeMessages(stored)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE partyline_idempotency_keys SET result = $2 WHERE key = $1`, key, result)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if !replayed {
		s.pruneKeys(ctx, now)
	}
	return stored, replayed, nil
}

// Recall implements partyline.IdempotentStore. A key another transaction
// is committing is not seen yet: the caller goes on to AppendOnce, which
// waits for it.
func (s *Store) Recall(ctx context.Context, key string, now time.Time) ([]partyline.Message, bool, error) {
	var result []byte
	err := s.pool.QueryRow(ctx, `SELECT result FROM partyline_idempotency_keys WHERE key = $1 AND created_ms > $2 AND result IS NOT NULL`,
		key, expiredBefore(now)).Scan(&result)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	stored, err := eventlog.DecodeMessages(result)
	return stored, err == nil, err
}

// expiredBefore returns the creation time, in Unix ms, at or before which a
// key is no longer live at now (eventlog.IsLive).
func expiredBefore(now time.Time) int64 {
	return now.Add(-partyline.IdempotencyWindow).UnixMilli()
}

// claimKey inserts the key, or takes over an expired one ($3); it returns
// a row when the caller now holds the key. On a live key it waits for the
// transaction that holds it, if any, and returns nothing.
const claimKey = `
INSERT INTO partyline_idempotency_keys AS k (key, created_ms) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET created_ms = excluded.created_ms, result = NULL
WHERE k.created_ms <= $3
RETURNING true`

// pruneKeys deletes expired keys, at most once a minute of now and at most
// pruneBatch at a time, skipping rows other transactions hold so Stores
// pruning at once never wait on each other. A failure is left for the next
// prune: expired keys are harmless, only bulky.
func (s *Store) pruneKeys(ctx context.Context, now time.Time) {
	last := s.keysPruned.Load()
	if now.UnixMilli()-last < time.Minute.Milliseconds() || !s.keysPruned.CompareAndSwap(last, now.UnixMilli()) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	for {
		tag, err := s.pool.Exec(ctx, pruneKeys, expiredBefore(now), pruneBatch)
		if err != nil || tag.RowsAffected() < pruneBatch {
			return
		}
	}
}

const (
	pruneBatch = 10_000
	pruneKeys  = `
DELETE FROM partyline_idempotency_keys WHERE key IN (
	SELECT key FROM partyline_idempotency_keys WHERE created_ms <= $1
	LIMIT $2 FOR UPDATE SKIP LOCKED)`
)
