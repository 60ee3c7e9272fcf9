// Package redis joins partyline nodes into one cluster over Redis: a Broker
// carries events between the nodes (docs/protocol.md §8) and a Presence keeps
// the cluster-wide list of online users, dropping those of a node that died
// within the presence TTL.
//
// It is built on github.com/redis/go-redis/v9, the most widely used Go Redis
// client, chosen over rueidis because its PubSub reconnects and resubscribes
// by itself: the Broker only has to notice that it did (see Broker).
//
// It needs one Redis server (standalone, or a primary behind a proxy or
// Sentinel), not Redis Cluster: the presence scripts touch keys they compute
// from their arguments.
//
// Every key and channel starts with Options.Prefix ("partyline:"):
//
//	partyline:room:lobby            channel of topic "room:lobby"
//	partyline:presence:nodes        sorted set: node → expiry (Redis time, ms)
//	partyline:presence:node:ID      set of "room\x00user" that node ID holds
//	partyline:presence:room:lobby   hash: user → number of nodes holding it
//	partyline:presence:rooms        set of rooms with at least one user
//	partyline:presence:order        number of the latest first or last decision
//	partyline:presence:reaped:ID    set for a day when node ID was reaped
package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/partyline/partyline"
)

// Defaults for the zero values of Options.
const (
	// DefaultPrefix starts every key and channel name.
	DefaultPrefix = "partyline:"
	// DefaultPresenceTTL is the SPEC's --presence-ttl default.
	DefaultPresenceTTL = 60 * time.Second
	// DefaultTimeout bounds each Redis command.
	DefaultTimeout = 2 * time.Second
)

// Options configures a Client. The zero value is the default for every field.
type Options struct {
	// Prefix starts every key and channel name, so several clusters can
	// share one Redis database. Zero value: "partyline:".
	Prefix string
	// Node names this process among the cluster's nodes in presence; it must
	// be unique in the cluster. Zero value: a random id, new at every start.
	Node string
	// PresenceTTL bounds how long the users of a node that died without a
	// word stay present (SPEC --presence-ttl). Zero value: 60s.
	PresenceTTL time.Duration
	// Timeout bounds each Redis command, so that callers get an error
	// wrapping partyline.ErrUnavailable instead of waiting while Redis is
	// unreachable. Zero value: 2s.
	Timeout time.Duration
}

// withDefaults returns o with zero values replaced by defaults, or an error
// naming the bad field.
func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Node == "" {
		o.Node = randomID()
	}
	if o.PresenceTTL == 0 {
		o.PresenceTTL = DefaultPresenceTTL
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	switch {
	case o.PresenceTTL < 100*time.Millisecond:
		return o, fmt.Errorf("redis: PresenceTTL %v is below 100ms", o.PresenceTTL)
	case o.Timeout < 0:
		return o, fmt.Errorf("redis: Timeout %v is negative", o.Timeout)
	case !validName(o.Node):
		return o, fmt.Errorf("redis: Node %q contains a NUL byte", o.Node)
	}
	return o, nil
}

// Client is a connection pool to one Redis server, shared by the Brokers and
// Presences made from it. It is safe for concurrent use.
type Client struct {
	rdb  *goredis.Client
	opts Options

	mu      sync.Mutex // guards the following
	closers []func() error
	closed  bool
}

// Open connects to the Redis server at url (redis://host:port/db, or
// rediss:// for TLS) and checks that it answers. It returns an error wrapping
// partyline.ErrUnavailable when it does not, or is not ready yet (loading
// its data, no primary), so that the caller may try again later; and
// another error when Redis refuses what it is asked (a wrong password, a
// database number out of range), which waiting will not mend.
func Open(ctx context.Context, url string, opts Options) (*Client, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ropts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: open: bad url: %w", err)
	}
	// Let callers' deadlines bound network I/O; Publish and the presence
	// calls add opts.Timeout to theirs.
	ropts.ContextTimeoutEnabled = true
	ropts.DialTimeout = opts.Timeout
	// One retry, not go-redis's three with backoff: when Redis is gone a
	// command should fail within the timeout, not stall a publish for
	// seconds; the callers retry what matters.
	ropts.MaxRetries = 1
	c := &Client{rdb: goredis.NewClient(ropts), opts: opts}
	if err := pingAtOpen(ctx, c.rdb, opts.Timeout); err != nil {
		c.rdb.Close()
		return nil, fmt.Errorf("redis: open %s: %w", ropts.Addr, err)
	}
	return c, nil
}

// pingAtOpen is ping for Open: a refusal does not wrap ErrUnavailable.
func pingAtOpen(ctx context.Context, rdb *goredis.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	switch {
	case err == nil:
		return nil
	case refused(err):
		return fmt.Errorf("redis: ping: %w", err)
	default:
		return unavailable("ping", err)
	}
}

// refused reports whether err holds Redis's answer to a request it will not
// serve as long as nothing changes on its side: any error reply but those
// that pass (LOADING, BUSY, MASTERDOWN, TRYAGAIN).
func refused(err error) bool {
	var reply goredis.Error
	if !errors.As(err, &reply) {
		return false
	}
	for _, passing := range []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"} {
		if goredis.HasErrorPrefix(err, passing) {
			return false
		}
	}
	return true
}

// Broker returns a new Broker for this node. Each Broker holds one PubSub
// connection of its own; Close on the Client closes it too.
func (c *Client) Broker() *Broker {
	b := newBroker(c.rdb, c.opts)
	c.track(b.Close)
	return b
}

// Presence returns a new Presence for this node (Options.Node), which
// starts refreshing the node's entries and reaping dead nodes' at once;
// Close on the Client stops it too.
func (c *Client) Presence() *Presence {
	p := newPresence(c.rdb, c.opts)
	c.track(p.Close)
	return p
}

// Node returns the id of this node in presence.
func (c *Client) Node() string { return c.opts.Node }

// Ping implements partyline.Pinger.
func (c *Client) Ping(ctx context.Context) error {
	return ping(ctx, c.rdb, c.opts.Timeout)
}

// Close closes the Brokers and Presences made from c, then the connection
// pool. A Presence closed this way does not remove its users: the other
// nodes reap them after the presence TTL, as if this node had died.
func (c *Client) Close() error {
	c.mu.Lock()
	closers := c.closers
	c.closers, c.closed = nil, true
	c.mu.Unlock()
	var errs []error
	for _, fn := range closers {
		errs = append(errs, fn())
	}
	if err := c.rdb.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// track makes Close call fn.
func (c *Client) track(fn func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		fn()
		return
	}
	c.closers = append(c.closers, fn)
}

// ping checks that rdb answers within timeout.
func ping(ctx context.Context, rdb *goredis.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// unavailable wraps a Redis failure of op as partyline.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("redis: %s: %w: %w", op, partyline.ErrUnavailable, err)
}

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
