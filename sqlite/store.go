// Package sqlite is a partyline.Store in one SQLite file: the embedded,
// durable default (--store sqlite:./partyline.db).
//
// One process owns the file at a time: Open takes an flock on path+".lock"
// and refuses a file another Store holds. Inside the process a single writer
// goroutine commits appends in batches (group commit): the appends that
// arrive while one transaction commits go together into the next, so one
// fsync serves many messages; while they keep coming faster than it
// commits, a batch lingers 1 ms to gather more, 2–10 ms in a stream of
// thousands a second (writer.go), since a commit costs the same whatever
// it carries. Reads use their own pool of connections and never wait for
// the writer (WAL mode).
//
// A batch costs a few statements whatever its size: the writer keeps each
// room's committed last seq in memory (read from the rooms table, or the
// log's messages, the first time a room appends, and taken as committed
// only once its transaction has) and appends the whole batch to the log as
// one row, whose moves save the rooms' last seqs.
//
// Layout: message_chunks holds a room's messages in rows of up to 64
// consecutive seqs, each row a BLOB of records (records.go), in a rowid
// table with an index on (room, first_seq), in SQLite's default 4 KiB
// pages, and a batch does not write to it. A message a row, inserted
// there, a batch over many rooms dirtied about one index page per message,
// each a WAL frame and later a page the checkpoint copies, and that page
// was most of what a message cost the writer (two pwrites per frame, the
// B-tree work), more than its bytes: 1 KiB pages and a table WITHOUT
// ROWID were measured and left out (docs/performance.md). So a batch
// appends its messages to message_log as one row, a table with no other
// index, which it writes at its last page, and keeps them in memory for
// History (unmoved). Once the log holds 8,192 messages, or 4 MiB, or one
// of its messages is a second old, the writer moves them into
// message_chunks in one transaction, room by room, a row for each room's
// chunk: at 10,000 messages a second in 1,000 rooms, a row and an index
// entry for about 8 messages. History reads a room's chunks from the page's
// bound on and keeps the messages the page asks for. Open moves what a
// process that did not close the Store left in the log; Close moves the
// rest.
//
// Durability: journal_mode=WAL. By default synchronous=NORMAL: a message
// Append returned survives a killed or crashed process (the commit is in the
// WAL file), and the WAL is fsynced at checkpoints; a power cut may lose the
// commits since the last checkpoint. Options.FullSync sets synchronous=FULL,
// which fsyncs every commit and survives a power cut too, at the price of a
// disk flush per batch on the path of every message (group commit
// amortises it).
//
// Checkpoints, which copy the WAL into the database file, run off the
// commit path: the write connection has SQLite's automatic checkpoint
// turned off, and a goroutine of the Store checkpoints (PASSIVE, waiting for
// no one) on a connection of its own each time the WAL has grown by 1,000
// pages, at most every second, fsyncing the WAL and then the database file.
// A PASSIVE checkpoint cannot let the WAL start over while commits keep
// coming, so once the WAL is 10,000 pages long the checkpointer holds the
// write connection while it copies the pages committed since its last pass:
// commits wait for that short copy and its fsyncs, not for the copy of the
// whole WAL. If readers keep it from copying everything until the WAL is
// 100,000 pages long, that checkpoint also waits (up to 2 s) for them.
// Close truncates the WAL to 0 bytes.
//
// Retention: History shows exactly the newest keep seqs of a room. Older
// chunks, all of whose seqs fell out, are deleted by the moves, in steps
// of about keep/4, so one DELETE serves many appends and trimming never
// blocks them.
//
// Webhooks (partyline.EventLog): the writer records a batch's message events
// in the batch's transaction, when a route wants them. Presence changes,
// other events, acknowledgements, leases and AppendOnce are transactions of
// their own on the same single write connection, taking turns with the
// writer's batches; AppendOnce assigns seqs with the writer's statements
// and its cache of last seqs, taking its turn at the cache too, so its
// seqs interleave with Append's without gap or repeat.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/eventlog"
	"github.com/partyline/partyline/internal/groupcommit"
	"github.com/partyline/partyline/internal/history"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

const (
	// busyTimeout bounds how long a statement waits for a SQLite lock.
	busyTimeout = 10 * time.Second
	// writeTimeout bounds one batch transaction.
	writeTimeout = 15 * time.Second
	// readConns is the size of the pool History and LastSeq use.
	readConns = 4
)

