package redis

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
)

// The presence timing, from the TTL: a node's registration lasts half of
// it and is refreshed every quarter, which tolerates one late refresh; the
// reapers look every quarter, so a dead node's users go within 3/4 TTL.

// windowMS is how long one refresh keeps this node registered.
func (p *Presence) windowMS() int64 { return (p.ttl / 2).Milliseconds() }

// period is how often the heartbeat and the reaper run.
func (p *Presence) period() time.Duration { return p.ttl / 4 }

// beatRetry is how soon a heartbeat that failed, or left repairs undone,
// is tried again: so that once Redis is back after an outage, the node's
// users are back in presence within about a second, not a quarter TTL.
const beatRetry = time.Second

// heartbeat refreshes this node's registration until ctx ends, and repairs
// what Redis lost or what failed to reach it.
func (p *Presence) heartbeat(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.wakeBeat:
		}
		wait := p.period()
		if !p.beat(ctx) {
			wait = min(wait, beatRetry)
		}
		t.Reset(wait)
	}
}

// beat refreshes this node's registration once, then repairs if needed. It
// reports whether all went through.
func (p *Presence) beat(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	known, err := heartbeatScript.Run(cctx, p.rdb, nil, p.prefix, p.node, p.windowMS()).Int64()
	cancel()
	if err != nil {
		return false
	}
	p.mu.Lock()
	if known == 0 {
		p.restore = true
	}
	needed := p.restore || len(p.pending) > 0
	p.mu.Unlock()
	if !needed {
		return true
	}
	p.report(p.repair(ctx))
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.restore && len(p.pending) == 0
}

// repair records this node's users again if Redis forgot the node, and
// retries forgetting the pairs whose Add or Remove failed. It returns the
// pairs to report as gone. Add and Remove wait meanwhile.
func (p *Presence) repair(ctx context.Context) []pair {
	p.exclusive.Lock()
	defer p.exclusive.Unlock()
	p.mu.Lock()
	restore := p.restore
	held := p.heldLocked()
	pending := maps.Clone(p.pending)
	p.mu.Unlock()
	if restore && p.restoreAll(ctx, held) == nil {
		p.mu.Lock()
		p.restore = false
		p.mu.Unlock()
	}
	var gone []pair
	for pr, report := range pending {
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		res, err := removeScript.Run(cctx, p.rdb, nil, p.prefix, p.node, pr.room, pr.user).Int64Slice()
		cancel()
		if err != nil || len(res) != 2 {
			break
		}
		p.mu.Lock()
		delete(p.pending, pr)
		p.mu.Unlock()
		if res[0] == 1 && report {
			gone = append(gone, pr)
		}
	}
	return gone
}

// heldLocked lists the pairs this node holds, flattened room, user, ….
func (p *Presence) heldLocked() []any {
	var held []any
	for room, users := range p.local {
		for user := range users {
			held = append(held, room, user)
		}
	}
	return held
}

// reportRestored passes flattened (room, user) pairs that came back online
// to the restored callback, if one is registered.
func (p *Presence) reportRestored(pairs []string) {
	p.mu.Lock()
	restored := p.restored
	p.mu.Unlock()
	for i := 0; restored != nil && i+1 < len(pairs); i += 2 {
		restored(pairs[i], pairs[i+1])
	}
}

// restoreAll registers this node and records that it holds the pairs.
func (p *Presence) restoreAll(ctx context.Context, held []any) error {
	for batch := range slices.Chunk(held, 2*restoreBatch) {
		args := append([]any{p.prefix, p.node, p.windowMS()}, batch...)
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		back, err := restoreScript.Run(cctx, p.rdb, nil, args...).StringSlice()
		cancel()
		if err != nil {
			return err
		}
		p.reportRestored(back)
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if len(held) == 0 {
		if err := restoreScript.Run(cctx, p.rdb, nil, p.prefix, p.node, p.windowMS()).Err(); err != nil {
			return err
		}
	}
	// Restored: a later loss of Redis's data is no reaping.
	return p.rdb.Del(cctx, p.prefix+"presence:reaped:"+p.node).Err()
}

// reaper reaps dead nodes until ctx ends.
func (p *Presence) reaper(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.reap(ctx)
		}
	}
}

// reap forgets what the nodes whose registration expired held, and reports
// the pairs that thereby became absent.
func (p *Presence) reap(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	nodes, err := expiredScript.Run(cctx, p.rdb, nil, p.prefix, p.node, reapBatch).StringSlice()
	cancel()
	for _, node := range nodes {
		if err != nil {
			return
		}
		var flat []string
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		flat, err = reapScript.Run(cctx, p.rdb, nil, p.prefix, node).StringSlice()
		cancel()
		p.report(pairs(flat))
	}
}

// report tells the expiry callback, if any, that the pairs are gone.
func (p *Presence) report(gone []pair) {
	p.mu.Lock()
	expired := p.expired
	p.mu.Unlock()
	if expired == nil {
		return
	}
	for _, pr := range gone {
		expired(pr.room, pr.user)
	}
}

// pairs turns room, user, room, user, … into pairs.
func pairs(flat []string) []pair {
	var list []pair
	for i := 0; i+1 < len(flat); i += 2 {
		list = append(list, pair{flat[i], flat[i+1]})
	}
	return list
}

// roomKey names the hash of room's users.
func (p *Presence) roomKey(room string) string { return p.prefix + "presence:room:" + room }

// sorted sorts list in place and returns it, never nil.
func sorted(list []string) []string {
	if list == nil {
		return []string{}
	}
	slices.Sort(list)
	return list
}

// validName reports whether name can be stored: it must not contain the
// NUL byte that separates room and user in the scripts.
func validName(name string) bool {
	return strings.IndexByte(name, 0) < 0
}
