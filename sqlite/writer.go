package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/groupcommit"
)

// newQueue returns the group-commit queue of a Store whose writer goroutine
// commits with commit.
func newQueue(commit groupcommit.CommitFunc[partyline.Message]) *groupcommit.Queue[partyline.Message] {
	return groupcommit.New(commit, groupcommit.Options[partyline.Message]{
		Writers: 1, Timeout: writeTimeout, Linger: commitLinger, MaxLinger: commitMaxLinger,
		Behind: partyline.WriteBacklog, StreamLinger: commitStreamLinger,
	})
}

// While messages come faster than the writer commits, a batch lingers to
// gather more (groupcommit.Options.Linger): commitLinger, or, once they
// come in a stream of 1,600 a second or more, as long as the server's
// writes to its clients lag (partyline.WriteBacklog), from
// commitStreamLinger up to commitMaxLinger. A commit costs 26–70 µs of
// CPU whatever it carries, and a writer that commits as soon as anything
// waits made 3,000 commits of 3 messages a second at 10,000 messages a
// second, with 1,000 rooms. A 1 ms wait took the server's CPU per
// delivery down 7%, and 10 ms in a stream 5% more on a saturated machine,
// where the messages wait longer than that to be written anyway; on a
// machine with CPU to spare, 10 ms saved nothing over 2 ms and made the
// median 12 ms instead of 5, while 1 ms cost 10% more CPU
// (docs/performance.md, items 11, 13 and 22). In a stream every batch
// lingers, even one whose first message came after the last commit ended:
// only one batch in eight did, and the rest made 1,300 commits of 7
// messages a second (item 23). A message that comes alone never waits,
// and one that comes while a commit runs, but not in a stream, waits at
// most commitLinger.
const (
	commitLinger       = time.Millisecond
	commitStreamLinger = 2 * time.Millisecond
	commitMaxLinger    = 10 * time.Millisecond
)

// commit is the writer goroutine's commit: it stores batch in one
// transaction, giving each message its seq, then moves the log into
// message_chunks when a move is due.
func (s *Store) commit(ctx context.Context, batch []partyline.Message) error {
	if err := s.commitBatch(ctx, batch); err != nil {
		return unavailable("append", err)
	}
	s.commits.Add(1)
	s.moveIfDue(ctx)
	return nil
}

// commitBatch stores batch in one transaction.
func (s *Store) commitBatch(ctx context.Context, batch []partyline.Message) error {
	return s.seqs.assign(func() (bumps []roomBump, err error) {
		err = s.writeTx(ctx, func(tx *sql.Tx) error {
			bumps, err = s.storeMessages(ctx, tx, batch)
			return err
		})
		if err == nil {
			s.unmoved.add(batch, time.Now())
		}
		return bumps, err
	})
}

// writeTx runs f in a transaction on the write connection and commits it.
// A caller that assigns seqs or moves the log holds the seqs' lock, which
// lastSeqs requires be taken before the connection.
func (s *Store) writeTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer s.releaseWrite(conn)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// releaseWrite tells the checkpointer how many WAL frames the write
// connection has written, then gives the connection back to the pool. It
// reads the count while conn is still the writer's, so it waits for no
// other transaction.
func (s *Store) releaseWrite(conn *sql.Conn) {
	s.checkpoints.wrote(walFramesWritten(conn))
	conn.Close()
}

// storeMessages assigns each message its seq and appends the batch to
// message_log, one row of records (records.go), and records the message
// events of the routes that want them, all in tx. It returns what it did to
// each room's seq, for s.seqs.assign, within which it must run. With no
// route that wants messages it adds nothing else to the transaction. The
// rooms' last seqs are saved by the next move: until then, unmoved knows
// them.
func (s *Store) storeMessages(ctx context.Context, tx *sql.Tx, batch []partyline.Message) ([]roomBump, error) {
	bumps, err := s.seqs.bump(ctx, tx, batch)
	if err != nil {
		return nil, err
	}
	records := appendRecords(make([]byte, 0, recordsLen(batch, true)), batch, true)
	if _, err := tx.StmtContext(ctx, s.insertLog).ExecContext(ctx, records); err != nil {
		return bumps, err
	}
	if len(s.webhookRoutes()[partyline.EventMessage]) > 0 {
		events := make([]partyline.WebhookEvent, len(batch))
		for i, m := range batch {
			events[i] = partyline.MessageEvent(m)
		}
		return bumps, s.record(ctx, tx, events...)
	}
	return bumps, nil
}