// Store is a partyline.Store in a SQLite file. It is safe for concurrent use.
type Store struct {
	path      string // as given to Open, for error messages
	keep      int64  // newest messages kept per room; math.MaxInt64 keeps all
	trimEvery int64  // a room is trimmed each time its seq crosses a multiple

	lockFile *os.File // holds the flock on path+".lock" while open
	read     *sql.DB  // History, LastSeq, Ping and the EventLog's reads
	// write has one connection: the writer goroutine's, which the EventLog's
	// and AppendOnce's transactions borrow in turn (database/sql queues them
	// for it), so every write still goes through one connection.
	write *sql.DB
	// The writer's statements, prepared once on write.
	insertLog    *sql.Stmt // appends a batch to message_log
	insertChunks *multiRow // the moves' rows of message_chunks
	saveLastSeqs *multiRow // and their rooms' last seqs
	insertEvents *multiRow // inserts webhook_outbox rows
	seqs         *lastSeqs // the rooms' committed last seqs
	unmoved      *unmoved  // what message_log holds, for History and the last seqs
	// moveAt and moveAfter are moveAtRows and moveAfter, in fields so the
	// tests can lower them.
	moveAt    int
	moveAfter time.Duration
	// checkpoints copies the WAL into the database file from a goroutine
	// and a connection of its own, off the writer's commits.
	checkpoints *checkpointer

	routes     atomic.Pointer[eventlog.Routes] // set by SetWebhookRoutes
	keysPruned atomic.Int64                    // when AppendOnce last pruned old keys, Unix ms

	fullSync bool
	queue    *groupcommit.Queue[partyline.Message] // appends, for the writer goroutine
	commits  atomic.Int64                          // transactions the writer committed
	closed   atomic.Bool                           // set by Close
}

var (
	_ partyline.Store  = (*Store)(nil)
	_ partyline.Pinger = (*Store)(nil)
)

var errLocked = errors.New("database is locked by another process")

// Options configures a Store.
type Options struct {
	// Keep is how many of each room's newest messages are kept; 0 keeps all.
	Keep int
	// FullSync fsyncs every commit (synchronous=FULL); see the package doc.
	FullSync bool
}

// Open opens the partyline database at path, creating it if it does not
// exist and applying any migrations it lacks, and moves into
// message_chunks what a process that did not close its Store left in
// message_log.
//
// Open fails with one error naming path when the file is locked by another
// Store (in this process or another), cannot be written, or is not a
// partyline database: a file that is not SQLite, or a SQLite database with
// tables of its own and no partyline schema.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	keep := opts.Keep
	if keep < 0 {
		return nil, fmt.Errorf("sqlite: keep %d must not be negative", keep)
	}
	if err := checkWritable(path); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	unmoved := newUnmoved()
	s := &Store{
		path:      path,
		fullSync:  opts.FullSync,
		keep:      math.MaxInt64,
		trimEvery: 1,
		lockFile:  lock,
		unmoved:   unmoved,
		seqs:      newLastSeqs(unmoved),
		moveAt:    moveAtRows,
		moveAfter: moveAfter,
	}
	if keep > 0 {
		s.keep, s.trimEvery = int64(keep), int64(max(1, keep/4))
	}
	if err := s.openDatabases(ctx); err != nil {
		s.release()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	s.queue = newQueue(s.commit)
	return s, nil
}

// checkWritable reports why path cannot hold a database we write, if it
// cannot. A missing file is fine: SQLite creates it.
func checkWritable(path string) error {
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		return errors.New("is a directory, not a database file")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	return f.Close()
}

// openDatabases opens the write and read pools and brings the schema up to
// date.
func (s *Store) openDatabases(ctx context.Context) error {
	var err error
	if s.write, err = sql.Open("sqlite", dsn(s.path, writeParams(s.fullSync))); err != nil {
		return err
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)
	if err := s.write.PingContext(ctx); err != nil {
		return describe(err)
	}
	if err := migrate(ctx, s.write); err != nil {
		return describe(err)
	}
	if err := s.prepareWrites(ctx); err != nil {
		return describe(err)
	}
	if s.read, err = sql.Open("sqlite", dsn(s.path, readParams)); err != nil {
		return err
	}
	s.read.SetMaxOpenConns(readConns)
	s.read.SetMaxIdleConns(readConns)
	if err := s.read.PingContext(ctx); err != nil {
		return describe(err)
	}
	if s.checkpoints, err = openCheckpointer(ctx, s.path, s.fullSync, s.write); err != nil {
		return describe(err)
	}
	return describe(s.recoverLog(ctx))
}

// prepareWrites prepares the writer's statements on the write connection.
func (s *Store) prepareWrites(ctx context.Context) error {
	var err error
	if s.insertLog, err = s.write.PrepareContext(ctx, insertLog); err != nil {
		return err
	}
	if s.insertChunks, err = prepareMultiRow(ctx, s.write, insertChunksHead, 4, ""); err != nil {
		return err
	}
	if s.saveLastSeqs, err = prepareMultiRow(ctx, s.write, saveLastSeqsHead, 2, saveLastSeqsUpsert); err != nil {
		return err
	}
	s.insertEvents, err = prepareMultiRow(ctx, s.write, insertEventsHead, 3, "")
	return err
}

// Append implements partyline.Store. It queues msg for the writer goroutine
// and waits for the transaction that commits it. When ctx ends while msg
// still waits in the queue, msg is dropped and Append returns ctx's error.
// Once its transaction has begun, Append waits for the outcome, which comes
// by the latest deadline among the appends the transaction carries (at most
// writeTimeout): an error means the message was not stored.
func (s *Store) Append(ctx context.Context, msg partyline.Message) (partyline.Message, error) {
	msg, err := s.queue.Add(ctx, msg)
	switch {
	case err == nil:
		return msg, nil
	case errors.Is(err, groupcommit.ErrClosed):
		return partyline.Message{}, errClosed("append")
	case errors.Is(err, partyline.ErrUnavailable): // from s.commit
		return partyline.Message{}, err
	default: // ctx ended before the writer took msg
		return partyline.Message{}, fmt.Errorf("sqlite: append: %w", err)
	}
}

