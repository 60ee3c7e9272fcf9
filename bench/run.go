package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// latencyShards is how many histograms the readers share.
const latencyShards = 64

// phaseSlack is time kept in hand after the drain, for closing.
const phaseSlack = 2 * time.Second

// run is one bench run. Stamps and the window bounds are nanoseconds since
// epoch on the monotonic clock.
type run struct {
	ctx     context.Context // the run's, bounded by cfg.Timeout
	cfg     Config
	epoch   time.Time
	dialer  *dialer
	pollers []*pollReader // read the connections; none: a reader goroutine each
	rooms   []string      // room names; a client's room indexes this
	lat     shardedHistogram
	// replayLat records, in the overload scenario, the deliveries that
	// resumed connections' replays made (lat keeps those that came live).
	replayLat shardedHistogram
	// outside counts, per latency shard, deliveries of messages stamped
	// outside the window (warm-up traffic); frames all messages received,
	// inflated those of them that came compressed; wire the bytes read
	// from the sockets after the handshakes' answers.
	outside, frames, inflated, wire [latencyShards]paddedCounter

	// winStart and winEnd bound the measuring window: messages stamped
	// inside it are counted, deliveries of others only tallied.
	winStart, winEnd atomic.Int64
	phase            atomic.Pointer[string]

	connected, ready atomic.Int64
	lastReady        atomic.Int64 // when the latest connection became ready (r.now)
	deflate          atomic.Int64 // connections on which the server accepted permessage-deflate
	sent, expected   atomic.Uint64
	errorFrames      atomic.Uint64
	pings            atomic.Uint64  // server pings received in the window
	closing          atomic.Bool    // the bench is closing the connections itself
	readers          sync.WaitGroup // the reader goroutines
	publishers       sync.WaitGroup
	resumes          sync.WaitGroup // overload: connections waiting to resume
	evicted, resumed atomic.Int64   // overload: closes with 4009, and resumed connections
	nextID           atomic.Int64   // overload: ids of resumed connections
	// joins: objects received by type (presenceTypes, then other), and
	// when the last presence object arrived (r.now).
	types        [len(presenceTypes) + 1]typeCounter
	lastPresence atomic.Int64

	mu             sync.Mutex // guards the following
	closed         map[string]int
	firstClose     string
	replacements   []*client // overload: connections opened by resumes
	firstError     string
	sendErrors     int
	firstSendError string
	dialFailures   int
	firstDialError string
}

// paddedCounter is a counter alone on its cache line.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

// sum adds up sharded counters.
func sum(cs *[latencyShards]paddedCounter) uint64 {
	var n uint64
	for i := range cs {
		n += cs[i].Load()
	}
	return n
}

func (r *run) now() int64 { return int64(time.Since(r.epoch)) }

func (r *run) setPhase(p string) { r.phase.Store(&p) }

// Run runs the scenario cfg describes against cfg.URL, writing progress to
// progress once a second, and returns the measurements. It validates cfg
// first, filling scenario defaults. It closes every connection it opened
// before it returns, and returns within cfg.Timeout.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d, err := newDialer(cfg.URL, cfg.Sources, cfg.Compression)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := &run{ctx: ctx, cfg: cfg, epoch: time.Now(), dialer: d, lat: newShardedHistogram(latencyShards),
		replayLat: newShardedHistogram(latencyShards), closed: map[string]int{}}
	r.nextID.Store(int64(cfg.connections()))
	r.winStart.Store(math.MaxInt64)
	r.winEnd.Store(math.MaxInt64)
	r.setPhase("start")
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	stop := r.startProgress(progress)
	res, err := r.execute(ctx)
	stop()
	return res, err
}

// startCPUProfile profiles the bench into file until stop is called.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("bench: --cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: --cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// execute runs the phases: connect, wait for joins, publish and warm up,
// measure, drain, close.
func (r *run) execute(ctx context.Context) (*Result, error) {
	res := &Result{Scenario: r.cfg.Scenario, URL: r.cfg.URL, Sources: len(r.dialer.sources)}
	var err error
	if res.FileLimit, err = raiseFileLimit(); err != nil {
		return nil, err
	}
	before, err := r.sampleServer()
	if err != nil {
		return nil, err
	}
	selfBefore, _ := readProc(os.Getpid())

	r.setPhase("dial")
	selfStart, dialStart := selfCPU(), time.Now()
	if !r.cfg.noPollers {
		r.pollers = newPollReaders(r, runtime.GOMAXPROCS(0)) // none: a reader goroutine per connection
	}
	clients := r.dialAll(ctx, r.plan())
	defer r.closeAll(clients)
	res.DialSeconds = time.Since(dialStart).Seconds()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: connecting: %w", err)
	}
	if len(clients) == 0 {
		return nil, fmt.Errorf("bench: no connection succeeded: %s", r.firstDialError)
	}
	r.setPhase("join")
	r.waitReady(ctx, len(clients))
	if r.cfg.Scenario == Joins {
		return r.executeJoins(ctx, res, clients, before, selfBefore.RSS, selfStart, dialStart)
	}

	pubCtx, stopPublishers := context.WithCancel(ctx)
	defer stopPublishers()
	r.startPublishers(pubCtx, clients)
	r.setPhase("warmup")
	if err := sleep(ctx, r.cfg.Warmup); err != nil {
		return nil, fmt.Errorf("bench: warming up: %w", err)
	}

	w, err := r.measure(ctx)
	if err != nil {
		return nil, err
	}
	stopPublishers()
	r.publishers.Wait()
	r.setPhase("drain")
	res.DrainSeconds = r.drain(ctx).Seconds()
	r.fill(res, clients, before, w, selfBefore.RSS)
	return res, nil
}

