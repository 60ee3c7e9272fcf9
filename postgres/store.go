// Package postgres is a partyline.Store in PostgreSQL, shared by every node
// of a cluster (--store postgres://…).
//
// Seqs stay gap-free across nodes because an append bumps its room's row in
// partyline_rooms and inserts its messages in one transaction: the row lock
// makes concurrent appends to a room, from any node, take turns, and a
// committed seq implies every lower one is committed.
//
// Each Store runs a few writer goroutines that commit appends in batches
// (group commit): the appends that arrive while a transaction is in flight
// go together into the next. A batch locks its rooms in sorted order, so
// batches on different nodes cannot deadlock.
//
// Every call is bounded in time: when PostgreSQL is unreachable or stuck,
// calls fail with errors wrapping partyline.ErrUnavailable within seconds,
// and the pool reconnects by itself once it is back.
//
// Retention: History shows exactly the newest keep seqs of a room. Older
// rows are deleted inside the writers' transactions in steps of about
// keep/4, so one DELETE serves many appends.
//
// Webhooks (partyline.EventLog): a batch's message events are one more
// statement in its pipeline, queued only when a route wants them, which
// builds each event's JSON around the seq the room's bump assigned.
// Presence is decided cluster-wide by row locks: a member's row is claimed
// with INSERT … ON CONFLICT, and a room's arrivals and sweeps take turns on
// its row in partyline_webhook_rooms, which counts its members. AppendOnce
// claims its key with INSERT … ON CONFLICT before it bumps any room, so
// the callers of one key wait for the first and read what it committed.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/eventlog"
	"github.com/partyline/partyline/internal/groupcommit"
	"github.com/partyline/partyline/internal/history"
)

const (
	// connectTimeout bounds dialling and authenticating a connection, unless
	// the URL sets connect_timeout.
	connectTimeout = 5 * time.Second
	// appendTimeout bounds an Append, from queue to commit.
	appendTimeout = 5 * time.Second
	// readTimeout bounds History, LastSeq and Ping.
	readTimeout = 5 * time.Second
)

// Store is a partyline.Store in PostgreSQL. It is safe for concurrent use,
// and several Stores, in one process or many, may share one database.
type Store struct {
	pool      *pgxpool.Pool
	keep      int64 // newest messages kept per room; math.MaxInt64 keeps all
	trimEvery int64 // a room is trimmed each time its seq crosses a multiple

	queue *groupcommit.Queue[partyline.Message] // appends, for the writer goroutines

	routes     atomic.Pointer[eventlog.Routes] // set by SetWebhookRoutes
	keysPruned atomic.Int64                    // when AppendOnce last pruned old keys, Unix ms
}

var (
	_ partyline.Store  = (*Store)(nil)
	_ partyline.Pinger = (*Store)(nil)
)

// Open connects to the PostgreSQL database at url, applies any migrations
// its schema lacks (in the schema the URL's search_path selects, public by
// default), and keeps the newest keep messages per room (0 keeps all).
//
// The URL may set pgxpool's pool_max_conns; half the pool's connections,
// at least one, serve appends. Open fails with an error wrapping
// partyline.ErrUnavailable when the database cannot be reached, or is not
// ready yet (starting up, out of connections), so that the caller may try
// again later; with another error when the server refuses what it is asked
// (bad credentials, an unknown database or setting, a migration it
// rejects), which waiting will not mend.
func Open(ctx context.Context, url string, keep int) (*Store, error) {
	if keep < 0 {
		return nil, fmt.Errorf("postgres: keep %d must not be negative", keep)
	}
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if config.ConnConfig.ConnectTimeout == 0 {
		config.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{
		pool:      pool,
		keep:      math.MaxInt64,
		trimEvery: 1,
	}
	if keep > 0 {
		s.keep, s.trimEvery = int64(keep), int64(max(1, keep/4))
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout+appendTimeout)
	defer cancel()
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		if errors.Is(err, errNewerSchema) || refused(err) {
			return nil, fmt.Errorf("postgres: open: %w", err)
		}
		return nil, unavailable("open", err)
	}
	s.queue = newQueue(s.commit, int(max(1, config.MaxConns/2)))
	return s, nil
}

