package partyline

import (
	"context"
	"fmt"
	"time"
)

// MaxPublishRooms is the most rooms one PublishMany or PublishOnce may name.
const MaxPublishRooms = 100

// MaxIdempotencyKey is the longest idempotency key, in bytes.
const MaxIdempotencyKey = 255

// PublishMany stores one message per room, in the order of rooms, and
// delivers each exactly like Publish. It returns the stored messages in
// that order. Everything is checked before anything is stored: rooms must
// name 1 to MaxPublishRooms distinct valid rooms (else an error with code
// bad_request, or invalid_room naming the bad one), and the username,
// content and data must be as Publish wants them.
//
// The messages are committed one after another, not atomically: when the
// store fails midway, PublishMany returns the messages committed before the
// failure, which are delivered, with the error. PublishOnce commits them
// all or none.
func (s *Server) PublishMany(ctx context.Context, rooms []string, p Publication) ([]Message, error) {
	p, err := checkPublication(rooms, p)
	if err != nil {
		return nil, err
	}
	messages, err := s.newMessages(ctx, rooms, p)
	if err != nil {
		return nil, err
	}
	stored := make([]Message, 0, len(messages))
	for _, msg := range messages {
		m, err := s.publish(ctx, msg)
		if err != nil {
			return stored, err
		}
		stored = append(stored, m)
	}
	return stored, nil
}

// PublishOnce is PublishMany made idempotent by key, for retries that must
// not publish twice (the Idempotency-Key of docs/protocol.md §11.3). It
// commits the messages in one transaction together with key, then delivers
// each. When key was committed within IdempotencyWindow — by this node or
// another sharing the store, before a restart or since — it stores and
// delivers nothing and returns the messages committed with the key then,
// with replayed set: the key decides, even when rooms or p differ from the
// first call's. Concurrent calls with one key commit once.
//
// The key must be 1 to MaxIdempotencyKey printable ASCII characters, and
// the Store must implement IdempotentStore; otherwise the error has code
// bad_request. rooms and p are checked as PublishMany checks them, before
// the key is looked up; the publish hook is asked after, only when the key
// is new, so that a retry learns that its message was stored even when
// the backend now refuses it, or cannot be asked.
func (s *Server) PublishOnce(ctx context.Context, key string, rooms []string, p Publication) (stored []Message, replayed bool, err error) {
	if !validIdempotencyKey(key) {
		return nil, false, newError(CodeBadRequest, fmt.Sprintf("an idempotency key must be 1 to %d printable ASCII characters", MaxIdempotencyKey))
	}
	if p, err = checkPublication(rooms, p); err != nil {
		return nil, false, err
	}
	store, ok := s.opts.Store.(IdempotentStore)
	if !ok {
		return nil, false, newError(CodeBadRequest, "this server's store does not remember idempotency keys; send the request without one")
	}
	now := s.opts.Now()
	if stored, replayed, err = s.recall(ctx, store, key, now); err != nil || replayed {
		return stored, replayed, err
	}
	messages, err := s.newMessages(ctx, rooms, p)
	if err != nil {
		return nil, false, err
	}
	for i := range messages {
		messages[i].ID = newMessageID()
		messages[i].Timestamp = now.UnixMilli()
	}
	stored, replayed, err = s.appendOnce(ctx, store, key, messages, now)
	if err != nil {
		return nil, false, err
	}
	if !replayed {
		for _, m := range stored {
			s.hub.announce(ctx, m)
		}
	}
	return stored, replayed, nil
}

// recall returns the messages committed with key, if it is live, through
// store, bounded and timed like commit.
func (s *Server) recall(ctx context.Context, store IdempotentStore, key string, now time.Time) ([]Message, bool, error) {
	var ok bool
	stored, err := storeCall(s.hub, ctx, "recall", func(ctx context.Context, _ Store) (stored []Message, err error) {
		stored, ok, err = store.Recall(ctx, key, now)
		return stored, err
	})
	return stored, ok && err == nil, err
}

// appendOnce commits messages with key through store, bounded and timed
// like commit.
func (s *Server) appendOnce(ctx context.Context, store IdempotentStore, key string, messages []Message, now time.Time) ([]Message, bool, error) {
	var replayed bool
	stored, err := storeCall(s.hub, ctx, "append_once", func(ctx context.Context, _ Store) (stored []Message, err error) {
		stored, replayed, err = store.AppendOnce(ctx, key, messages, now)
		return stored, err
	})
	if err != nil {
		return nil, false, err
	}
	if !replayed {
		s.hub.events.committed()
	}
	return stored, replayed, nil
}

// checkPublication checks a publication to rooms, and returns it with its
// username, "system" by default.
func checkPublication(rooms []string, p Publication) (Publication, error) {
	if p.Username == "" {
		p.Username = "system"
	}
	if len(rooms) == 0 || len(rooms) > MaxPublishRooms {
		return p, newError(CodeBadRequest, fmt.Sprintf("rooms must name 1 to %d rooms, not %d", MaxPublishRooms, len(rooms)))
	}
	seen := make(map[string]struct{}, len(rooms))
	for i, room := range rooms {
		if !ValidRoom(room) {
			return p, newError(CodeInvalidRoom, fmt.Sprintf("rooms[%d] %q is not a valid room name: room names must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", i, room))
		}
		if _, dup := seen[room]; dup {
			return p, newError(CodeBadRequest, fmt.Sprintf("rooms names %q twice; name each room once", room))
		}
		seen[room] = struct{}{}
	}
	if !ValidUsername(p.Username) {
		return p, newError(CodeInvalidUsername, "not a valid username")
	}
	return p, checkContent(p.Content, p.Data)
}

// newMessages returns the messages of a checked publication to rooms, one
// per room in the order of rooms, without id, time or seq, as the publish
// hook, if any, allows and rewrites them.
func (s *Server) newMessages(ctx context.Context, rooms []string, p Publication) ([]Message, error) {
	messages := make([]Message, len(rooms))
	for i, room := range rooms {
		content, err := s.askPublish(ctx, p.Username, room, Content{Text: p.Content, Data: p.Data})
		if err != nil {
			return nil, err
		}
		messages[i] = Message{Room: room, Username: p.Username, Content: content.Text, Data: content.Data}
	}
	return messages, nil
}

// validIdempotencyKey reports whether key is 1 to MaxIdempotencyKey
// printable ASCII characters (space to tilde).
func validIdempotencyKey(key string) bool {
	if key == "" || len(key) > MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < ' ' || key[i] > '~' {
			return false
		}
	}
	return true
}