// window holds the samples taken at the start and end of the window.
type window struct {
	server   [2]procSample // zero without --pid
	self     [2]time.Duration
	selfRSS  int64 // at the end
	wall     time.Duration
	received [2]uint64 // chat deliveries so far, whenever sent
	reads    [2]readCounts
}

// readCounts is what the connections have read so far.
type readCounts struct {
	wire, frames, inflated uint64 // bytes from the sockets; messages; compressed messages
}

// readSoFar sums the read counters.
func (r *run) readSoFar() readCounts {
	return readCounts{wire: sum(&r.wire), frames: sum(&r.frames), inflated: sum(&r.inflated)}
}

// measure opens the window, waits it out and closes it.
func (r *run) measure(ctx context.Context) (window, error) {
	var w window
	var err error
	if w.server[0], err = r.sampleServer(); err != nil {
		return w, err
	}
	w.self[0] = selfCPU()
	w.received[0] = r.received()
	w.reads[0] = r.readSoFar()
	start := time.Now()
	ns := r.now()
	r.winEnd.Store(ns + int64(r.cfg.Duration))
	r.winStart.Store(ns)
	r.setPhase("measure")
	if err := sleep(ctx, r.cfg.Duration); err != nil {
		return w, fmt.Errorf("bench: measuring: %w", err)
	}
	w.self[1] = selfCPU()
	w.received[1] = r.received()
	w.reads[1] = r.readSoFar()
	w.wall = time.Since(start)
	if s, err := readProc(os.Getpid()); err == nil {
		w.selfRSS = s.RSS
	}
	if w.server[1], err = r.sampleServer(); err != nil {
		return w, err
	}
	return w, nil
}

// received counts the chat deliveries so far, in the window or not.
func (r *run) received() uint64 {
	return r.lat.count() + r.replayLat.count() + sum(&r.outside)
}

// sampleServer reads the server process, or returns zero without --pid.
func (r *run) sampleServer() (procSample, error) {
	if r.cfg.PID == 0 {
		return procSample{}, nil
	}
	s, err := readProc(r.cfg.PID)
	if err != nil {
		return s, fmt.Errorf("bench: --pid %d: %w", r.cfg.PID, err)
	}
	return s, nil
}

// connSpec says what connection i of the plan is.
type connSpec struct {
	room      int // index into run.rooms, or -1
	publisher bool
	slow      bool // overload: reads at most SlowRate bytes/s
}

// plan names the scenario's rooms and returns its connections.
func (r *run) plan() []connSpec {
	c := r.cfg
	specs := make([]connSpec, c.connections())
	switch c.Scenario {
	case Joins:
		r.rooms = []string{"bench-" + c.Scenario}
	case Fanout, Overload:
		r.rooms = []string{"bench-" + c.Scenario}
		for i := range specs {
			specs[i] = connSpec{room: 0, publisher: i < c.Publishers,
				slow: i >= c.Publishers && i < c.Publishers+c.Slow}
		}
	default:
		r.rooms = make([]string, c.Rooms)
		for i := range r.rooms {
			r.rooms[i] = "bench-" + strconv.Itoa(i)
		}
		for i := range specs {
			specs[i] = connSpec{room: -1, publisher: c.Scenario == Rooms}
			if c.Rooms > 0 {
				specs[i].room = i % c.Rooms
			}
		}
	}
	return specs
}

// dialAll opens the planned connections, DialConcurrency at a time, and
// starts each one's reader. It returns the connections that opened.
func (r *run) dialAll(ctx context.Context, specs []connSpec) []*client {
	all := make([]*client, len(specs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.DialConcurrency, len(specs)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(specs) {
					return
				}
				all[i] = r.dialOne(ctx, i, specs[i])
			}
		})
	}
	wg.Wait()
	clients := all[:0]
	for _, c := range all {
		if c != nil {
			clients = append(clients, c)
		}
	}
	return clients
}

