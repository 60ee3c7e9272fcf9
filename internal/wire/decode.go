// Package wire encodes and decodes partyline's JSON frames (docs/protocol.md §4).
//
// It is pure: no I/O, no state, and it imports nothing of partyline's, so it
// can be fuzzed and benchmarked alone. Decoding turns one client text frame
// into an Inbound; encoding appends server frames to a byte slice so that a
// frame is built once and shared by every subscriber.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxIDLength is the longest message id a client may send, in characters.
const MaxIDLength = 64

// Inbound is one decoded client message.
type Inbound struct {
	// Type is the message type: chat, join, leave, direct, typing, presence,
	// history, refresh or ping. A plain-text frame decodes as chat with
	// PlainText set.
	Type string
	// ID is the client's id exactly as sent (a JSON string or number), or
	// nil. It is echoed verbatim in ack and error frames. Neither it nor
	// Data aliases the frame decoded.
	ID json.RawMessage
	// Room, To and Token are the string fields of the message.
	Room, To, Token string
	// Content is the message text.
	Content string
	// Data is arbitrary JSON attached to chat and direct messages, or nil.
	Data json.RawMessage
	// Since is set when a join asks for recovery.
	Since *uint64
	// Before bounds a history request; 0 means "the newest".
	Before uint64
	// Limit is the history page size; 0 means the default.
	Limit int
	// PlainText reports that the frame was not a JSON object and Content
	// holds the whole frame.
	PlainText bool
}

// ErrBadRequest is wrapped by every decoding error of a frame that is a JSON
// object but not a valid client message.
var ErrBadRequest = errors.New("bad request")

// ErrInvalidUTF8 is returned for a frame that is not valid UTF-8.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// inbound mirrors Inbound with the raw field types needed to tell a missing
// field from a mistyped one.
type inbound struct {
	Type    *string         `json:"type"`
	ID      json.RawMessage `json:"id"`
	Room    *string         `json:"room"`
	To      *string         `json:"to"`
	Token   *string         `json:"token"`
	Content json.RawMessage `json:"content"`
	Data    json.RawMessage `json:"data"`
	Since   json.RawMessage `json:"since"`
	Before  json.RawMessage `json:"before"`
	Limit   json.RawMessage `json:"limit"`
}

// Decode parses one client text frame. A frame that is not a JSON object is
// returned as plain-text chat. Errors wrap ErrBadRequest or ErrInvalidUTF8;
// when the id could be read it is returned in in.ID even on error, so the
// error frame can echo it.
func Decode(frame []byte) (in Inbound, err error) {
	if !utf8.Valid(frame) {
		return in, ErrInvalidUTF8
	}
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return Inbound{Type: "chat", Content: string(frame), PlainText: true}, nil
	}
	var raw inbound
	// Unmarshal goes on past a mistyped field, so the id is read even when
	// another field is wrong and the error frame can echo it.
	var decodeErr error
	if !decodeFlat(trimmed, &raw) {
		raw, decodeErr = unmarshal[inbound](trimmed)
	}
	if raw.ID != nil && !isNull(raw.ID) {
		if err := checkID(raw.ID); err != nil {
			return in, err
		}
		in.ID = raw.ID
	}
	if decodeErr != nil {
		return in, badRequest("%s", jsonProblem(decodeErr))
	}
	if raw.Type == nil {
		return in, badRequest("missing type")
	}
	in.Type = *raw.Type
	in.Room = deref(raw.Room)
	in.To = deref(raw.To)
	in.Token = deref(raw.Token)
	if raw.Content != nil && !isNull(raw.Content) {
		if raw.Content[0] != '"' {
			return in, badRequest("content must be a string")
		}
		text, ok := plainText(raw.Content)
		if !ok {
			if text, err = unmarshal[string](raw.Content); err != nil {
				return in, badRequest("content must be a string")
			}
		}
		in.Content = text
	}
	if raw.Data != nil && !isNull(raw.Data) {
		in.Data = raw.Data
	}
	if raw.Since != nil && !isNull(raw.Since) {
		since, err := unmarshal[uint64](raw.Since)
		if err != nil {
			return in, badRequest("since must be a non-negative integer")
		}
		in.Since = &since
	}
	if raw.Before != nil && !isNull(raw.Before) {
		if in.Before, err = unmarshal[uint64](raw.Before); err != nil {
			return in, badRequest("before must be a non-negative integer")
		}
	}
	if raw.Limit != nil && !isNull(raw.Limit) {
		if in.Limit, err = unmarshal[int](raw.Limit); err != nil || in.Limit < 1 {
			return in, badRequest("limit must be a positive integer")
		}
	}
	return in, nil
}

// unmarshal decodes the JSON value b as a T. Its own variable goes to the
// heap, as json.Unmarshal's argument does, so Decode's stay on the stack
// and only the calls that need json.Unmarshal pay for it.
func unmarshal[T any](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// checkID accepts a JSON string of at most MaxIDLength characters or a JSON
// number of at most MaxIDLength bytes.
func checkID(id json.RawMessage) error {
	switch {
	case id[0] == '"':
		n := 0
		if text, ok := plainBytes(id); ok {
			n = utf8.RuneCount(text)
		} else if s, err := unmarshal[string](id); err == nil {
			n = utf8.RuneCountInString(s)
		} else {
			return badRequest("id must be a string or a number")
		}
		if n > MaxIDLength {
			return badRequest("id is longer than %d characters", MaxIDLength)
		}
	case id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
		if len(id) > MaxIDLength {
			return badRequest("id is longer than %d characters", MaxIDLength)
		}
	default:
		return badRequest("id must be a string or a number")
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, args...)...)
}

// jsonProblem names the field whose type was wrong, without Go type names.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return typeErr.Field + " has the wrong type"
	}
	return "malformed JSON"
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
