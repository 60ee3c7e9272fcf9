package ws

import (
	"net/http"
	"strings"
)

// deflateAnswer is the Sec-WebSocket-Extensions value that accepts
// permessage-deflate (with server_max_window_bits added when offered):
// neither side keeps its LZ77 window from one message to
// the next (RFC 7692 §7.1.1), so a connection holds no compression state
// between messages, and a message is compressed once for every subscriber.
const deflateAnswer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// NegotiateDeflate reports whether the permessage-deflate offers in header's
// Sec-WebSocket-Extensions fields (RFC 7692 §5, §7.1) include one the server
// can accept, and returns the Sec-WebSocket-Extensions value that accepts
// it. It reads every field, each a comma-separated list of offers, each an
// extension name and ";"-separated parameters whose values may be quoted;
// names are compared without regard to case. Offers are tried in order, and
// the first acceptable one is taken; an offer is declined when it is
// malformed, names a parameter that is unknown or given twice, gives a
// parameter a value it may not have, or asks for server_max_window_bits
// below 15: Go's compress/flate always compresses with a 32 KB window, so
// it cannot honor a smaller one. client_max_window_bits, with or without a
// value, is accepted: inflating with a 32 KB window reads what a smaller one
// wrote, and the answer omits it (RFC 7692 §7.1.2.2).
//
// The answer is "permessage-deflate; server_no_context_takeover;
// client_no_context_takeover", and "; server_max_window_bits=15" when the
// offer asked for it, as RFC 7692 §7.1.2.1 requires of an answer that
// accepts that parameter (UpgradeWith writes it).
func NegotiateDeflate(header http.Header) (answer string, ok bool) {
	for _, field := range header.Values("Sec-WebSocket-Extensions") {
		for offer := range splitOffers(field) {
			if answer, ok := acceptableDeflateOffer(offer); ok {
				return answer, true
			}
		}
	}
	return "", false
}

// splitOffers yields the comma-separated offers in an extension header
// field, skipping empty ones. A comma inside a quoted string does not end an
// offer; an unterminated quote runs to the end of the field.
func splitOffers(field string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for field != "" {
			end := indexUnquoted(field, ',')
			offer := strings.TrimSpace(field[:end])
			if offer != "" && !yield(offer) {
				return
			}
			field = field[min(end+1, len(field)):]
		}
	}
}

// indexUnquoted is the index of the first sep in s outside a quoted string,
// or len(s). A backslash in a quoted string escapes the byte after it.
func indexUnquoted(s string, sep byte) int {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++ // a quoted-pair: the next byte is taken as it is
		case s[i] == '"':
			quoted = !quoted
		case !quoted && s[i] == sep:
			return i
		}
	}
	return len(s)
}

// acceptableDeflateOffer reports whether offer, one element of an extension
// list, is a permessage-deflate offer the server accepts, and returns the
// answer that accepts it (see NegotiateDeflate).
func acceptableDeflateOffer(offer string) (answer string, ok bool) {
	name, params, more := strings.Cut(offer, ";")
	if !strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
		return "", false
	}
	seen := map[string]bool{}
	for more {
		var param string
		param, params, more = cutParam(params)
		key, value, hasValue, ok := parseParam(param)
		if !ok || seen[key] || !acceptableDeflateParam(key, value, hasValue) {
			return "", false
		}
		seen[key] = true
	}
	if seen["server_max_window_bits"] {
		return deflateAnswer + "; server_max_window_bits=15", true
	}
	return deflateAnswer, true
}

// cutParam cuts params, what follows a ";" in an offer, at its first ";"
// outside a quoted string; more reports whether there was one.
func cutParam(params string) (param, rest string, more bool) {
	i := indexUnquoted(params, ';')
	if i == len(params) {
		return params, "", false
	}
	return params[:i], params[i+1:], true
}

// parseParam parses one extension parameter, token [ "=" (token |
// quoted-string) ] with optional white space around its parts (RFC 6455
// §9.1). key is lowercased; a quoted value is unquoted and must then be a
// token itself. ok is false for a malformed parameter.
func parseParam(param string) (key, value string, hasValue, ok bool) {
	key, value, hasValue = strings.Cut(param, "=")
	key = strings.ToLower(strings.TrimSpace(key))
	if !isToken(key) {
		return "", "", false, false
	}
	if !hasValue {
		return key, "", false, true
	}
	value = strings.TrimSpace(value)
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = unquote(value[1 : len(value)-1])
	}
	return key, value, true, isToken(value)
}

// unquote removes the backslashes of a quoted string's quoted-pairs. An
// unpaired quote is kept, which makes the value no token.
func unquote(s string) string {
	if !strings.ContainsRune(s, '\\') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2): one or more
// visible ASCII characters other than the delimiters.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// acceptableDeflateParam reports whether the server accepts one
// permessage-deflate parameter of an offer (RFC 7692 §7.1): key is
// lowercased, value is unquoted.
func acceptableDeflateParam(key, value string, hasValue bool) bool {
	switch key {
	case "server_no_context_takeover", "client_no_context_takeover":
		return !hasValue
	case "server_max_window_bits":
		// Only 15 can be honored: compress/flate's window is always 32 KB.
		return hasValue && value == "15"
	case "client_max_window_bits":
		return !hasValue || windowBits(value)
	default:
		return false
	}
}

// windowBits reports whether value is a valid max_window_bits value: a
// decimal from 8 to 15 without leading zeros (RFC 7692 §7.1.2.1).
func windowBits(value string) bool {
	switch value {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}