// The writer moves message_log into message_chunks once it holds
// moveAtRows messages or moveAtBytes of text (which unmoved also holds in
// memory), or one committed moveAfter ago: at 10,000 messages a second in
// 1,000 rooms, every 0.8 s, each room's index page written once for a
// chunk of about 8 messages. A move holds the write connection for its
// copy, about a ms per thousand messages, and the appends that come
// meanwhile wait for it.
const (
	moveAtRows  = 8192
	moveAtBytes = 4 << 20
	moveAfter   = time.Second
)

// moveIfDue moves the log into message_chunks if a move is due. It is
// called after a commit that appended to the log, which stands whatever the
// move does: a move that fails leaves the log as it was, for the next one.
func (s *Store) moveIfDue(ctx context.Context) {
	if s.unmoved.due(s.moveAt, s.moveAfter, time.Now()) {
		s.moveLog(ctx)
	}
}

// moveLog moves the messages of message_log, which unmoved holds, into
// message_chunks and then forgets them. The caller must not hold the seqs'
// lock.
func (s *Store) moveLog(ctx context.Context) error {
	return s.seqs.assign(func() ([]roomBump, error) {
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			return s.moveLogged(ctx, tx, s.unmoved.byRoom())
		})
		if err == nil {
			s.unmoved.clear()
		}
		return nil, err
	})
}

// recoverLog moves what message_log holds as the Store opens: what a
// process that did not close its Store had committed since its last move.
func (s *Store) recoverLog(ctx context.Context) error {
	logged, err := s.readLog(ctx)
	if err != nil || len(logged) == 0 {
		return err
	}
	s.unmoved.add(logged, time.Now())
	return s.moveLog(ctx)
}

