package partyline

import (
	"context"
	"encoding/json"
	"net/http"
)

// Hooks asks the application's backend what may happen (docs/protocol.md
// §11.2). The hook package implements it over HTTP.
//
// Every method refuses on failure: when the backend cannot be asked (it is
// down, slow or answers nonsense) the error has the code unavailable, and
// the action does not happen. A refusal by the backend has the code
// unauthorized or forbidden. Methods must be safe for concurrent use and
// bound each call themselves (the hook package by its Timeout).
type Hooks interface {
	// Connect decides who a client is, before the upgrade. It returns nil
	// when the backend is not asked about connections (no connect hook),
	// and the Server identifies the client as it would without hooks.
	Connect(ctx context.Context, r ConnectRequest) (*ConnectDecision, error)
	// Join decides whether user may join room.
	Join(ctx context.Context, user, room string) error
	// Publish decides whether user may post c in room, and may rewrite it.
	Publish(ctx context.Context, user, room string, c Content) (Content, error)
}

// ConnectRequest is what the connect hook is told of a connecting client.
type ConnectRequest struct {
	// Header is the request's header; the hook passes on the names it is
	// configured with.
	Header http.Header
	// Query is the request's URL query.
	Query map[string][]string
	// RemoteAddr is the client's address (host:port).
	RemoteAddr string
	// Identity is what the client's JWT says, when JWT auth is configured.
	Identity *Identity
}

// ConnectDecision is the backend's answer for a connecting client.
type ConnectDecision struct {
	// Identity is who the client is; its Rooms restricts the rooms it may
	// join (nil: every room), like a JWT's rooms claim.
	Identity Identity
	// Join lists rooms the connection joins at once, after those of its URL.
	Join []string
}

// Content is what a message says: its text and its application data.
type Content struct {
	Text string
	Data json.RawMessage
}

// askJoin asks the join hook, if any, whether user may join room.
func (s *Server) askJoin(ctx context.Context, user, room string) error {
	if s.opts.Hooks == nil {
		return nil
	}
	return s.opts.Hooks.Join(ctx, user, room)
}

// askPublish asks the publish hook, if any, whether user may post c in
// room, and returns what to post. A rewrite that could not be posted (no
// content nor data, or data that is not JSON) is the backend's fault, not
// the sender's: unavailable.
func (s *Server) askPublish(ctx context.Context, user, room string, c Content) (Content, error) {
	if s.opts.Hooks == nil {
		return c, nil
	}
	c, err := s.opts.Hooks.Publish(ctx, user, room, c)
	if err != nil {
		return Content{}, err
	}
	if err := checkContent(c.Text, c.Data); err != nil {
		return Content{}, &Error{Code: CodeUnavailable, Message: "the publish hook answered a message that cannot be posted: " + ErrorMessage(err), Err: err}
	}
	return c, nil
}

// askConnect asks the connect hook, if any, who the client of r is. With a
// JWT the token is checked first (identity), and the hook's answer wins.
func (s *Server) askConnect(r *http.Request, identity *Identity) (*ConnectDecision, error) {
	if s.opts.Hooks == nil {
		return nil, nil
	}
	d, err := s.opts.Hooks.Connect(r.Context(), ConnectRequest{
		Header: r.Header, Query: r.URL.Query(), RemoteAddr: r.RemoteAddr, Identity: identity,
	})
	if err != nil || d == nil {
		return nil, err
	}
	if !ValidUsername(d.Identity.Username) {
		return nil, newError(CodeUnavailable, "the connect hook answered an invalid username")
	}
	for _, pattern := range d.Identity.Rooms {
		if !ValidRoomPattern(pattern) {
			return nil, newError(CodeUnavailable, "the connect hook answered an invalid rooms entry "+pattern)
		}
	}
	for _, room := range d.Join {
		if !ValidRoom(room) {
			return nil, newError(CodeUnavailable, "the connect hook answered an invalid room "+room)
		}
		if !d.Identity.CanJoin(room) {
			return nil, newError(CodeUnavailable, "the connect hook answered a room to join that its rooms do not allow: "+room)
		}
	}
	return d, nil
}
