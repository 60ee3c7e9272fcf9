package partyline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/partyline/partyline/internal/poller"
	"github.com/partyline/partyline/internal/ws"
)

// Server is the hub: an http.Handler that upgrades /ws and /ws/{room} to
// WebSocket connections and routes their messages, plus the Go API that the
// HTTP API and embedding programs use. Create it with New.
type Server struct {
	opts      Options
	log       *slog.Logger
	hub       *hub
	poller    *poller.Poller // nil where there is none: each connection reads on its own goroutine
	flushes   *flushList     // where its connections wait to be written (flush.go)
	heartbeat *heartbeat
	epoch     string // the Store's, if it is Ephemeral

	wg       sync.WaitGroup // one per connection being served
	stopping chan struct{}  // closed when Shutdown begins

	mu           sync.Mutex // guards the following
	conns        map[*Conn]struct{}
	perIP        map[string]int // connection slots taken per client IP
	reserved     int            // and in all
	shuttingDown bool
}

// New validates opts and returns a running Server. The Server starts the
// Broker; the caller keeps ownership of the Store, Broker and Presence and
// closes them after Shutdown.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("partyline: %w", err)
	}
	if opts.Store == nil {
		opts.Store = NewMemoryStore(DefaultHistorySize)
	}
	if opts.Broker == nil {
		opts.Broker = NewMemoryBroker()
	}
	if opts.Presence == nil {
		opts.Presence = NewMemoryPresence()
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		conns:     make(map[*Conn]struct{}),
		perIP:     make(map[string]int),
		poller:    poller.New(),
		flushes:   &flushes,
		heartbeat: newHeartbeat(opts.PingInterval, opts.PongWait),
		stopping:  make(chan struct{}),
	}
	if opts.WriteDelay > 0 {
		s.flushes = &flushList{delay: opts.WriteDelay}
	}
	if e, ok := opts.Store.(Ephemeral); ok {
		s.epoch = e.Epoch()
	}
	s.hub = newHub(s)
	if s.hub.events, err = newRecorder(s.hub, opts.Store, opts.Webhooks); err != nil {
		return nil, fmt.Errorf("partyline: %w", err)
	}
	// The starts are not backend calls (backend.go): they take no context
	// and start what runs as long as the Server.
	if err := opts.Broker.Start(s.hub); err != nil {
		return nil, fmt.Errorf("partyline: start broker: %w", err)
	}
	if e, ok := opts.Presence.(PresenceExpirer); ok {
		e.StartExpiry(s.hub.presenceExpired)
	}
	if r, ok := opts.Presence.(PresenceRestorer); ok {
		r.StartRestore(s.hub.presenceRestored)
	}
	if s.hub.events != nil && s.hub.startTask() {
		go s.hub.events.run()
	}
	return s, nil
}

// ServeHTTP serves the transports (docs/protocol.md §3, §12.1): it
// upgrades a request for /ws or /ws/{room} to a WebSocket connection and
// serves it until it closes; it streams server-sent events for GET /sse and
// /sse/{room}, and takes a stream's client messages from POST
// /sse/{session}. Refusals are answered before the upgrade or the stream
// with an HTTP status and a JSON error body. Mount it on those patterns:
//
//	mux.Handle("GET /ws", srv)
//	mux.Handle("GET /ws/{room}", srv)
//	mux.Handle("GET /sse", srv)
//	mux.Handle("GET /sse/{room}", srv)
//	mux.Handle("POST /sse/{session}", srv)
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	transport := transportOf(r)
	if !slices.Contains(s.opts.Transports, transport) {
		WriteHTTPError(w, newError(CodeNotFound, transport+" is not served here"))
		return
	}
	switch {
	case transport == TransportWebSocket:
		s.serveWebSocket(w, r)
	case r.Method == http.MethodPost:
		s.postToStream(w, r)
	case r.Method == http.MethodGet:
		s.serveStream(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeJSONError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "a stream is opened with GET and written to with POST")
	}
}