// readLog returns the messages of message_log, in the order they were
// committed.
func (s *Store) readLog(ctx context.Context) ([]partyline.Message, error) {
	rows, err := s.write.QueryContext(ctx, `SELECT messages FROM message_log ORDER BY pos`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var logged []partyline.Message
	for rows.Next() {
		var records []byte
		if err := rows.Scan(&records); err != nil {
			return nil, err
		}
		if logged, err = decodeRecords(logged, records, true, ""); err != nil {
			return nil, err
		}
	}
	return logged, rows.Err()
}

// moveLogged writes rooms, each room's unmoved messages in seq order, into
// message_chunks in tx, in chunks of up to maxChunk, saves the rooms' last
// seqs, empties message_log, and trims the rooms whose seq crossed a
// multiple of trimEvery within the messages moved.
func (s *Store) moveLogged(ctx context.Context, tx *sql.Tx, rooms [][]partyline.Message) error {
	var chunks [][]partyline.Message
	for _, messages := range rooms {
		chunks = append(chunks, chunked(messages)...)
	}
	size := 0
	for _, c := range chunks {
		size += recordsLen(c, false)
	}
	records := make([]byte, 0, size) // the chunks' rows alias it
	err := s.insertChunks.exec(ctx, tx, len(chunks), func(args []any, i int) []any {
		c := chunks[i]
		start := len(records)
		records = appendRecords(records, c, false)
		return appendChunk(args, c, records[start:len(records):len(records)])
	})
	if err != nil {
		return err
	}
	err = s.saveLastSeqs.exec(ctx, tx, len(rooms), func(args []any, i int) []any {
		return append(args, rooms[i][0].Room, lastSeq(rooms[i]))
	})
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM message_log`); err != nil {
		return err
	}
	return s.trim(ctx, tx, rooms)
}

// appendChunk appends to args the columns of chunk's row of
// message_chunks, in insertChunksHead's order: records is chunk as
// appendRecords writes it.
func appendChunk(args []any, chunk []partyline.Message, records []byte) []any {
	return append(args, chunk[0].Room, int64(chunk[0].Seq), lastSeq(chunk), records)
}

// lastSeq returns the seq of the last of messages, a room's in seq order.
func lastSeq(messages []partyline.Message) int64 {
	return int64(messages[len(messages)-1].Seq)
}

// trim deletes the chunks that fell out of retention, all of whose seqs
// are older than the newest keep, in the rooms whose seq crossed a
// multiple of trimEvery within the messages moved.
func (s *Store) trim(ctx context.Context, tx *sql.Tx, rooms [][]partyline.Message) error {
	for _, messages := range rooms {
		first, last := int64(messages[0].Seq), lastSeq(messages)
		if cutoff := last - s.keep; cutoff > 0 && (first-1)/s.trimEvery != last/s.trimEvery {
			if _, err := tx.ExecContext(ctx, `DELETE FROM message_chunks WHERE room = ? AND last_seq <= ?`, messages[0].Room, cutoff); err != nil {
				return err
			}
		}
	}
	return nil
}

// The writer's statements, the multi-row ones without their rows. OR FAIL
// spares SQLite the statement journal a multi-row statement that may abort
// halfway needs: the writer rolls back the whole transaction on any error.
const (
	insertLog          = `INSERT INTO message_log (messages) VALUES (?)`
	insertChunksHead   = `INSERT OR FAIL INTO message_chunks (room, first_seq, last_seq, messages) VALUES `
	saveLastSeqsHead   = `INSERT INTO rooms (room, last_seq) VALUES `
	saveLastSeqsUpsert = ` ON CONFLICT (room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)`
)

// chunkSizes are the row counts a multiRow statement is prepared for,
// largest first: n rows take at most n/64 + 9 statements.
var chunkSizes = [...]int{64, 16, 4, 1}

// multiRow is a statement that writes many rows of the same shape,
// prepared once for each of chunkSizes rows, so a batch of rows takes a
// few statements instead of one per row.
type multiRow struct {
	columns int
	stmts   [len(chunkSizes)]*sql.Stmt
}

// prepareMultiRow prepares head, then rows of columns placeholders, then
// tail, for each of chunkSizes rows.
func prepareMultiRow(ctx context.Context, db *sql.DB, head string, columns int, tail string) (*multiRow, error) {
	m := &multiRow{columns: columns}
	row := "(?" + strings.Repeat(", ?", columns-1) + ")"
	for k, rows := range chunkSizes {
		query := head + row + strings.Repeat(", "+row, rows-1) + tail
		var err error
		if m.stmts[k], err = db.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// exec writes rows rows in tx, the largest chunks first. appendRow appends
// the values of row i to args and returns args.
func (m *multiRow) exec(ctx context.Context, tx *sql.Tx, rows int, appendRow func(args []any, i int) []any) error {
	args := make([]any, 0, min(rows, chunkSizes[0])*m.columns)
	for done := 0; done < rows; {
		k := largestChunk(rows - done)
		args = args[:0]
		for i := done; i < done+chunkSizes[k]; i++ {
			args = appendRow(args, i)
		}
		if _, err := tx.StmtContext(ctx, m.stmts[k]).ExecContext(ctx, args...); err != nil {
			return err
		}
		done += chunkSizes[k]
	}
	return nil
}

// largestChunk returns the index in chunkSizes of the largest chunk of at
// most n rows, or of the smallest chunk when n is less.
func largestChunk(n int) int {
	k := 0
	for k < len(chunkSizes)-1 && chunkSizes[k] > n {
		k++
	}
	return k
}
