package partyline

import (
	"errors"
	"net/http"

	"github.com/partyline/partyline/internal/ws"
)

// Error codes of the protocol: error frames carry them, and HTTP refusals
// carry them in {"error":{"code":…}}.
const (
	CodeBadRequest         = "bad_request"
	CodeUnknownType        = "unknown_type"
	CodeInvalidRoom        = "invalid_room"
	CodeNotJoined          = "not_joined"
	CodeForbidden          = "forbidden"
	CodeTooLarge           = "too_large"
	CodeTooManyRooms       = "too_many_rooms"
	CodeRateLimited        = "rate_limited"
	CodeUserOffline        = "user_offline"
	CodeUnavailable        = "unavailable"
	CodeMissingUsername    = "missing_username"
	CodeInvalidUsername    = "invalid_username"
	CodeUnauthorized       = "unauthorized"
	CodeForbiddenOrigin    = "forbidden_origin"
	CodeForbiddenRoom      = "forbidden_room"
	CodeTooManyConnections = "too_many_connections"
	CodeShuttingDown       = "shutting_down"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
)

// Error is a protocol error: a code from the list above and a human message.
type Error struct {
	Code    string
	Message string
	// Err is the underlying cause, if any; it is logged, never sent.
	Err error
}

// Error returns the code and the message, and the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errorf-style constructors keep call sites short.
func newError(code, message string) *Error { return &Error{Code: code, Message: message} }

var (
	// ErrUnavailable is wrapped by Store, Broker and Presence errors when the
	// backing service cannot answer.
	ErrUnavailable = &Error{Code: CodeUnavailable, Message: "service unavailable"}
	// ErrUnauthorized is wrapped by Authenticator errors.
	ErrUnauthorized = &Error{Code: CodeUnauthorized, Message: "missing, invalid or expired token"}
)

// ErrorCode returns the protocol code of err: its own when it is or wraps an
// *Error, unavailable otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeUnavailable
}

// ErrorMessage returns the message to show a client for err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "service unavailable"
}

// HTTPStatus maps an error code to its HTTP status (docs/protocol.md §3, §6).
func HTTPStatus(code string) int {
	switch code {
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbiddenOrigin, CodeForbiddenRoom, CodeForbidden:
		return http.StatusForbidden
	case CodeTooManyConnections, CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeShuttingDown, CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeUserOffline, CodeNotFound:
		return http.StatusNotFound
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	default:
		return http.StatusBadRequest
	}
}

// Close codes sent in WebSocket close frames, and in a stream's close
// event (docs/protocol.md §4, §12.1): RFC 6455's, then partyline's own.
const (
	CloseNormal        = ws.CloseNormal
	CloseGoingAway     = ws.CloseGoingAway
	CloseUnsupported   = ws.CloseUnsupportedData
	CloseInvalidData   = ws.CloseInvalidData
	CloseTooLarge      = ws.CloseTooBig
	closeInternalError = ws.CloseInternalError

	CloseTokenExpired = 4001
	CloseKicked       = 4003
	CloseRateLimit    = 4008
	CloseSlowConsumer = 4009
)