// dialOne opens connection i and starts reading it, or returns nil.
func (r *run) dialOne(ctx context.Context, i int, s connSpec) *client {
	room := ""
	if s.room >= 0 {
		room = r.rooms[s.room]
	}
	user := username(i, r.cfg.Users)
	conn, err := r.dialer.dial(ctx, i, r.dialer.url(user, room))
	if err != nil {
		r.noteDialError(err)
		return nil
	}
	if s.slow {
		conn.slowDown()
	}
	c := r.newClient(i, user, s, conn)
	r.connected.Add(1)
	if conn.deflate {
		r.deflate.Add(1)
	}
	r.startReading(c)
	return c
}

// newClient makes connection id of spec s, user's, over conn.
func (r *run) newClient(id int, user string, s connSpec, conn *wsConn) *client {
	shard := id % latencyShards
	return &client{id: id, user: user, room: s.room, publisher: s.publisher, slow: s.slow, conn: conn,
		lat: r.lat.shard(id), replayLat: r.replayLat.shard(id),
		outside: &r.outside[shard].Uint64, frames: &r.frames[shard].Uint64, wire: &r.wire[shard].Uint64,
		parser: frameParser{deflate: conn.deflate, inflated: &r.inflated[shard].Uint64}}
}

func (r *run) noteDialError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dialFailures++
	if r.firstDialError == "" {
		r.firstDialError = err.Error()
	}
}

// waitReady waits until n connections are ready (joined their room), or
// until only the time the later phases need is left before ctx's deadline.
func (r *run) waitReady(ctx context.Context, n int) {
	deadline := time.Now().Add(r.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d.Add(-(r.cfg.Warmup + r.cfg.Duration + r.cfg.Drain + phaseSlack))
	}
	for r.ready.Load() < int64(n) && time.Now().Before(deadline) {
		if sleep(ctx, 10*time.Millisecond) != nil {
			return
		}
	}
}

// startPublishers starts one goroutine per publishing connection, their
// first sends spread evenly over one send interval.
func (r *run) startPublishers(ctx context.Context, clients []*client) {
	members := make([]uint64, len(r.rooms))
	var pubs []*client
	for _, c := range clients {
		if c.room >= 0 {
			members[c.room]++
		}
		if c.publisher {
			pubs = append(pubs, c)
		}
	}
	if len(pubs) == 0 {
		return
	}
	// Fanout, overload: Rate is the total, shared by the publishers; rooms:
	// per connection.
	perPublisher := r.cfg.Rate
	if r.cfg.Scenario != Rooms {
		perPublisher = r.cfg.Rate / float64(len(pubs))
	}
	interval := time.Duration(float64(time.Second) / perPublisher)
	for j, c := range pubs {
		phase := interval * time.Duration(j) / time.Duration(len(pubs))
		r.publishers.Add(1)
		go r.publish(ctx, c, r.rooms[c.room], members[c.room], interval, phase)
	}
}

// drain waits until every delivery expected from the window has arrived,
// or none has for cfg.Drain, or ctx ends, and returns how long it waited.
// Waiting out slow deliveries keeps them in the ratio and the latencies.
// The overload scenario waits cfg.Drain at most: what it reports is what
// had arrived by then.
func (r *run) drain(ctx context.Context) time.Duration {
	start := time.Now()
	count := func() uint64 { return r.lat.count() + r.replayLat.count() }
	last, lastChange := count(), start
	for last < r.expected.Load() && time.Since(lastChange) < r.cfg.Drain {
		if sleep(ctx, 10*time.Millisecond) != nil {
			break
		}
		if n := count(); n != last {
			last = n
			if r.cfg.Scenario != Overload {
				lastChange = time.Now()
			}
		}
	}
	return time.Since(start)
}

// closeAll sends every connection a close frame and closes it, stops the
// pollers, and waits for the publishers and readers to finish. The
// sockets the pollers read are closed last, once nothing reads them.
func (r *run) closeAll(clients []*client) {
	r.setPhase("close")
	r.mu.Lock() // ended starts a resume only before this
	r.closing.Store(true)
	r.mu.Unlock()
	r.resumes.Wait()
	r.mu.Lock()
	clients = append(clients, r.replacements...)
	r.mu.Unlock()
	normal := ws.ClosePayload(ws.CloseNormal, "")
	r.forEach(clients, func(c *client) {
		_ = c.conn.writeFrame(ws.OpClose, normal, closeWriteTimeout)
		c.conn.closeConn()
	})
	for _, p := range r.pollers {
		p.close()
	}
	r.publishers.Wait()
	r.readers.Wait()
	r.forEach(clients, func(c *client) { c.conn.closeFD() })
}

// forEach calls fn for each client, DialConcurrency at a time.
func (r *run) forEach(clients []*client, fn func(*client)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.DialConcurrency, len(clients)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(clients); i = int(next.Add(1)) - 1 {
				fn(clients[i])
			}
		})
	}
	wg.Wait()
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
