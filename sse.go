package partyline

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/partyline/partyline/internal/wire"
)

// Server-sent events (docs/protocol.md §12.1), for clients behind networks
// that refuse WebSocket upgrades. A stream is a Conn like any other: the
// same hub, rooms, queue, writer, heartbeat, lag rule and limits; only its
// framing (sseFraming) and its way in differ. The response is written on
// the hijacked connection and lasts until it closes, so the writer writes
// to the socket as it does for a WebSocket, without the HTTP server's
// buffers. What the client sends comes as POST /sse/{session} requests, to
// any node: the node that holds the stream handles each as its reader
// would a WebSocket message, in the order the client sends them.

// Transports, as Options.Transports names them.
const (
	TransportWebSocket = "websocket"
	TransportSSE       = "sse"
)

// serveStream answers GET /sse and /sse/{room}: after the same admission
// as a WebSocket, it takes over the connection and streams events.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	resume, err := parseResumeToken(lastEventID(r))
	if err != nil {
		WriteHTTPError(w, err)
		return
	}
	a, err := s.admit(r)
	if err == nil {
		err = s.admitResumed(r, &a, resume)
	}
	if err != nil {
		s.opts.Metrics.Refused(ErrorCode(err))
		WriteHTTPError(w, err)
		return
	}
	raw, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.release(a.ip)
		writeJSONError(w, http.StatusHTTPVersionNotSupported, CodeBadRequest, "server-sent events are served over HTTP/1.1")
		return
	}
	raw.SetWriteDeadline(time.Now().Add(s.opts.WriteWait))
	if _, err := io.WriteString(raw, streamHead); err != nil {
		s.release(a.ip)
		raw.Close()
		return
	}
	raw.SetWriteDeadline(time.Time{})
	c := newConn(s, raw, a)
	c.stream = true // the client sends nothing on the stream
	// The rooms still to rejoin stay in the ids until they are.
	c.wire = &sseFraming{points: maps.Clone(resume)}
	c.session = streamSession(a.identity.Username)
	c.resume = resume
	if !s.track(c) {
		s.release(a.ip)
		c.turnAway()
		return
	}
	go c.serve(nil, a.identity.Expires)
}

// streamHead is the response's head. The body lasts until the connection
// closes, so it has no length and the connection is not reused.
const streamHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/event-stream\r\n" +
	"Cache-Control: no-store\r\n" +
	"X-Accel-Buffering: no\r\n" + // tells nginx not to buffer the stream
	"Connection: close\r\n\r\n"

// lastEventID returns the resume token a reconnecting client sends: the
// Last-Event-ID header, which EventSource sets, or the last_event_id query
// parameter, for a client that opens a new stream and cannot set headers.
func lastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("last_event_id")
}

// admitResumed adds the rooms of a resume token to what a stream joins,
// checked as the URL's rooms are.
func (s *Server) admitResumed(r *http.Request, a *admission, resume map[string]uint64) error {
	rooms := make([]string, 0, len(resume))
	for name := range resume {
		if !slices.Contains(a.rooms, name) {
			rooms = append(rooms, name)
		}
	}
	slices.Sort(rooms)
	if len(a.rooms)+len(rooms) > s.opts.MaxRooms {
		s.release(a.ip)
		return newError(CodeTooManyRooms, "at most "+strconv.Itoa(s.opts.MaxRooms)+" rooms per connection")
	}
	for _, name := range rooms {
		if err := s.mayJoin(r.Context(), a.identity, name); err != nil {
			s.release(a.ip)
			return err
		}
	}
	a.rooms = append(a.rooms, rooms...)
	return nil
}

// parseResumeToken reads "room=seq,room=seq"; an empty token is none.
func parseResumeToken(token string) (map[string]uint64, error) {
	if token == "" {
		return nil, nil
	}
	bad := newError(CodeBadRequest, "the Last-Event-ID must be a list of room=seq")
	resume := make(map[string]uint64)
	for part := range strings.SplitSeq(token, ",") {
		room, seq, ok := strings.Cut(part, "=")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || err != nil || !ValidRoom(room) {
			return nil, bad
		}
		resume[room] = n
	}
	return resume, nil
}

// appendResumeToken appends the token for the rooms' resume points, rooms
// sorted.
func appendResumeToken(b []byte, points map[string]uint64) []byte {
	rooms := make([]string, 0, len(points))
	for room := range points {
		rooms = append(rooms, room)
	}
	slices.Sort(rooms)
	for i, room := range rooms {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, room...)
		b = append(b, '=')
		b = strconv.AppendUint(b, points[room], 10)
	}
	return b
}

