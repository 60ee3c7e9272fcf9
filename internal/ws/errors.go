package ws

import "strconv"

// CloseError is why the client's bytes end the connection: the close code
// (CloseProtocolError, CloseInvalidData or CloseTooBig) and reason to
// answer with.
type CloseError struct {
	Code   int
	Reason string
}

// Error implements error.
func (e *CloseError) Error() string {
	return "ws: close " + strconv.Itoa(e.Code) + ": " + e.Reason
}

// protocolError is a CloseProtocolError; each error is a new value, so a
// caller may keep or change it.
func protocolError(reason string) error {
	return &CloseError{Code: CloseProtocolError, Reason: reason}
}

func tooBig() error {
	return &CloseError{Code: CloseTooBig, Reason: "message too big"}
}

func invalidData(reason string) error {
	return &CloseError{Code: CloseInvalidData, Reason: reason}
}
