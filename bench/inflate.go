package bench

import (
	"fmt"
	"net/http"
	"strings"
)

// permessage-deflate (RFC 7692), the client's side, with --compression.
// The bench offers it with no context takeover either way and accepts only
// an answer that keeps it so: then each compressed message inflates alone,
// and no connection keeps a flate reader or a 32 KB window between
// messages: ws.Inflate inflates each with a pooled flate reader, as the
// server does. The bench's own frames go uncompressed, which a client is
// free to do.

// deflateOffer is the Sec-WebSocket-Extensions value the bench sends with
// --compression.
const deflateOffer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// acceptedDeflate reads the server's Sec-WebSocket-Extensions answer
// (header's) to an offer of deflateOffer, or to no offer when offered is
// false. It reports whether permessage-deflate is on, or fails when the
// server answered with an extension that was not offered, or with
// parameters that would make the bench keep a window between messages.
func acceptedDeflate(header http.Header, offered bool) (bool, error) {
	answer := strings.TrimSpace(strings.Join(header.Values("Sec-WebSocket-Extensions"), ","))
	switch {
	case answer == "":
		return false, nil
	case !offered:
		return false, fmt.Errorf("bench: bad handshake: extension %q, none offered", answer)
	case strings.Contains(answer, ","):
		return false, fmt.Errorf("bench: bad handshake: extensions %q, one offered", answer)
	}
	name, params, _ := strings.Cut(answer, ";")
	if !strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
		return false, fmt.Errorf("bench: bad handshake: extension %q not offered", answer)
	}
	serverNoTakeover := false
	for _, param := range strings.Split(params, ";") {
		key, _, _ := strings.Cut(param, "=")
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "server_no_context_takeover":
			serverNoTakeover = true
		case "", "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits":
			// A smaller server window inflates with a 32 KB one; the
			// client's own parameters concern frames the bench does not
			// compress.
		default:
			return false, fmt.Errorf("bench: bad handshake: permessage-deflate parameter %q not offered", strings.TrimSpace(param))
		}
	}
	if !serverNoTakeover {
		return false, fmt.Errorf("bench: bad handshake: %q without server_no_context_takeover, which was offered", answer)
	}
	return true, nil
}
