package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Checkpoints copy the pages the WAL holds back into the database file, so
// the WAL can start over from its beginning. SQLite's automatic checkpoint
// would run inside the commit that crosses its threshold, on the writer's
// connection, and every append waiting for that commit would wait for the
// copy of up to 10,000 pages and the database file's fsync. The write
// connection therefore runs with wal_autocheckpoint=0, and a goroutine of
// the Store checkpoints on a connection of its own instead.
//
// A PASSIVE checkpoint copies without waiting for anyone, but it copies
// only the frames committed when it began, and the WAL starts over only
// when a commit begins with every frame copied. Under a steady stream of
// commits that never happens: measured with 1,000 rooms and 256 writers,
// every PASSIVE checkpoint copied the whole WAL it saw, and the WAL still
// grew by 35,000 frames a second. So once the WAL is restartPages long, the
// checkpointer takes the write connection for a moment (commits wait), and
// copies the frames committed since its last pass; the next commit then
// starts the WAL over. The wait is that copy and two fsyncs, not the
// copy of the whole WAL the automatic checkpoint made commits wait for.
const (
	// checkpointPages is how many WAL frames (pages) the write connection
	// writes between two background checkpoints: about 4 MiB of WAL.
	checkpointPages = 1000
	// checkpointPause is the least time between two background checkpoints.
	// A checkpoint copies each page once however many frames of it the WAL
	// holds, and writers rewrite the same pages: a few hot rooms their last
	// pages, 1,000 busy rooms the 1,000 leaves their messages go to. At
	// 10,000 messages a second in 1,000 rooms, a pause of 100 ms copied
	// most pages ten times a second; a second's pause copies them once, and
	// took the server's CPU per delivery down 3.5% (docs/performance.md,
	// item 15). The price is a longer WAL, which the database file has not
	// seen fsynced: with synchronous=NORMAL a power cut may lose up to a
	// second more of commits (a crash of the process loses none).
	checkpointPause = time.Second
	// restartPages is the WAL's length, in frames, at which the
	// checkpointer holds the writer to let the WAL start over: about 40
	// MiB, the most the WAL grew to with the automatic checkpoint at
	// 10,000 pages.
	restartPages = 10_000
	// maxWALPages is the WAL's length, in frames (about 400 MiB), past which
	// the checkpoint that holds the writer waits for the readers too.
	maxWALPages = 100_000
	// checkpointWait bounds how long a RESTART or TRUNCATE checkpoint waits
	// for the readers (the connection's busy_timeout). It is well under
	// busyTimeout, so a commit held up by one still succeeds.
	checkpointWait = 2 * time.Second
	// checkpointTimeout bounds one checkpoint, copy and fsyncs included,
	// and the wait for the write connection.
	checkpointTimeout = writeTimeout
)

// checkpointParams are the checkpoint connection's parameters: its
// synchronous setting is the writer's, because the connection that
// checkpoints is the one whose setting decides the fsyncs of the WAL and of
// the database file around the copy (none with synchronous=OFF).
func checkpointParams(fullSync bool) string {
	sync := "NORMAL"
	if fullSync {
		sync = "FULL"
	}
	return fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=synchronous(%s)", checkpointWait.Milliseconds(), sync)
}

// checkpointer runs the Store's checkpoints from one goroutine on a
// connection no other work uses, so a checkpoint never makes the writer
// wait, but for the moments it holds the writer to let the WAL start over
// (see restartPages). The read pool's connections could checkpoint too
// (query_only does not forbid it), but a checkpoint would then hold one of
// them for its copy and fsyncs while History waits.
type checkpointer struct {
	db      *sql.DB       // one connection, for checkpoints only
	write   *sql.DB       // the Store's write pool, whose one connection restart holds
	written atomic.Int64  // WAL frames written since the last checkpoint began
	wake    chan struct{} // holds a token once written reaches checkpointPages
	stop    chan struct{} // closed by close to end the goroutine
	done    chan struct{} // closed when the goroutine has returned

	// every, restartAt and pause are checkpointPages, restartPages and
	// checkpointPause, in fields so the tests can lower them before the
	// first append.
	every, restartAt int64
	pause            time.Duration

	// runs counts the checkpoints that ran without error, restarts those
	// of them that held the writer, and checkpointed adds up the frames
	// each copied into the database file, for the tests. (A single result
	// would not do: a checkpoint that runs just as a commit starts the WAL
	// over finds it empty.)
	runs, restarts, checkpointed atomic.Int64
}

