package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/partyline/partyline"
)

// History page limits of GET /api/rooms/{room}/messages.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// decodeBody reads r's JSON body into v: one object, known fields only,
// within the size limit. On failure it answers the request and returns false.
func (h *handler) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errTrailing
		}
	}
	if err != nil {
		h.fail(w, r, bodyError(err, h.maxBody))
		return false
	}
	return true
}

var errTrailing = errors.New("trailing data")

// bodyError turns a decoding failure into a protocol error with a message
// that says what to fix.
func bodyError(err error, limit int64) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &partyline.Error{Code: partyline.CodeTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object")
	case errors.Is(err, errTrailing):
		return badRequest("request body must hold one JSON object and nothing after it")
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest(fmt.Sprintf("field %q must be a %s, not a JSON %s", typ.Field, typ.Type, typ.Value))
	case errors.As(err, &typ):
		return badRequest("request body must be a JSON object, not a JSON " + typ.Value)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: "))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return badRequest("cannot read request body: " + err.Error())
	}
}

func badRequest(message string) error {
	return &partyline.Error{Code: partyline.CodeBadRequest, Message: message}
}

// historyPage is a parsed history request: the Store query, and the upper
// bound when both after and before are given.
type historyPage struct {
	query  partyline.HistoryQuery
	before uint64
}

// parseHistoryQuery reads before, after and limit. With after present (even
// 0) the page runs forward from it, up to before when that is given too;
// otherwise it is the newest page below before (0 or absent: the newest).
func parseHistoryQuery(raw string) (historyPage, error) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return historyPage{}, badRequest("malformed query string")
	}
	var p historyPage
	p.query.Limit = defaultHistoryLimit
	if s, ok := first(values, "limit"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxHistoryLimit {
			return historyPage{}, badRequest(fmt.Sprintf("limit must be an integer from 1 to %d, got %q", maxHistoryLimit, s))
		}
		p.query.Limit = n
	}
	if p.before, err = seqParam(values, "before"); err != nil {
		return historyPage{}, err
	}
	if s, ok := first(values, "after"); ok {
		p.query.Forward = true
		if p.query.After, err = strconv.ParseUint(s, 10, 64); err != nil {
			return historyPage{}, badRequest(fmt.Sprintf("after must be a non-negative integer, got %q", s))
		}
	} else {
		p.query.Before = p.before
	}
	return p, nil
}

// seqParam returns the seq named by key, or 0 when it is absent.
func seqParam(values url.Values, key string) (uint64, error) {
	s, ok := first(values, key)
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest(fmt.Sprintf("%s must be a non-negative integer, got %q", key, s))
	}
	return n, nil
}

func first(values url.Values, key string) (string, bool) {
	list, ok := values[key]
	if !ok || len(list) == 0 {
		return "", false
	}
	return list[0], true
}

// fail answers err with its protocol code, logging the cause of a 5xx.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if status := partyline.HTTPStatus(partyline.ErrorCode(err)); status >= 500 {
		h.log.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	partyline.WriteHTTPError(w, err)
}

// writeError answers with code's status and the §3 error body.
func writeError(w http.ResponseWriter, code, message string) {
	partyline.WriteHTTPError(w, &partyline.Error{Code: code, Message: message})
}

// writeStatus answers with an explicit status and the §3 error body, for
// statuses no protocol code maps to.
func writeStatus(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

// writeJSON answers with status and v as JSON. v is encoded first: what
// cannot be (stored data that is not JSON, say) answers unavailable, never
// the status with a body cut short.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, partyline.CodeUnavailable, "the answer could not be encoded: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
