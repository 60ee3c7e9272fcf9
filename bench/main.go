package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"
)

// Scenario names.
const (
	Idle     = "idle"
	Fanout   = "fanout"
	Rooms    = "rooms"
	Overload = "overload"
	Joins    = "joins"
)

// Config is one run's settings. Main fills it from flags; zero values of
// the optional fields take the defaults noted.
type Config struct {
	URL      string // ws://host:port, or with a path to the WebSocket endpoint (default /ws)
	Scenario string // Idle, Fanout, Rooms, Overload or Joins

	Connections int     // idle, rooms, joins: connections
	Subscribers int     // fanout, overload: connections in the room, publishers included
	Publishers  int     // fanout, overload: how many subscribers also publish; 0: one per 10 msg/s
	Rate        float64 // fanout, overload: msg/s in total; rooms: msg/s per connection
	Slow        int     // overload: subscribers that read at most SlowRate bytes/s
	SlowRate    int     // overload: bytes/s a slow subscriber reads
	NoResume    bool    // overload: an evicted subscriber stays away instead of resuming
	Rooms       int     // idle, rooms: rooms the connections are spread over (idle: 0 = none)
	Users       int     // distinct usernames cycled over connections; 0: one per connection
	Payload     int     // chat content bytes, at least 20
	Compression bool    // offer permessage-deflate, and inflate what comes compressed

	Warmup   time.Duration // connected and publishing, before measuring
	Duration time.Duration // the measuring window
	Drain    time.Duration // after the window, wait for deliveries until none arrives for this long (joins: presence frames)
	Timeout  time.Duration // bound on the whole run; 0: derived from the others

	PID          int           // server process to read CPU and memory of; 0: none
	PingInterval time.Duration // the server's ping interval, for the expected heartbeat count

	Sources         int // loopback source addresses to dial from (127.0.0.1, .2, …)
	DialConcurrency int // dials in flight at once

	CPUProfile string // file to write the bench's own CPU profile to; "": none

	noPollers bool // tests: a reader goroutine per connection, as without epoll
}

// Main runs `partyline bench` with args (the words after "bench"): progress
// and the summary table go to stderr, one JSON result line to stdout. It
// returns nil after -h.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	res, err := Run(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	writeTable(stderr, res)
	line, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("bench: encode result: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

const usageHead = `usage: partyline bench [flags]

Drives a partyline server (or any server speaking its protocol) and reports
throughput, delivery ratio, end-to-end latency, the bytes read per
delivery and the server's CPU and memory. Progress and a summary table go
to stderr, one JSON line to stdout.

Scenarios:
  idle    --connections C [--rooms R]: C quiet connections; server memory per
          connection and CPU at idle (per heartbeat, pings counted).
  fanout  --subscribers N --publishers P --rate R: one room, N members of
          which P publish R msg/s in total; each message reaches all N.
  rooms   --connections C --rooms R --rate r: C connections spread over R
          rooms, each publishing r msg/s to its room.
  overload  fanout beyond what the server can deliver (defaults: 10,000
          subscribers, 100 msg/s, --warmup 5s --duration 20s --drain 10s),
          optionally with --slow subscribers that read at --slow-rate. A
          subscriber closed with 4009 resumes after the "retry after" of
          its close reason, with since; the report splits what arrived
          live (its lag) from what the resumes replayed, and counts the
          evicted.
  joins   --connections N: a join storm, N distinct users (or --users)
          joining one room at once; the time until all have joined, and
          the presence frames (online_users, user_joined, user_left,
          presence_diff) received until none has come for --drain, by
          type, in objects and bytes, with the server's CPU for it all.

Flags:
`

// parseFlags parses args into a validated Config.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("partyline bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:8080", "server `URL`; connects to URL/ws?username=…&room=… unless a path is given")
	fs.StringVar(&c.Scenario, "scenario", Fanout, "idle, fanout, rooms, overload or joins")
	fs.IntVar(&c.Connections, "connections", 10000, "idle, rooms, joins: connections")
	fs.IntVar(&c.Subscribers, "subscribers", 1000, "fanout: connections in the room, publishers included (overload: 10000)")
	fs.IntVar(&c.Publishers, "publishers", 0, "fanout, overload: subscribers that also publish (0: one per 10 msg/s, under the server's default rate limit)")
	fs.Float64Var(&c.Rate, "rate", 0, "fanout, overload: msg/s in total (default 100); rooms: msg/s per connection (default 1)")
	fs.IntVar(&c.Slow, "slow", 0, "overload: subscribers (not publishers) that read slowly")
	fs.IntVar(&c.SlowRate, "slow-rate", 4096, "overload: `bytes` per second a slow subscriber reads")
	fs.BoolVar(&c.NoResume, "no-resume", false, "overload: evicted subscribers stay away instead of resuming with since")
	fs.IntVar(&c.Rooms, "rooms", 1000, "idle, rooms: rooms to spread connections over (idle: 0 joins none)")
	fs.IntVar(&c.Users, "users", 0, "distinct usernames cycled over the connections (0: one per connection; a few spare the server the presence traffic of N users joining one room, batched above its --presence-list-max, N² below)")
	fs.IntVar(&c.Payload, "payload", 64, "chat content size in `bytes` (at least 20: a send-time stamp, then padding of words, about as compressible as English prose)")
	fs.BoolVar(&c.Compression, "compression", false, "offer permessage-deflate (no context takeover) and inflate the compressed messages")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "time connected and publishing before measuring")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measuring window")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "after the window, wait for in-flight deliveries until none arrives for this long (overload: 10s, and at most this long)")
	fs.DurationVar(&c.Timeout, "timeout", 0, "bound on the whole run (0: warmup+duration+drain+1m+1s per 1000 connections)")
	fs.IntVar(&c.PID, "pid", 0, "server process ID: read its CPU and RSS from /proc")
	fs.DurationVar(&c.PingInterval, "ping-interval", 0, "idle: the server's ping interval, for the expected heartbeat count")
	fs.IntVar(&c.Sources, "sources", 4, "loopback source addresses to dial from (127.0.0.1 …), each good for ~28k ports")
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 64, "dials in flight at once")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the bench's own CPU profile to `file`")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if c.Scenario == Overload {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		c.overloadDefaults(given)
	}
	return c, c.validate()
}

