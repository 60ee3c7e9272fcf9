// Package httpapi serves partyline's HTTP API (docs/protocol.md §6 and
// §11.3): publish to a room or several, list rooms, read a room's counts,
// users and history, message a user and disconnect a user. Publishing takes
// an Idempotency-Key header (Server.PublishOnce). It is built only on the public methods of
// *partyline.Server, so an embedding program can mount it beside its own
// routes:
//
//	mux.Handle("/api/", httpapi.New(srv, httpapi.Options{APIKey: key}))
//
// Every request passes the access rule first: with an API key it must carry
// "Authorization: Bearer <key>"; without one it must come from a loopback
// address and not through a proxy. Cross-origin browser requests that change
// state are refused too, so a web page cannot drive a loopback-only API.
// Errors are answered with the JSON body of docs/protocol.md §3.
package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/partyline/partyline"
)

// DefaultMaxBodyBytes is the request body limit when Options leaves it zero.
const DefaultMaxBodyBytes = 64 << 10

// Options configures the API handler. The zero value serves loopback
// callers only, with bodies up to DefaultMaxBodyBytes.
type Options struct {
	// APIKey, when set, is the bearer key every /api/ request must carry.
	// When empty, only requests from loopback addresses are served.
	APIKey string
	// MaxBodyBytes bounds request bodies (413 too_large beyond it); zero
	// means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives the causes of 5xx answers; nil discards them.
	Logger *slog.Logger
}

// handler serves the API of one Server.
type handler struct {
	srv     *partyline.Server
	maxBody int64
	log     *slog.Logger
	keyHash *[sha256.Size]byte // nil: loopback-only mode
}

// New returns the handler of the HTTP API over srv. It serves paths under
// /api/ as they arrive (mount it at "/api/" without stripping the prefix)
// and answers every other path with 404 not_found.
func New(srv *partyline.Server, opts Options) http.Handler {
	h := &handler{srv: srv, maxBody: opts.MaxBodyBytes, log: opts.Logger}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if opts.APIKey != "" {
		sum := sha256.Sum256([]byte(opts.APIKey))
		h.keyHash = &sum
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, partyline.CodeForbidden, "cross-origin requests are not allowed")
	}))
	return h.authorize(csrf.Handler(h.routes()))
}

// routes maps each path to its methods. A known path asked with another
// method gets 405 with an Allow header; an unknown path gets 404.
func (h *handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for path, methods := range map[string]map[string]http.HandlerFunc{
		"/api/rooms":                     {http.MethodGet: h.listRooms},
		"/api/rooms/{room}":              {http.MethodGet: h.roomInfo},
		"/api/rooms/{room}/users":        {http.MethodGet: h.roomUsers},
		"/api/rooms/{room}/messages":     {http.MethodGet: h.roomHistory, http.MethodPost: h.publish},
		"/api/messages":                  {http.MethodPost: h.publishMany},
		"/api/users/{user}/messages":     {http.MethodPost: h.sendDirect},
		"/api/users/{user}/connections":  {http.MethodDelete: h.disconnect},
		"/api/users/{user}/rooms/{room}": {http.MethodPut: h.joinUser, http.MethodDelete: h.leaveUser},
	} {
		allow := make([]string, 0, len(methods)+1)
		for method, fn := range methods {
			mux.HandleFunc(method+" "+path, fn)
			allow = append(allow, method)
			if method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		slices.Sort(allow)
		mux.Handle(path, methodNotAllowed(allow))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, partyline.CodeNotFound, "no such API endpoint: "+r.URL.Path)
	})
	return mux
}

func methodNotAllowed(allow []string) http.Handler {
	list := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", list)
		writeStatus(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+list)
	})
}

// authorize applies the access rule of docs/protocol.md §6 before next.
func (h *handler) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.keyHash != nil {
			if !h.validKey(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="partyline"`)
				writeError(w, partyline.CodeUnauthorized, "a valid API key is required: Authorization: Bearer <key>")
				return
			}
		} else if !fromLoopback(r) {
			writeError(w, partyline.CodeForbidden, "without an API key, /api/ answers loopback callers only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// validKey reports whether r carries the API key. Both sides are hashed so
// the comparison takes the same time whatever the key's length.
func (h *handler) validKey(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(sum[:], h.keyHash[:]) == 1
}

// fromLoopback reports whether r comes from a loopback address directly. A
// request relayed by a proxy (it names a forwarded client) does not count:
// the proxy may be local, the caller behind it is not.
func fromLoopback(r *http.Request) bool {
	for _, name := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(name) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}