// History implements partyline.Store.
func (s *Store) History(ctx context.Context, room string, q partyline.HistoryQuery) ([]partyline.Message, error) {
	if q.Limit <= 0 {
		return []partyline.Message{}, nil
	}
	// The unmoved messages first: one moved meanwhile is then in the
	// chunks too (and counts once), never in neither.
	recent, floor := s.unmoved.page(room, q, s.keep)
	stored, err := s.storedPage(ctx, room, q, floor)
	if err != nil {
		return nil, unavailable("history", err)
	}
	return mergePage(stored, recent, q), nil
}

// storedPage returns the page q asks for of room's messages in
// message_chunks, at most q.Limit of them, in seq order, of those newer
// than floor and than the rooms table's last seq minus keep. It reads the
// room's chunks from q's bound on, going back or forward, until it has
// the page.
func (s *Store) storedPage(ctx context.Context, room string, q partyline.HistoryQuery, floor int64) ([]partyline.Message, error) {
	query, bound := historyBefore, history.Bound(q)
	if q.Forward {
		query = historyAfter
	}
	rows, err := s.read.QueryContext(ctx, query, room, bound, s.keep, floor)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := []partyline.Message{}
	var chunk []partyline.Message
	for len(page) < q.Limit && rows.Next() {
		var records []byte
		var kept int64
		if err := rows.Scan(&records, &kept); err != nil {
			return nil, err
		}
		if chunk, err = decodeRecords(chunk[:0], records, false, room); err != nil {
			return nil, err
		}
		var fresh []partyline.Message
		for _, m := range chunk {
			if seq := int64(m.Seq); seq > kept && (q.Forward && seq > bound || !q.Forward && seq < bound) {
				fresh = append(fresh, m)
			}
		}
		if q.Forward {
			page = append(page, fresh...)
		} else if len(fresh) > 0 { // the chunks come newest first
			page = append(fresh, page...)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return nearest(page, q), nil
}

// The history queries read a room's chunks from the one holding the
// page's bound ?2 on, back (first_seq below it) or forward (from the last
// chunk beginning at or below it), of those holding a seq newer than the
// kept floor: the room's last seq in the rooms table minus keep (?3), and
// at least the unmoved messages' floor (?4). Each row carries that floor.
// A room without a row in rooms has no chunks either.
const (
	keptFloor = `
WITH kept (floor) AS (SELECT max(?4, coalesce((SELECT last_seq - ?3 FROM rooms WHERE room = ?1), ?4)))`
	historyBefore = keptFloor + `
SELECT messages, floor FROM message_chunks, kept
WHERE room = ?1 AND first_seq < ?2 AND last_seq > floor
ORDER BY first_seq DESC`
	historyAfter = keptFloor + `
SELECT messages, floor FROM message_chunks, kept
WHERE room = ?1 AND last_seq > floor AND first_seq >= coalesce(
	(SELECT max(first_seq) FROM message_chunks WHERE room = ?1 AND first_seq <= ?2), 0)
ORDER BY first_seq`
)

// LastSeq implements partyline.Store: the last of the room's unmoved
// messages, read first as History does, or else the rooms table's.
func (s *Store) LastSeq(ctx context.Context, room string) (uint64, error) {
	logged := s.unmoved.last(room)
	var saved int64
	err := s.read.QueryRowContext(ctx, `SELECT last_seq FROM rooms WHERE room = ?`, room).Scan(&saved)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, unavailable("last seq", err)
	}
	return uint64(max(logged, saved)), nil
}

// Ping implements partyline.Pinger: it reads the schema table.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed("ping")
	}
	var version int
	err := s.read.QueryRowContext(ctx, `SELECT max(version) FROM partyline_migrations`).Scan(&version)
	if err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close implements partyline.Store: it stops taking appends, commits those
// already queued and moves the log into message_chunks, stops the
// checkpoints and truncates the WAL, and closes the database and the lock.
// Calling it again does nothing.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.queue.Close()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	s.moveLog(ctx) // one that fails loses nothing: the next Open moves the log
	if err := s.release(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// release stops the checkpointer, then closes the pools and the lock file,
// whichever are open.
func (s *Store) release() error {
	var errs []error
	if s.checkpoints != nil {
		errs = append(errs, s.checkpoints.close())
	}
	for _, db := range []*sql.DB{s.read, s.write} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(append(errs, s.lockFile.Close())...)
}

// unavailable wraps a failure of the database in partyline.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("sqlite: %s: %w: %w", op, partyline.ErrUnavailable, err)
}

// errClosed is the error of an operation on a closed Store.
func errClosed(op string) error {
	return fmt.Errorf("sqlite: %s: %w: store is closed", op, partyline.ErrUnavailable)
}
