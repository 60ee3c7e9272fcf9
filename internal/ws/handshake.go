package ws

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HandshakeError is a request that cannot be upgraded: the HTTP status to
// answer with and why. Upgrade writes nothing for it; the caller answers.
type HandshakeError struct {
	Status  int
	Message string
	Header  http.Header // headers the answer must carry (426 needs Sec-WebSocket-Version: 13); may be nil
}

// Error implements error.
func (e *HandshakeError) Error() string {
	return "ws: handshake: " + strconv.Itoa(e.Status) + " " + e.Message
}

// Check reports whether r is a valid WebSocket opening handshake (RFC 6455
// §4.2.1): method GET (405), HTTP/1.1 or later, an Upgrade header with the
// token "websocket" and a Connection header with the token "upgrade" (both
// case-insensitive, comma-separated lists) (400), Sec-WebSocket-Version 13
// (426 with Sec-WebSocket-Version: 13), a Sec-WebSocket-Key that is base64 of
// 16 bytes (400). It returns nil or a *HandshakeError.
//
// The 405 answer carries Allow: GET, as HTTP requires.
func Check(r *http.Request) error {
	switch {
	case r.Method != http.MethodGet:
		return &HandshakeError{http.StatusMethodNotAllowed, "websocket needs GET", http.Header{"Allow": {"GET"}}}
	case !r.ProtoAtLeast(1, 1):
		return badRequest("websocket needs HTTP/1.1 or later")
	case !hasToken(r.Header["Upgrade"], "websocket"):
		return badRequest(`no "websocket" in the Upgrade header`)
	case !hasToken(r.Header["Connection"], "upgrade"):
		return badRequest(`no "upgrade" in the Connection header`)
	case len(r.Header.Values("Sec-WebSocket-Key")) > 1 || len(r.Header.Values("Sec-WebSocket-Version")) > 1:
		return badRequest("Sec-WebSocket-Key and Sec-WebSocket-Version may appear once each")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		header := http.Header{}
		header.Set("Sec-WebSocket-Version", "13")
		return &HandshakeError{http.StatusUpgradeRequired, "unsupported websocket version", header}
	case !validKey(r.Header.Get("Sec-WebSocket-Key")):
		return badRequest("Sec-WebSocket-Key is not base64 of 16 bytes")
	}
	return nil
}

func badRequest(message string) error {
	return &HandshakeError{Status: http.StatusBadRequest, Message: message}
}

// hasToken reports whether the comma-separated lists in values hold token,
// compared without regard to case.
func hasToken(values []string, token string) bool {
	for _, list := range values {
		for list != "" {
			var item string
			item, list, _ = strings.Cut(list, ",")
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}

// validKey reports whether key is base64 of 16 bytes.
func validKey(key string) bool {
	var b [18]byte // base64.StdEncoding.DecodedLen(24)
	if len(key) != 24 {
		return false
	}
	n, err := base64.StdEncoding.Decode(b[:], []byte(key))
	return err == nil && n == 16
}

// acceptGUID is the GUID RFC 6455 §1.3 appends to a client's key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey is the Sec-WebSocket-Accept answer to a Sec-WebSocket-Key.
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Options are what UpgradeWith may negotiate. The zero value negotiates
// nothing, as Upgrade does.
type Options struct {
	// Compression accepts permessage-deflate when the client offers it in a
	// form the server can honor (see NegotiateDeflate).
	Compression bool
}

// Negotiated is what UpgradeWith agreed with the client.
type Negotiated struct {
	// Deflate is true when permessage-deflate was accepted, with no context
	// takeover either way: the connection's Reader must then be told so
	// with EnableDeflate, and the server may send frames built by
	// AppendCompressedText.
	Deflate bool
}

// Upgrade completes the handshake of a request Check accepted: it hijacks
// the connection, writes the 101 Switching Protocols answer with
// Sec-WebSocket-Accept (no subprotocol, no extensions: compression is never
// negotiated; see UpgradeWith), and returns the connection and the bytes the
// client sent after its request that the HTTP server had already read (nil
// if none; these are the first bytes of its first frames, the caller feeds
// them to its Reader before reading the connection). deadline bounds the
// write of the answer; it is cleared on return.
//
// Upgrade checks r again and returns Check's *HandshakeError, having written
// nothing, for a request Check refuses. Once it has hijacked the
// connection, it closes it on error.
func Upgrade(w http.ResponseWriter, r *http.Request, deadline time.Time) (net.Conn, []byte, error) {
	conn, early, _, err := UpgradeWith(w, r, deadline, Options{})
	return conn, early, err
}

// UpgradeWith is Upgrade with the extensions opts allows: with
// opts.Compression, the answer accepts the client's permessage-deflate offer
// if NegotiateDeflate does, and Negotiated says so. On error, Negotiated is
// the zero value.
func UpgradeWith(w http.ResponseWriter, r *http.Request, deadline time.Time, opts Options) (net.Conn, []byte, Negotiated, error) {
	if err := Check(r); err != nil {
		return nil, nil, Negotiated{}, err
	}
	var agreed Negotiated
	var extensions string
	if opts.Compression {
		extensions, agreed.Deflate = NegotiateDeflate(r.Header)
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, Negotiated{}, fmt.Errorf("ws: hijack: %w", err)
	}
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		peeked, _ := rw.Reader.Peek(n)
		early = append([]byte(nil), peeked...) // let the server's buffer go
	}
	err = conn.SetWriteDeadline(deadline)
	if err == nil {
		_, err = conn.Write(switchingProtocols(r, extensions))
	}
	if err = errors.Join(err, conn.SetWriteDeadline(time.Time{})); err != nil {
		conn.Close()
		return nil, nil, Negotiated{}, fmt.Errorf("ws: write handshake answer: %w", err)
	}
	return conn, early, agreed, nil
}

// switchingProtocols is the 101 answer to r, with the Sec-WebSocket-Extensions
// value given, if any.
func switchingProtocols(r *http.Request, extensions string) []byte {
	answer := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	if extensions != "" {
		answer += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	return []byte(answer + "\r\n")
}
