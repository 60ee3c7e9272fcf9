package ws

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNegotiateDeflate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string // the Sec-WebSocket-Extensions fields, in order
		want   bool
	}{
		{"no header", nil, false},
		{"empty field", []string{""}, false},
		{"bare offer", []string{"permessage-deflate"}, true},
		{"gorilla's offer", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, true},
		{"browsers' offer", []string{"permessage-deflate; client_max_window_bits"}, true},
		{"client_max_window_bits=10", []string{"permessage-deflate; client_max_window_bits=10"}, true},
		{"client_max_window_bits=8", []string{"permessage-deflate; client_max_window_bits=8"}, true},
		{"server_max_window_bits=15", []string{"permessage-deflate; server_max_window_bits=15"}, true},
		{"every parameter", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=9"}, true},
		{"name in capitals", []string{"PerMessage-Deflate; Client_Max_Window_Bits"}, true},
		{"white space everywhere", []string{"  permessage-deflate ;client_max_window_bits = 12 ;\tserver_no_context_takeover  "}, true},
		{"quoted value", []string{`permessage-deflate; client_max_window_bits="10"`}, true},
		{"quoted value with a quoted-pair", []string{`permessage-deflate; client_max_window_bits="1\0"`}, true},
		{"quoted 15", []string{`permessage-deflate; server_max_window_bits="15"`}, true},

		{"another extension", []string{"x-webkit-deflate-frame"}, false},
		{"prefix of the name", []string{"permessage-deflat"}, false},
		{"longer name", []string{"permessage-deflate-x"}, false},
		{"server_max_window_bits=14", []string{"permessage-deflate; server_max_window_bits=14"}, false},
		{"server_max_window_bits=8", []string{"permessage-deflate; server_max_window_bits=8"}, false},
		{"server_max_window_bits without a value", []string{"permessage-deflate; server_max_window_bits"}, false},
		{"server_max_window_bits=015", []string{"permessage-deflate; server_max_window_bits=015"}, false},
		{"server_max_window_bits=16", []string{"permessage-deflate; server_max_window_bits=16"}, false},
		{"client_max_window_bits=7", []string{"permessage-deflate; client_max_window_bits=7"}, false},
		{"client_max_window_bits=16", []string{"permessage-deflate; client_max_window_bits=16"}, false},
		{"client_max_window_bits=abc", []string{"permessage-deflate; client_max_window_bits=abc"}, false},
		{"client_max_window_bits empty", []string{"permessage-deflate; client_max_window_bits="}, false},
		{"client_max_window_bits empty quotes", []string{`permessage-deflate; client_max_window_bits=""`}, false},
		{"server_no_context_takeover with a value", []string{"permessage-deflate; server_no_context_takeover=1"}, false},
		{"client_no_context_takeover with a value", []string{"permessage-deflate; client_no_context_takeover=true"}, false},
		{"unknown parameter", []string{"permessage-deflate; mode=fast"}, false},
		{"repeated parameter", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, false},
		{"repeated parameter in another case", []string{"permessage-deflate; client_max_window_bits; CLIENT_MAX_WINDOW_BITS=9"}, false},
		{"empty parameter", []string{"permessage-deflate;"}, false},
		{"empty parameter between two", []string{"permessage-deflate; client_no_context_takeover;; server_no_context_takeover"}, false},
		{"parameter without a name", []string{"permessage-deflate; =10"}, false},
		{"space inside a name", []string{"permessage-deflate; client no_context_takeover"}, false},
		{"unterminated quote", []string{`permessage-deflate; client_max_window_bits="10`}, false},
		{"quoted value that is no token", []string{`permessage-deflate; client_max_window_bits="1 0"`}, false},
		{"quoted comma", []string{`permessage-deflate; client_max_window_bits="10,permessage-deflate"`}, false},

		{"second offer acceptable", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, true},
		{"second offer in a second field", []string{"permessage-deflate; server_max_window_bits=10", "permessage-deflate; client_max_window_bits"}, true},
		{"after another extension", []string{"x-webkit-deflate-frame, permessage-deflate"}, true},
		{"after a malformed offer", []string{`permessage-deflate; a="b, permessage-deflate; c", permessage-deflate`}, true},
		{"empty list elements", []string{" , ,permessage-deflate,"}, true},
		{"every offer declined", []string{"permessage-deflate; server_max_window_bits=9, permessage-deflate; foo", "permessage-deflate; server_max_window_bits=12"}, false},
		{"comma inside quotes hides an offer", []string{`permessage-deflate; x=", permessage-deflate"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := http.Header{}
			for _, field := range tc.fields {
				header.Add("Sec-WebSocket-Extensions", field)
			}
			answer, got := NegotiateDeflate(header)
			if got != tc.want {
				t.Errorf("NegotiateDeflate(%q) = %v, want %v", tc.fields, got, tc.want)
			}
			if got && !strings.HasPrefix(answer, deflateAnswer) {
				t.Errorf("NegotiateDeflate(%q) answers %q", tc.fields, answer)
			}
		})
	}
}

// TestDeflateAnswer: an answer accepting server_max_window_bits includes it
// (RFC 7692 §7.1.2.1); client_max_window_bits is left out (§7.1.2.2).
func TestDeflateAnswer(t *testing.T) {
	for offer, want := range map[string]string{
		"permessage-deflate":                                               deflateAnswer,
		"permessage-deflate; client_max_window_bits=10":                    deflateAnswer,
		"permessage-deflate; server_max_window_bits=15":                    deflateAnswer + "; server_max_window_bits=15",
		`permessage-deflate; Server_Max_Window_Bits="15"`:                  deflateAnswer + "; server_max_window_bits=15",
		"permessage-deflate; server_max_window_bits=9, permessage-deflate": deflateAnswer,
	} {
		if answer, ok := NegotiateDeflate(http.Header{"Sec-Websocket-Extensions": {offer}}); !ok || answer != want {
			t.Errorf("NegotiateDeflate(%q) = %q, %v; want %q", offer, answer, ok, want)
		}
	}
}

// TestUpgradeWithAnswers checks the answer's extension header against what
// the client offered and what the server allows.
func TestUpgradeWithAnswers(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	for _, tc := range []struct {
		name        string
		compression bool
		offer       string
		want        string
	}{
		{"offered and allowed", true, "permessage-deflate; client_max_window_bits", deflateAnswer},
		{"server_max_window_bits=15 offered", true, "permessage-deflate; server_max_window_bits=15", deflateAnswer + "; server_max_window_bits=15"},
		{"offered, not allowed", false, "permessage-deflate", ""},
		{"not offered", true, "", ""},
		{"offer declined", true, "permessage-deflate; server_max_window_bits=10", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			negotiated := make(chan Negotiated, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, _, agreed, err := UpgradeWith(w, r, time.Now().Add(wait), Options{Compression: tc.compression})
				if err != nil {
					t.Errorf("UpgradeWith: %v", err)
					return
				}
				conn.Close()
				negotiated <- agreed
			}))
			defer srv.Close()
			request := handshakeRequest("GET", "HTTP/1.1", key, nil)
			if tc.offer != "" {
				request = request[:len(request)-2] + "Sec-WebSocket-Extensions: " + tc.offer + "\r\n\r\n"
			}
			resp := roundTrip(t, srv, request)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", resp.StatusCode)
			}
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tc.want {
				t.Errorf("Sec-WebSocket-Extensions: %q, want %q", got, tc.want)
			}
			if agreed := <-negotiated; agreed.Deflate != (tc.want != "") {
				t.Errorf("Negotiated.Deflate = %v, but the answer was %q", agreed.Deflate, tc.want)
			}
		})
	}
}

// TestUpgradeWithRefusesWithoutWriting: a request Check refuses is refused
// the same way, having negotiated nothing.
func TestUpgradeWithRefusesWithoutWriting(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate")
	conn, _, agreed, err := UpgradeWith(w, r, time.Time{}, Options{Compression: true})
	if conn != nil || err == nil || agreed.Deflate {
		t.Fatalf("UpgradeWith: %v, %+v, %v; want a *HandshakeError and nothing negotiated", conn, agreed, err)
	}
	if w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("UpgradeWith wrote %q, headers %v", w.Body, w.Header())
	}
}
