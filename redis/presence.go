package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/partyline/partyline"
)

// reapBatch is how many dead nodes one reaper round looks at.
const reapBatch = 100

// restoreBatch is how many (room, user) pairs one restore script carries.
const restoreBatch = 500

// Presence is a partyline.Presence shared by the nodes of a cluster through
// Redis (the keys are listed in the package comment).
//
// Each node registers itself with an expiry of half the presence TTL and
// refreshes it every quarter TTL from a heartbeat goroutine, at O(1) cost
// whatever its number of users. A reaper goroutine on every node looks every
// quarter TTL for nodes whose expiry passed and, in one script per node,
// forgets all they held and reports the (room, user) pairs that thereby
// became absent, so a dead node's users are gone within three quarters of
// the TTL, each reported by exactly one node.
//
// A node that finds itself unregistered — reaped while cut off from Redis
// longer than the TTL, or after Redis lost its data — records its users
// again. A Remove that fails is retried by the heartbeat goroutine, which
// reports the pair to the expiry callback if it turns out to be the last.
type Presence struct {
	rdb     *goredis.Client
	prefix  string
	node    string
	ttl     time.Duration
	timeout time.Duration

	// exclusive is held for reading by Add and Remove and for writing by
	// the heartbeat goroutine while it restores or retries, so that it
	// never works from a stale view of local.
	exclusive sync.RWMutex

	mu       sync.Mutex                     // guards the following
	local    map[string]map[string]struct{} // room → users this node holds
	pending  map[pair]bool                  // failed to forget; true: report when last
	restore  bool                           // Redis forgot this node
	expired  func(room, user string)
	restored func(room, user string)
	closed   bool
	wakeBeat chan struct{} // asks the heartbeat goroutine to restore now

	cancel context.CancelFunc // stops the goroutines
	wg     sync.WaitGroup     // the heartbeat and reaper goroutines
}

// pair is one user in one room.
type pair struct{ room, user string }

var (
	_ partyline.Presence         = (*Presence)(nil)
	_ partyline.OrderedPresence  = (*Presence)(nil)
	_ partyline.PresenceRestorer = (*Presence)(nil)
	_ partyline.PresenceExpirer  = (*Presence)(nil)
	_ partyline.Counter          = (*Presence)(nil)
	_ partyline.Pinger           = (*Presence)(nil)
)

// newPresence returns a Presence for opts.Node and starts its goroutines.
func newPresence(rdb *goredis.Client, opts Options) *Presence {
	p := &Presence{
		rdb:      rdb,
		prefix:   opts.Prefix,
		node:     opts.Node,
		ttl:      opts.PresenceTTL,
		timeout:  opts.Timeout,
		local:    make(map[string]map[string]struct{}),
		pending:  make(map[pair]bool),
		wakeBeat: make(chan struct{}, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(2)
	go p.heartbeat(ctx)
	go p.reaper(ctx)
	return p
}

// Add implements partyline.Presence.
func (p *Presence) Add(ctx context.Context, room, user string) (bool, error) {
	first, _, err := p.AddOrdered(ctx, room, user)
	return first, err
}

// AddOrdered implements partyline.OrderedPresence.
func (p *Presence) AddOrdered(ctx context.Context, room, user string) (bool, uint64, error) {
	if err := p.check(room, user); err != nil {
		return false, 0, err
	}
	p.exclusive.RLock()
	defer p.exclusive.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	res, err := addScript.Run(ctx, p.rdb, nil, p.prefix, p.node, p.windowMS(), room, user).Int64Slice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		// The script may have run: make sure the pair goes away.
		p.retryLater(pair{room, user}, false)
		return false, 0, unavailable("presence add", err)
	}
	p.settle(pair{room, user}, true, res[1] == 0)
	return res[0] == 1, uint64(res[2]), nil
}

// Remove implements partyline.Presence. When Redis cannot be reached the
// pair is forgotten later by the heartbeat goroutine, which reports it to
// the expiry callback if no node holds the user in the room then.
func (p *Presence) Remove(ctx context.Context, room, user string) (bool, error) {
	last, _, err := p.RemoveOrdered(ctx, room, user)
	return last, err
}

// RemoveOrdered implements partyline.OrderedPresence.
func (p *Presence) RemoveOrdered(ctx context.Context, room, user string) (bool, uint64, error) {
	if err := p.check(room, user); err != nil {
		return false, 0, err
	}
	p.exclusive.RLock()
	defer p.exclusive.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	res, err := removeScript.Run(ctx, p.rdb, nil, p.prefix, p.node, room, user).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		p.retryLater(pair{room, user}, true)
		return false, 0, unavailable("presence remove", err)
	}
	p.settle(pair{room, user}, false, false)
	return res[0] == 1, uint64(res[1]), nil
}