// checkpointResult is what PRAGMA wal_checkpoint returns: whether it could
// not finish (busy), the WAL's length in frames (log) and how many of them
// are now in the database file (checkpointed).
type checkpointResult struct {
	busy, log, checkpointed int64
}

// openCheckpointer opens the checkpoint connection on path and starts the
// goroutine, which runs until close. write is the Store's write pool.
func openCheckpointer(ctx context.Context, path string, fullSync bool, write *sql.DB) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, checkpointParams(fullSync)))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	c := &checkpointer{
		db:    db,
		write: write,
		every: checkpointPages, restartAt: restartPages, pause: checkpointPause,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.run()
	return c, nil
}

// wrote tells c the write connection wrote frames WAL frames. It never
// blocks: the writer calls it after each commit.
func (c *checkpointer) wrote(frames int64) {
	if c.written.Add(frames) >= c.every {
		select {
		case c.wake <- struct{}{}:
		default: // a checkpoint is already due
		}
	}
}

// run checkpoints each time the WAL has grown by checkpointPages frames,
// at most once per pause, until close.
func (c *checkpointer) run() {
	defer close(c.done)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		}
		c.checkpointDue()
		pause.Reset(c.pause)
		select {
		case <-c.stop:
			return
		case <-pause.C:
		}
	}
}

// checkpointDue runs a PASSIVE checkpoint, then, if the WAL has grown to
// restartPages, one that lets it start over. When a checkpoint fails, the
// frames it was for count again, so the next commit calls for another: the
// WAL keeps the data meanwhile, and nothing else depends on a checkpoint.
func (c *checkpointer) checkpointDue() {
	frames := c.written.Swap(0)
	r, err := c.checkpoint("PASSIVE")
	if err == nil && r.log >= c.restartAt {
		// One more pass first, not holding the writer: it copies what was
		// committed during the first, much less, so the pass that holds
		// the writer has less still to copy.
		if r, err = c.checkpoint("PASSIVE"); err == nil {
			err = c.restart(r.log > maxWALPages)
		}
	}
	if err != nil {
		c.wrote(frames)
	}
}

// restart holds the write connection, so no commit adds frames, while a
// checkpoint copies those committed since the last one: with every frame
// copied, the next commit starts the WAL over. A PASSIVE checkpoint does
// not wait for readers either, and may leave the frames a reader still
// needs, so the WAL goes on growing until a later pass. When readers are
// always active and the WAL has grown past maxWALPages, waitReaders makes
// it a RESTART checkpoint, which waits up to checkpointWait for them,
// commits waiting meanwhile: the price of a bounded WAL.
func (c *checkpointer) restart(waitReaders bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	writer, err := c.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer writer.Close()
	mode := "PASSIVE"
	if waitReaders {
		mode = "RESTART"
	}
	if _, err := c.checkpoint(mode); err != nil {
		return err
	}
	c.restarts.Add(1)
	return nil
}

// checkpoint runs PRAGMA wal_checkpoint in mode on c's connection and
// records its result.
func (c *checkpointer) checkpoint(mode string) (checkpointResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	var r checkpointResult
	err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&r.busy, &r.log, &r.checkpointed)
	if err != nil {
		return r, err
	}
	c.runs.Add(1)
	c.checkpointed.Add(r.checkpointed)
	return r, nil
}

// close ends the goroutine, waiting for a checkpoint under way, then
// truncates the WAL to 0 bytes, so a closed database does not keep a large
// WAL on disk, and closes the connection. Call it after the writer has
// stopped. The WAL is usually gone anyway once the last connection closes,
// but not while another process has the file open. A failed truncate loses
// nothing: the next Open finds the frames in the WAL.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	c.checkpoint("TRUNCATE")
	return c.db.Close()
}

// walFramesWritten returns how many WAL frames conn, the write connection,
// has written since the last call, resetting its count (SQLite's
// DBSTATUS_CACHE_WRITE: in WAL mode each page written is a frame
// appended to the WAL). It returns 0 if the driver cannot tell.
func walFramesWritten(conn *sql.Conn) int64 {
	var frames int64
	conn.Raw(func(dc any) error {
		if st, ok := dc.(sqlite.DBStatus); ok {
			n, _, err := st.Status(sqlite.DBStatusCacheWrite, true)
			if err == nil {
				frames = int64(n)
			}
		}
		return nil
	})
	return frames
}