// transportOf tells a request for /sse or /sse/{room or session} from one
// for /ws or /ws/{room}, wherever the Server is mounted: by the segment
// before the last, then by the last, so that a room may be called ws or
// sse (/ws/sse is a WebSocket to the room sse).
func transportOf(r *http.Request) string {
	path := strings.TrimSuffix(r.URL.Path, "/")
	parent, last := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		parent, last = path[:i], path[i+1:]
	}
	if j := strings.LastIndexByte(parent, '/'); j >= 0 {
		parent = parent[j+1:]
	}
	switch {
	case parent == "sse":
		return TransportSSE
	case parent == "ws":
		return TransportWebSocket
	case last == "sse":
		return TransportSSE
	}
	return TransportWebSocket
}

// serveWebSocket upgrades the request and serves the connection. A method
// other than GET is refused first, before the client is identified.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	// A request that is not a handshake is answered as RFC 6455 says before
	// its client is identified, so that it costs no hook call.
	if err := ws.Check(r); err != nil {
		writeHandshakeError(w, err.(*ws.HandshakeError))
		return
	}
	admission, err := s.admit(r)
	if err != nil {
		s.opts.Metrics.Refused(ErrorCode(err))
		WriteHTTPError(w, err)
		return
	}
	raw, early, negotiated, err := ws.UpgradeWith(w, r, time.Now().Add(s.opts.WriteWait), ws.Options{Compression: s.opts.Compression})
	if err != nil {
		s.release(admission.ip)
		s.log.Debug("upgrade failed", "err", err)
		return
	}
	c := newConn(s, raw, admission)
	if negotiated.Deflate {
		c.deflate = true
		c.wire = deflateFraming{minSize: s.opts.CompressionMinSize}
	}
	if !s.track(c) {
		s.release(admission.ip)
		c.turnAway()
		return
	}
	// The connection runs on a goroutine of its own, so the HTTP server's
	// goroutine and buffers for this request are freed now; and once idle it
	// has none (reader.go). Shutdown waits for it through s.wg.
	go c.serve(early, admission.identity.Expires)
}

// writeHandshakeError answers a request that is not a WebSocket handshake.
func writeHandshakeError(w http.ResponseWriter, err *ws.HandshakeError) {
	for name, values := range err.Header {
		w.Header()[name] = values
	}
	code := CodeBadRequest
	if err.Status == http.StatusMethodNotAllowed {
		code = CodeMethodNotAllowed
	}
	writeJSONError(w, err.Status, code, err.Message)
}

// admission is what a request was admitted with.
type admission struct {
	identity Identity
	rooms    []string
	ip       string
}

// admit checks everything that can refuse a connection before the upgrade,
// in the order of docs/protocol.md §3, and reserves its connection slot.
func (s *Server) admit(r *http.Request) (admission, error) {
	if !s.accepting() {
		return admission{}, newError(CodeShuttingDown, "server is shutting down")
	}
	if err := s.connected(); err != nil {
		return admission{}, err
	}
	if !s.originAllowed(r) {
		return admission{}, newError(CodeForbiddenOrigin, "origin not allowed")
	}
	// The slot first, so that a flood beyond the limits never reaches the
	// application's backend through the hooks.
	// What a connection keeps of its request is copied out of it: a
	// string cut from the request line or a header would keep it whole.
	ip := strings.Clone(clientIP(r))
	if !s.reserve(ip) {
		return admission{}, newError(CodeTooManyConnections, "too many connections")
	}
	identity, join, err := s.identify(r)
	if err != nil {
		s.release(ip)
		return admission{}, err
	}
	rooms, err := s.requestedRooms(r, identity, join)
	if err != nil {
		s.release(ip)
		return admission{}, err
	}
	identity.Username = strings.Clone(identity.Username)
	for i := range rooms {
		rooms[i] = strings.Clone(rooms[i])
	}
	return admission{identity: identity, rooms: rooms, ip: ip}, nil
}