// overloadDefaults sets the overload scenario's own defaults for the flags
// not given: the 10,000 subscribers and longer phases.
func (c *Config) overloadDefaults(given map[string]bool) {
	for name, set := range map[string]func(){
		"subscribers": func() { c.Subscribers = 10000 },
		"warmup":      func() { c.Warmup = 5 * time.Second },
		"duration":    func() { c.Duration = 20 * time.Second },
		"drain":       func() { c.Drain = 10 * time.Second },
	} {
		if !given[name] {
			set()
		}
	}
}

// validate fills scenario defaults and reports the first bad setting.
func (c *Config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("bench: --url %q: want ws://host:port or wss://host:port", c.URL)
	}
	switch c.Scenario {
	case Idle, Rooms, Joins:
		if c.Connections < 1 {
			return fmt.Errorf("bench: --connections %d: want at least 1", c.Connections)
		}
	case Fanout, Overload:
		if c.Subscribers < 1 {
			return fmt.Errorf("bench: --subscribers %d: want at least 1", c.Subscribers)
		}
	default:
		return fmt.Errorf("bench: --scenario %q: want idle, fanout, rooms, overload or joins", c.Scenario)
	}
	if err := c.validateRates(); err != nil {
		return err
	}
	return c.validateRest()
}

func (c *Config) validateRates() error {
	if c.Rate < 0 {
		return fmt.Errorf("bench: --rate %g: want a positive rate", c.Rate)
	}
	switch c.Scenario {
	case Fanout, Overload:
		if c.Rate == 0 {
			c.Rate = 100
		}
		if c.Publishers < 0 || c.Publishers > c.Subscribers {
			return fmt.Errorf("bench: --publishers %d: want 0 to --subscribers (%d)", c.Publishers, c.Subscribers)
		}
		if c.Publishers == 0 {
			c.Publishers = min(c.Subscribers, max(1, int((c.Rate+9)/10)))
		}
		if c.Slow < 0 || c.Slow > c.Subscribers-c.Publishers {
			return fmt.Errorf("bench: --slow %d: want 0 to the %d subscribers that do not publish", c.Slow, c.Subscribers-c.Publishers)
		}
		if c.Slow > 0 && c.SlowRate < 1 {
			return fmt.Errorf("bench: --slow-rate %d: want at least 1 byte/s", c.SlowRate)
		}
	case Rooms:
		if c.Rate == 0 {
			c.Rate = 1
		}
		if c.Rooms < 1 {
			return fmt.Errorf("bench: --rooms %d: want at least 1", c.Rooms)
		}
	case Idle:
		if c.Rooms < 0 {
			return fmt.Errorf("bench: --rooms %d: want 0 or more", c.Rooms)
		}
	}
	return nil
}

func (c *Config) validateRest() error {
	switch {
	case c.Payload < stampLen:
		return fmt.Errorf("bench: --payload %d: want at least %d bytes", c.Payload, stampLen)
	case c.Users < 0:
		return fmt.Errorf("bench: --users %d: want 0 or more", c.Users)
	case c.Duration <= 0:
		return fmt.Errorf("bench: --duration %v: want more than 0", c.Duration)
	case c.Warmup < 0 || c.Drain < 0 || c.Timeout < 0:
		return errors.New("bench: --warmup, --drain and --timeout must not be negative")
	case c.Sources < 1 || c.Sources > 250:
		return fmt.Errorf("bench: --sources %d: want 1 to 250", c.Sources)
	case c.DialConcurrency < 1:
		return fmt.Errorf("bench: --dial-concurrency %d: want at least 1", c.DialConcurrency)
	case c.PID < 0:
		return fmt.Errorf("bench: --pid %d: want a process ID", c.PID)
	}
	if c.Timeout == 0 {
		c.Timeout = c.Warmup + c.Duration + c.Drain + time.Minute +
			time.Duration(c.connections()/1000)*time.Second
	}
	return nil
}

// connections returns how many connections the scenario opens.
func (c *Config) connections() int {
	if c.Scenario == Fanout || c.Scenario == Overload {
		return c.Subscribers
	}
	return c.Connections
}
