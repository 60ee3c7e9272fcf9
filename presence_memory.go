package partyline

import (
	"context"
	"slices"
	"sync"
)

// MemoryPresence tracks presence for a server that runs alone.
type MemoryPresence struct {
	mu    sync.Mutex // guards the following
	rooms map[string]map[string]struct{}
}

var (
	_ Presence   = (*MemoryPresence)(nil)
	_ RoomLister = (*MemoryPresence)(nil)
	_ Counter    = (*MemoryPresence)(nil)
)

// NewMemoryPresence returns an empty presence.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{rooms: make(map[string]map[string]struct{})}
}

// Add implements Presence.
func (p *MemoryPresence) Add(ctx context.Context, room, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.rooms[room]
	if users == nil {
		users = make(map[string]struct{})
		p.rooms[room] = users
	}
	if _, ok := users[user]; ok {
		return false, nil
	}
	users[user] = struct{}{}
	return true, nil
}

// Remove implements Presence.
func (p *MemoryPresence) Remove(ctx context.Context, room, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.rooms[room]
	if _, ok := users[user]; !ok {
		return false, nil
	}
	delete(users, user)
	if len(users) == 0 {
		delete(p.rooms, room)
	}
	return true, nil
}

// Users implements Presence.
func (p *MemoryPresence) Users(ctx context.Context, room string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := make([]string, 0, len(p.rooms[room]))
	for u := range p.rooms[room] {
		list = append(list, u)
	}
	slices.Sort(list)
	return list, nil
}

// Contains implements Presence.
func (p *MemoryPresence) Contains(ctx context.Context, room, user string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.rooms[room][user]
	return ok, nil
}

// Count implements Counter.
func (p *MemoryPresence) Count(ctx context.Context, room string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rooms[room]), nil
}

// Rooms implements RoomLister: the rooms with online users, sorted.
func (p *MemoryPresence) Rooms(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rooms := make([]string, 0, len(p.rooms))
	for room := range p.rooms {
		if room != "" {
			rooms = append(rooms, room)
		}
	}
	slices.Sort(rooms)
	return rooms, nil
}