// identify returns who the client is, and the rooms the connect hook has
// it join: from its token in JWT mode, then from the connect hook when one
// is configured, whose answer wins; else from the URL in anonymous mode.
func (s *Server) identify(r *http.Request) (Identity, []string, error) {
	var token *Identity
	if s.opts.Authenticator != nil {
		id, err := s.authenticate(r)
		if err != nil {
			return Identity{}, nil, err
		}
		token = &id
	}
	decision, err := s.askConnect(r, token)
	switch {
	case err != nil:
		return Identity{}, nil, err
	case decision != nil && token != nil:
		decision.Identity.Expires = token.Expires // the token still expires
		return decision.Identity, decision.Join, nil
	case decision != nil:
		return decision.Identity, decision.Join, nil
	case token != nil:
		return *token, nil, nil
	}
	id, err := anonymous(r)
	return id, nil, err
}

// authenticate checks the request's token.
func (s *Server) authenticate(r *http.Request) (Identity, error) {
	token := r.URL.Query().Get("token")
	if bearer, ok := bearerToken(r.Header.Get("Authorization")); ok && token == "" {
		token = bearer
	}
	if token == "" {
		return Identity{}, newError(CodeUnauthorized, "a token is required")
	}
	id, err := s.opts.Authenticator.Authenticate(r.Context(), token)
	if err != nil {
		return Identity{}, &Error{Code: CodeUnauthorized, Message: ErrorMessage(err), Err: err}
	}
	return id, nil
}

// anonymous returns the identity a URL names in anonymous mode.
func anonymous(r *http.Request) (Identity, error) {
	q := r.URL.Query()
	name := q.Get("username")
	if name == "" {
		name = q.Get("user")
	}
	switch {
	case name == "":
		return Identity{}, newError(CodeMissingUsername, "username is required")
	case !ValidUsername(name):
		return Identity{}, newError(CodeInvalidUsername, "username must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
	}
	return Identity{Username: name}, nil
}

// requestedRooms returns the rooms named by the URL, path room first, in
// order and without repeats, or the default room when none is named; then
// those join adds (the connect hook's, which need no join hook).
func (s *Server) requestedRooms(r *http.Request, id Identity, join []string) ([]string, error) {
	var rooms []string
	if name := pathRoom(r); name != "" {
		rooms = append(rooms, name)
	}
	for _, name := range r.URL.Query()["room"] {
		if len(rooms) > s.opts.MaxRooms {
			break // refused below; no need to look at the rest
		}
		if !slices.Contains(rooms, name) {
			rooms = append(rooms, name)
		}
	}
	if len(rooms) == 0 && s.opts.DefaultRoom != "" {
		rooms = append(rooms, s.opts.DefaultRoom)
	}
	if len(rooms) > s.opts.MaxRooms {
		return nil, newError(CodeTooManyRooms, fmt.Sprintf("at most %d rooms per connection", s.opts.MaxRooms))
	}
	for _, name := range rooms {
		if err := s.mayJoin(r.Context(), id, name); err != nil {
			return nil, err
		}
	}
	for _, name := range join {
		if !slices.Contains(rooms, name) {
			rooms = append(rooms, name)
		}
	}
	if len(rooms) > s.opts.MaxRooms {
		return nil, newError(CodeTooManyRooms, fmt.Sprintf("at most %d rooms per connection", s.opts.MaxRooms))
	}
	return rooms, nil
}

// mayJoin checks a room of the URL: its name, the identity's rooms and the
// join hook, whose refusal is forbidden_room.
func (s *Server) mayJoin(ctx context.Context, id Identity, room string) error {
	if !ValidRoom(room) {
		return newError(CodeInvalidRoom, "room names must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
	}
	if !id.CanJoin(room) {
		return newError(CodeForbiddenRoom, "not allowed to join "+room)
	}
	err := s.askJoin(ctx, id.Username, room)
	if ErrorCode(err) == CodeForbidden {
		return &Error{Code: CodeForbiddenRoom, Message: ErrorMessage(err), Err: err}
	}
	return err
}

// pathRoom returns the {room} of /ws/{room} or /sse/{room}: the mux's path
// value when the Server is mounted on such a pattern, else what follows
// "/ws/" or "/sse/".
func pathRoom(r *http.Request) string {
	if name := r.PathValue("room"); name != "" {
		return name
	}
	for _, prefix := range []string{"/ws/", "/sse/"} {
		if i := strings.LastIndex(r.URL.Path, prefix); i >= 0 {
			name, _ := url.PathUnescape(r.URL.Path[i+len(prefix):])
			return name
		}
	}
	return ""
}

// originAllowed applies the origin rule: the configured list, "*", or by
// default the request's own host. Non-browser clients send no Origin.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(s.opts.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, allowed := range s.opts.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(strings.TrimSuffix(allowed, "/"), origin) {
			return true
		}
	}
	return false
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// reserve takes a connection slot for ip, within the configured limits.
func (s *Server) reserve(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.MaxConnections > 0 && s.reserved >= s.opts.MaxConnections ||
		s.opts.MaxConnectionsPerIP > 0 && s.perIP[ip] >= s.opts.MaxConnectionsPerIP {
		return false
	}
	s.perIP[ip]++
	s.reserved++
	return true
}