// Append implements partyline.Store. It queues msg for a writer goroutine
// and waits for the transaction that commits it, at most appendTimeout in
// all. When ctx ends while msg still waits in the queue, msg is dropped and
// Append returns an error wrapping ErrUnavailable and the context's error.
// Once its transaction has begun, Append
// waits for the outcome, which comes by the latest deadline among the
// appends the transaction carries: an error means the message was not
// stored, unless the connection failed during COMMIT itself.
func (s *Store) Append(ctx context.Context, msg partyline.Message) (partyline.Message, error) {
	if err := ctx.Err(); err != nil {
		return partyline.Message{}, fmt.Errorf("postgres: append: %w", err)
	}
	bounded, cancel := context.WithTimeoutCause(ctx, appendTimeout, errAppendTimeout)
	defer cancel()
	msg, err := s.queue.Add(bounded, msg)
	switch {
	case err == nil:
		return msg, nil
	case errors.Is(err, groupcommit.ErrClosed):
		return partyline.Message{}, errClosed("append")
	case errors.Is(err, partyline.ErrUnavailable): // from s.commit
		return partyline.Message{}, err
	default: // bounded ended before a writer took msg
		return partyline.Message{}, unavailable("append", context.Cause(bounded))
	}
}

var errAppendTimeout = errors.New("the database did not take the message in time")

// History implements partyline.Store.
func (s *Store) History(ctx context.Context, room string, q partyline.HistoryQuery) ([]partyline.Message, error) {
	if q.Limit <= 0 {
		return []partyline.Message{}, nil
	}
	query := historyBefore
	if q.Forward {
		query = historyAfter
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, query, room, history.Bound(q), s.keep, q.Limit)
	if err != nil {
		return nil, unavailable("history", err)
	}
	defer rows.Close()
	messages, err := history.Scan(rows, room)
	if err != nil {
		return nil, unavailable("history", err)
	}
	return messages, nil
}

// The history queries show only the newest keep seqs: those above the
// room's last seq minus $3. Joining the room's row leaves an unknown room
// with no rows.
const (
	historyAfter = `
SELECT m.seq, m.id, m.username, m.content, m.data, m.timestamp_ms
FROM partyline_rooms r JOIN partyline_messages m ON m.room = r.room
WHERE r.room = $1 AND m.seq > $2 AND m.seq > r.last_seq - $3
ORDER BY m.seq LIMIT $4`
	historyBefore = `
SELECT * FROM (
	SELECT m.seq, m.id, m.username, m.content, m.data, m.timestamp_ms
	FROM partyline_rooms r JOIN partyline_messages m ON m.room = r.room
	WHERE r.room = $1 AND m.seq < $2 AND m.seq > r.last_seq - $3
	ORDER BY m.seq DESC LIMIT $4
) page ORDER BY seq`
)

// LastSeq implements partyline.Store.
func (s *Store) LastSeq(ctx context.Context, room string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var last int64
	err := s.pool.QueryRow(ctx, `SELECT last_seq FROM partyline_rooms WHERE room = $1`, room).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("last seq", err)
	}
	return uint64(last), nil
}

// Ping implements partyline.Pinger: it reads the schema table.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var version int
	if err := s.pool.QueryRow(ctx, `SELECT max(version) FROM partyline_migrations`).Scan(&version); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close implements partyline.Store: it stops taking appends, lets the
// writers finish those already queued, and closes the pool. Calling it
// again does nothing.
func (s *Store) Close() error {
	s.queue.Close()
	s.pool.Close()
	return nil
}

// refused reports whether err is the server's answer to a request it will
// not serve as long as nothing changes on its side: any error of
// PostgreSQL's but those of the classes that pass (08 connection
// exception, 40 transaction rollback, 53 insufficient resources, 57
// operator intervention such as "the database system is starting up", 58
// system error).
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "57", "58":
		return false
	}
	return true
}

// unavailable wraps a failure of the database in partyline.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("postgres: %s: %w: %w", op, partyline.ErrUnavailable, err)
}

// errClosed is the error of an operation on a closed Store.
func errClosed(op string) error {
	return fmt.Errorf("postgres: %s: %w: store is closed", op, partyline.ErrUnavailable)
}