// Users implements partyline.Presence.
func (p *Presence) Users(ctx context.Context, room string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	users, err := p.rdb.HKeys(ctx, p.roomKey(room)).Result()
	if err != nil {
		return nil, unavailable("presence users", err)
	}
	return sorted(users), nil
}

// Contains implements partyline.Presence.
func (p *Presence) Contains(ctx context.Context, room, user string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	ok, err := p.rdb.HExists(ctx, p.roomKey(room), user).Result()
	if err != nil {
		return false, unavailable("presence contains", err)
	}
	return ok, nil
}

// Count implements partyline.Counter in O(1): the room's hash holds one
// field per user held by any node (the drop script deletes a field when its
// last node lets go), so its length is the number of users online.
func (p *Presence) Count(ctx context.Context, room string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	n, err := p.rdb.HLen(ctx, p.roomKey(room)).Result()
	if err != nil {
		return 0, unavailable("presence count", err)
	}
	return int(n), nil
}

// Rooms returns the rooms where at least one user is online on some node,
// sorted, never nil; the whole-server room "" is left out.
func (p *Presence) Rooms(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	rooms, err := p.rdb.SMembers(ctx, p.prefix+"presence:rooms").Result()
	if err != nil {
		return nil, unavailable("presence rooms", err)
	}
	rooms = slices.DeleteFunc(rooms, func(r string) bool { return r == "" })
	return sorted(rooms), nil
}

// StartExpiry implements partyline.PresenceExpirer. expired is called from
// the reaper goroutine, one pair at a time, and must not block for long.
func (p *Presence) StartExpiry(expired func(room, user string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expired = expired
}

// StartRestore implements partyline.PresenceRestorer. restored is called
// from the heartbeat goroutine for each pair this node put back online after
// Redis or the other nodes had forgotten it, and must not block for long.
func (p *Presence) StartRestore(restored func(room, user string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restored = restored
}

// Ping implements partyline.Pinger.
func (p *Presence) Ping(ctx context.Context) error {
	return ping(ctx, p.rdb, p.timeout)
}

// Close stops refreshing this node and reaping others, and waits for the
// goroutines that did. It does not remove the node's users: the other
// nodes reap them after the TTL, as if this node had died. Methods called
// after Close return an error.
func (p *Presence) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if !already {
		p.cancel()
		p.wg.Wait()
	}
	return nil
}

// check refuses names the scripts cannot store, and calls after Close.
func (p *Presence) check(room, user string) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return errors.New("redis: presence closed")
	case !validName(room) || !validName(user):
		return fmt.Errorf("redis: presence: room %q or user %q contains a NUL byte", room, user)
	}
	return nil
}

// settle records that this node holds pr or not after Add or Remove
// reached Redis, and that Redis had forgotten this node when forgotten.
func (p *Presence) settle(pr pair, held, forgotten bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, pr)
	users := p.local[pr.room]
	if held {
		if users == nil {
			users = make(map[string]struct{})
			p.local[pr.room] = users
		}
		users[pr.user] = struct{}{}
	} else {
		delete(users, pr.user)
		if len(users) == 0 {
			delete(p.local, pr.room)
		}
	}
	if forgotten {
		p.restore = true
		select {
		case p.wakeBeat <- struct{}{}:
		default:
		}
	}
}

// retryLater records that this node does not hold pr but Redis may still
// say it does, after Add or Remove failed: the heartbeat goroutine removes
// it, and reports it to the expiry callback when report and it was last.
func (p *Presence) retryLater(pr pair, report bool) {
	p.settle(pr, false, false)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[pr] = report
}