// A stream's session is the handle its client sends with: the username,
// then sessionSeparator, then 128 random bits, so that any node can tell
// whose it is, and nobody can guess it.
const sessionSeparator = "~"

func streamSession(user string) string {
	var b [16]byte
	rand.Read(b[:])
	return user + sessionSeparator + hex.EncodeToString(b[:])
}

// sessionUser returns the user a stream's session belongs to.
func sessionUser(session string) (string, bool) {
	user, secret, ok := strings.Cut(session, sessionSeparator)
	return user, ok && ValidUsername(user) && len(secret) == 32
}

// postToStream answers POST /sse/{session}: it hands the body, one client
// message, to the stream's connection on whichever node holds it, and
// answers 202 once that node has handled it.
func (s *Server) postToStream(w http.ResponseWriter, r *http.Request) {
	session := r.PathValue("session")
	if session == "" {
		session, _ = url.PathUnescape(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
	}
	user, ok := sessionUser(session)
	if !ok {
		WriteHTTPError(w, newError(CodeNotFound, "no such session"))
		return
	}
	if s.opts.Authenticator != nil {
		id, err := s.authenticate(r)
		if err == nil && id.Username != user {
			err = newError(CodeForbidden, "the session is not this token's user")
		}
		if err != nil {
			WriteHTTPError(w, err)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxMessageSize))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.opts.Metrics.Refused(CodeTooLarge)
		WriteHTTPError(w, newError(CodeTooLarge, "at most "+strconv.FormatInt(s.opts.MaxMessageSize, 10)+" bytes per message"))
		return
	case err != nil:
		WriteHTTPError(w, newError(CodeBadRequest, "cannot read the body"))
		return
	}
	handled := s.hub.input(user, session, body)
	if handled == 0 { // the stream is on another node, or gone
		handled, err = s.hub.command(r.Context(), user, commandInput, session, body)
	}
	switch {
	case handled > 0:
		w.WriteHeader(http.StatusAccepted)
	case err != nil:
		WriteHTTPError(w, err)
	default:
		WriteHTTPError(w, newError(CodeNotFound, "no such session"))
	}
}

// input hands body to user's stream session on this node, if it is here,
// as its reader would a message, and reports whether it was.
func (h *hub) input(user, session string, body []byte) int {
	for _, c := range h.userConns(user) {
		if c.session == session && c.stream && !c.isClosing() {
			c.message(body)
			return 1
		}
	}
	return 0
}

// sseFraming frames messages as server-sent events: each JSON object of a
// message is one event, "data: <object>", built once per message for
// every stream. A message that moves the resume point of a room (chat,
// joined, left) first gets an id line, the stream's resume token, which
// is built for this stream alone.
type sseFraming struct {
	points map[string]uint64 // the latest seq written of each room the client is in
}

func (f *sseFraming) appendFrames(out [][]byte, msgs []*message, space *mergeSpace) [][]byte {
	for _, m := range msgs {
		if m.control {
			continue // a WebSocket pong: never queued on a stream
		}
		if m.mark != markNone {
			f.move(m)
			id := space.reserve(len("id: \n") + len(f.points)*(maxRoomLength+22))
			id = appendResumeToken(append(id, "id: "...), f.points)
			out = append(out, space.commit(append(id, '\n')))
		}
		out = append(out, m.framedAs(formatSSE, sseEvents))
	}
	return out
}

// maxRoomLength is the longest room name (ValidRoom).
const maxRoomLength = 64

// move applies m to the resume points.
func (f *sseFraming) move(m *message) {
	if m.mark == markLeft {
		delete(f.points, m.room)
		return
	}
	if f.points == nil {
		f.points = make(map[string]uint64)
	}
	f.points[m.room] = m.seq
}

func (f *sseFraming) ping() []byte { return ssePing }

// ssePing is a comment: it keeps proxies from timing the stream out, and
// clients ignore it.
var ssePing = []byte(": ping\n\n")

func (f *sseFraming) closing(code int, reason string) []byte {
	return sseEvents(wire.AppendClose(nil, code, reason))
}

// sseEvents frames each line of payload, one JSON object, as an event.
func sseEvents(payload []byte) []byte {
	b := make([]byte, 0, len(payload)+8)
	for line := range bytes.SplitSeq(payload, []byte("\n")) {
		b = append(b, "data: "...)
		b = append(b, line...)
		b = append(b, "\n\n"...)
	}
	return b
}