// release gives back a connection slot of ip.
func (s *Server) release(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(ip)
}

func (s *Server) releaseLocked(ip string) {
	s.reserved--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

func (s *Server) accepting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.shuttingDown
}

// connected returns an unavailable error naming the first of the Store,
// Broker and Presence that is a Connector and has not connected yet, or
// nil. A Connector answers without I/O, so every request can ask.
func (s *Server) connected() error {
	for _, part := range []struct {
		name    string
		backend any
	}{{"store", s.opts.Store}, {"broker", s.opts.Broker}, {"presence", s.opts.Presence}} {
		if c, ok := part.backend.(Connector); ok {
			if err := c.Connected(); err != nil {
				return unavailable(part.name, err)
			}
		}
	}
	return nil
}

// track registers a live connection; it fails once shutdown has begun.
func (s *Server) track(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// untrack forgets a connection that has ended and frees its slot.
func (s *Server) untrack(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.releaseLocked(c.ip)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting connections, closes every connection with 1001
// and waits until each has finished, or until ctx is done; then it cancels
// the Store, Broker and Presence calls in flight, closes what remains at
// once (the connections' cleanup still gets a short time with the backends)
// and returns ctx's error. Acked messages are already committed, so nothing
// acked is lost; a message whose commit is cancelled is not acked.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shuttingDown {
		close(s.stopping)
	}
	s.shuttingDown = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.hub.abort()
		var closing sync.WaitGroup
		for _, c := range conns {
			closing.Go(c.closeSocket) // at once: a TLS close may wait to send its alert
		}
		closing.Wait()
		<-done
	}
	s.hub.stop()
	return err
}

// Stats is a snapshot of the node's gauges.
type Stats struct {
	Connections int // open WebSocket connections on this node
	Rooms       int // rooms with at least one subscriber on this node
	Users       int // distinct users connected to this node
}

// Stats returns the node's current gauges.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	conns := len(s.conns)
	s.mu.Unlock()
	rooms, users := s.hub.counts()
	return Stats{Connections: conns, Rooms: rooms, Users: users}
}

// Ready reports whether the store, the broker and the presence answer; the
// error joins one for each that does not, naming it (errors.Join). A
// probe, bounded by ctx alone: its pings are not backend calls
// (backend.go), which would answer unavailable.
func (s *Server) Ready(ctx context.Context) error {
	parts := []struct {
		name    string
		backend any
	}{{"store", s.opts.Store}, {"broker", s.opts.Broker}, {"presence", s.opts.Presence}}
	down := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		if p, ok := part.backend.(Pinger); ok {
			wg.Go(func() { // at once: one that hangs must not use up the others' time
				if err := p.Ping(ctx); err != nil {
					down[i] = fmt.Errorf("%s: %w", part.name, err)
				}
			})
		}
	}
	wg.Wait()
	return errors.Join(down...)
}

// WriteHTTPError writes err as {"error":{"code":…,"message":…}} with the
// status its code maps to.
func WriteHTTPError(w http.ResponseWriter, err error) {
	code := ErrorCode(err)
	writeJSONError(w, HTTPStatus(code), code, ErrorMessage(err))
}

// writeJSONError writes {"error":{"code":…,"message":…}} with status.
func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]string{"code": code, "message": message},
	})
}
