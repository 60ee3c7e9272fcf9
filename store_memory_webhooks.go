package partyline

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"
)

// The MemoryStore's EventLog and IdempotentStore: maps under the store's
// mutex, so a message and its event are recorded under one lock, as a SQL
// Store records them in one transaction. Nothing survives the process.

var (
	_ EventLog        = (*MemoryStore)(nil)
	_ IdempotentStore = (*MemoryStore)(nil)
)

// memoryWebhooks is the MemoryStore's webhook and idempotency state,
// guarded by the store's mutex.
type memoryWebhooks struct {
	urls    map[string][]string // by event type, the URLs that want it
	lastPos int64
	outbox  map[string][]PendingEvent // by URL, ascending Pos

	// presence maps each member of a room ("" for the server) to the time
	// its leave is due, or to the zero time while it is not leaving.
	presence map[RoomUser]time.Time
	members  map[string]int // by room, its entries in presence

	leases map[string]memoryLease // by URL
	keys   map[string]memoryKey   // idempotency keys
	pruned time.Time              // when keys were last rid of expired ones
}

type memoryLease struct {
	owner string
	until time.Time
}

type memoryKey struct {
	created  time.Time
	messages []Message
}

func newMemoryWebhooks() memoryWebhooks {
	return memoryWebhooks{
		outbox:   make(map[string][]PendingEvent),
		presence: make(map[RoomUser]time.Time),
		members:  make(map[string]int),
		leases:   make(map[string]memoryLease),
		keys:     make(map[string]memoryKey),
	}
}

// recordLocked records e for every URL that wants its type. It records
// nothing, and does not marshal e, when no URL wants it.
func (w *memoryWebhooks) recordLocked(e WebhookEvent) error {
	urls := w.urls[e.Type]
	if len(urls) == 0 {
		return nil
	}
	body, err := e.MarshalJSON()
	if err != nil {
		return err
	}
	now := time.Now()
	for _, url := range urls {
		w.lastPos++
		w.outbox[url] = append(w.outbox[url], PendingEvent{Pos: w.lastPos, Recorded: now, Body: body})
	}
	return nil
}

// SetWebhookRoutes implements EventLog.
func (s *MemoryStore) SetWebhookRoutes(routes []WebhookRoute) {
	urls := make(map[string][]string)
	for _, typ := range EventTypes {
		for _, r := range routes {
			if r.Wants(typ) {
				urls[typ] = append(urls[typ], r.URL)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhooks.urls = urls
}

// RecordEvent implements EventLog.
func (s *MemoryStore) RecordEvent(ctx context.Context, e WebhookEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webhooks.recordLocked(e)
}

// PresenceJoined implements EventLog.
func (s *MemoryStore) PresenceJoined(ctx context.Context, room, user string, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &s.webhooks
	key := RoomUser{room, user}
	if _, ok := w.presence[key]; ok {
		w.presence[key] = time.Time{} // present; a leave, if any, is called off
		return nil
	}
	w.presence[key] = time.Time{}
	w.members[room]++
	if room == "" {
		e := NewWebhookEvent(EventUserOnline, now)
		e.Username = user
		return w.recordLocked(e)
	}
	if w.members[room] == 1 {
		e := NewWebhookEvent(EventRoomOccupied, now)
		e.Room = room
		if err := w.recordLocked(e); err != nil {
			return err
		}
	}
	e := NewWebhookEvent(EventUserJoined, now)
	e.Room, e.Username = room, user
	return w.recordLocked(e)
}

// PresenceLeft implements EventLog.
func (s *MemoryStore) PresenceLeft(ctx context.Context, room, user string, due time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := RoomUser{room, user}
	if leaving, ok := s.webhooks.presence[key]; ok && leaving.IsZero() {
		s.webhooks.presence[key] = due
	}
	return nil
}

// SweepPresence implements EventLog. The leaves are decided in the order
// of room and user, each room's user_left events before its room_vacated.
func (s *MemoryStore) SweepPresence(ctx context.Context, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &s.webhooks
	var due []RoomUser
	for key, leaving := range w.presence {
		if !leaving.IsZero() && !leaving.After(now) {
			due = append(due, key)
		}
	}
	slices.SortFunc(due, compareRoomUsers)
	for _, key := range due {
		delete(w.presence, key)
		w.members[key.Room]--
		last := w.members[key.Room] == 0
		if last {
			delete(w.members, key.Room)
		}
		if key.Room == "" {
			e := NewWebhookEvent(EventUserOffline, now)
			e.Username = key.User
			if err := w.recordLocked(e); err != nil {
				return err
			}
			continue
		}
		e := NewWebhookEvent(EventUserLeft, now)
		e.Room, e.Username = key.Room, key.User
		if err := w.recordLocked(e); err != nil {
			return err
		}
		if last {
			e := NewWebhookEvent(EventRoomVacated, now)
			e.Room = key.Room
			if err := w.recordLocked(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// compareRoomUsers orders by room, then user.
func compareRoomUsers(a, b RoomUser) int {
	return cmp.Or(cmp.Compare(a.Room, b.Room), cmp.Compare(a.User, b.User))
}

// PresentUsers implements EventLog.
func (s *MemoryStore) PresentUsers(ctx context.Context) ([]RoomUser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RoomUser
	for key, leaving := range s.webhooks.presence {
		if leaving.IsZero() {
			out = append(out, key)
		}
	}
	slices.SortFunc(out, compareRoomUsers)
	return out, nil
}

// DueLeaves implements EventLog.
func (s *MemoryStore) DueLeaves(ctx context.Context, now time.Time) ([]RoomUser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RoomUser
	for key, leaving := range s.webhooks.presence {
		if !leaving.IsZero() && !leaving.After(now) {
			out = append(out, key)
		}
	}
	slices.SortFunc(out, compareRoomUsers)
	return out, nil
}

// PendingEvents implements EventLog.
func (s *MemoryStore) PendingEvents(ctx context.Context, url string, limit int) ([]PendingEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	events := s.webhooks.outbox[url]
	return slices.Clone(events[:min(max(limit, 0), len(events))]), nil
}

// AckEvents implements EventLog.
func (s *MemoryStore) AckEvents(ctx context.Context, url string, pos []int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &s.webhooks
	events := slices.DeleteFunc(w.outbox[url], func(e PendingEvent) bool {
		return slices.Contains(pos, e.Pos)
	})
	if len(events) == 0 {
		delete(w.outbox, url)
	} else {
		w.outbox[url] = events
	}
	return nil
}

// CountPending implements EventLog.
func (s *MemoryStore) CountPending(ctx context.Context, url string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.webhooks.outbox[url]), nil
}

// LeaseSender implements EventLog.
func (s *MemoryStore) LeaseSender(ctx context.Context, url, owner string, now, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.webhooks.leases[url]; ok && l.owner != owner && l.until.After(now) {
		return false, nil
	}
	s.webhooks.leases[url] = memoryLease{owner: owner, until: until}
	return true, nil
}

// Recall implements IdempotentStore.
func (s *MemoryStore) Recall(ctx context.Context, key string, now time.Time) ([]Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.recallLocked(key, now)
	return stored, ok, nil
}

// recallLocked returns the messages committed with key, if it is live at
// now.
func (s *MemoryStore) recallLocked(key string, now time.Time) ([]Message, bool) {
	if k, ok := s.webhooks.keys[key]; ok && now.Sub(k.created) < IdempotencyWindow {
		return slices.Clone(k.messages), true
	}
	return nil, false
}

// AppendOnce implements IdempotentStore. Keys older than IdempotencyWindow
// are forgotten, at most once a minute, as new ones are committed.
func (s *MemoryStore) AppendOnce(ctx context.Context, key string, messages []Message, now time.Time) ([]Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if earlier, live := s.recallLocked(key, now); live {
		return earlier, true, nil
	}
	w := &s.webhooks
	// Every message's event must marshal before the first is committed:
	// all of them or none.
	if len(w.urls[EventMessage]) > 0 {
		for _, m := range messages {
			if _, err := json.Marshal(MessageEvent(m)); err != nil {
				return nil, false, err
			}
		}
	}
	stored := make([]Message, len(messages))
	for i, m := range messages {
		var err error
		if stored[i], err = s.appendLocked(m); err != nil {
			return nil, false, err
		}
	}
	if now.Sub(w.pruned) >= time.Minute {
		w.pruned = now
		for k, old := range w.keys {
			if now.Sub(old.created) >= IdempotencyWindow {
				delete(w.keys, k)
			}
		}
	}
	w.keys[key] = memoryKey{created: now, messages: stored}
	return slices.Clone(stored), false, nil
}
