package ws

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wait bounds every wait of these tests.
const wait = 5 * time.Second

// echoServer upgrades with Check and Upgrade, answering refusals with their
// status and headers, and sends back each text message as one server frame.
// Each upgrade reports the early bytes Upgrade returned on early.
func echoServer(t *testing.T, early chan<- []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := Check(r); err != nil {
			var refused *HandshakeError
			if !errors.As(err, &refused) {
				t.Errorf("Check: %v is not a *HandshakeError", err)
				return
			}
			for name, values := range refused.Header {
				w.Header()[name] = values
			}
			http.Error(w, refused.Message, refused.Status)
			return
		}
		conn, buffered, err := Upgrade(w, r, time.Now().Add(wait))
		if err != nil {
			t.Errorf("Upgrade: %v", err)
			return
		}
		defer conn.Close()
		if early != nil {
			early <- slices.Clone(buffered) // echo unmasks buffered in place
		}
		echo(t, conn, buffered)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// echo feeds first, then what conn reads, to a Reader, and writes back each
// text message until a close frame or an error.
func echo(t *testing.T, conn net.Conn, first []byte) {
	reader := NewReader(1 << 16)
	var out []byte
	handle := func(op byte, payload []byte) bool {
		if op == OpText {
			out = append(out, 0x81, byte(len(payload)))
			out = append(out, payload...)
		}
		return op != OpClose
	}
	buf := make([]byte, 512)
	for data := first; ; {
		if err := reader.Feed(data, handle); err != nil {
			t.Errorf("Feed: %v", err)
			return
		}
		if len(out) > 0 {
			if _, err := conn.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		data = buf[:n]
	}
}

func wsURL(srv *httptest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") }

// TestUpgradeWithGorilla completes the handshake with gorilla/websocket's
// Dialer, which checks Sec-WebSocket-Accept, then exchanges messages.
func TestUpgradeWithGorilla(t *testing.T) {
	srv := echoServer(t, nil)
	dialer := websocket.Dialer{HandshakeTimeout: wait, EnableCompression: true}
	conn, resp, err := dialer.Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("Sec-WebSocket-Extensions: %q, want none (compression is never negotiated)", ext)
	}
	for _, text := range []string{"hello", "", "héllo again"} {
		conn.SetWriteDeadline(time.Now().Add(wait))
		if err := conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			t.Fatalf("WriteMessage: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		op, got, err := conn.ReadMessage()
		if err != nil || op != websocket.TextMessage || string(got) != text {
			t.Fatalf("echo of %q: op %d, %q, error %v", text, op, got, err)
		}
	}
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

// TestUpgradeReturnsEarlyBytes sends the request and a first frame in one
// write: the HTTP server reads both, and Upgrade returns the frame's bytes.
func TestUpgradeReturnsEarlyBytes(t *testing.T) {
	early := make(chan []byte, 1)
	srv := echoServer(t, early)
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	first := frame(0x81, "first")
	request := handshakeRequest("GET", "HTTP/1.1", "dGhlIHNhbXBsZSBub25jZQ==", nil)
	if _, err := conn.Write(append([]byte(request), first...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got := string(<-early); got != string(first) {
		t.Errorf("Upgrade returned early bytes %q, want the first frame %q", got, first)
	}
	echoed := make([]byte, 7)
	if _, err := io.ReadFull(br, echoed); err != nil || string(echoed) != "\x81\x05first" {
		t.Errorf("echo of the early frame: %q, %v", echoed, err)
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455 §1.3: the key "dGhlIHNhbXBsZSBub25jZQ==" is answered with
	// "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
	const key, rfcAccept = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if computed := base64.StdEncoding.EncodeToString(sum[:]); computed != rfcAccept {
		t.Fatalf("SHA-1 of the RFC's key and GUID gives %q, the RFC says %q", computed, rfcAccept)
	}
	if got := acceptKey(key); got != rfcAccept {
		t.Errorf("acceptKey(%q) = %q, want %q", key, got, rfcAccept)
	}

	srv := echoServer(t, nil)
	resp := roundTrip(t, srv, handshakeRequest("GET", "HTTP/1.1", key, nil))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	for name, want := range map[string]string{
		"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": rfcAccept,
		"Sec-WebSocket-Protocol": "", "Sec-WebSocket-Extensions": "",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// TestCheckRefuses sends each bad handshake to a real server, which answers
// with Check's status and headers.
func TestCheckRefuses(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	for _, tc := range []struct {
		name    string
		request string
		status  int
		header  string // a header the answer must carry, "Name: value"
	}{
		{"POST", handshakeRequest("POST", "HTTP/1.1", key, nil), 405, "Allow: GET"},
		{"HTTP/1.0", handshakeRequest("GET", "HTTP/1.0", key, nil), 400, ""},
		{"no Upgrade", handshakeRequest("GET", "HTTP/1.1", key, map[string]string{"Upgrade": ""}), 400, ""},
		{"Upgrade: h2c", handshakeRequest("GET", "HTTP/1.1", key, map[string]string{"Upgrade": "h2c"}), 400, ""},
		{"Connection without upgrade", handshakeRequest("GET", "HTTP/1.1", key, map[string]string{"Connection": "keep-alive"}), 400, ""},
		{"version 8", handshakeRequest("GET", "HTTP/1.1", key, map[string]string{"Sec-WebSocket-Version": "8"}), 426, "Sec-WebSocket-Version: 13"},
		{"no version", handshakeRequest("GET", "HTTP/1.1", key, map[string]string{"Sec-WebSocket-Version": ""}), 426, "Sec-WebSocket-Version: 13"},
		{"no key", handshakeRequest("GET", "HTTP/1.1", "", nil), 400, ""},
		{"short key", handshakeRequest("GET", "HTTP/1.1", "c2hvcnQga2V5", nil), 400, ""},
		{"key of 17 bytes", handshakeRequest("GET", "HTTP/1.1", "MDEyMzQ1Njc4OWFiY2RlZmc=", nil), 400, ""},
		{"key not base64", handshakeRequest("GET", "HTTP/1.1", "dGhlIHNhbXBsZSBub25jZQ!!", nil), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := echoServer(t, nil)
			resp := roundTrip(t, srv, tc.request)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if name, value, ok := strings.Cut(tc.header, ": "); ok && resp.Header.Get(name) != value {
				t.Errorf("%s: %q, want %q", name, resp.Header.Get(name), value)
			}
		})
	}
}

// TestCheckAccepts covers what a valid handshake may look like besides
// gorilla's: token lists, any case, headers repeated.
func TestCheckAccepts(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header["Upgrade"] = []string{"foo/2", "WebSocket"}
	r.Header["Connection"] = []string{"keep-alive,  UPGRADE "}
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if err := Check(r); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestUpgradeRefusesWithoutWriting calls Upgrade on a request Check refuses.
func TestUpgradeRefusesWithoutWriting(t *testing.T) {
	w := httptest.NewRecorder()
	conn, _, err := Upgrade(w, httptest.NewRequest("GET", "/", nil), time.Time{})
	var refused *HandshakeError
	if conn != nil || !errors.As(err, &refused) || refused.Status != http.StatusBadRequest {
		t.Fatalf("Upgrade: %v, %v; want a 400 *HandshakeError", conn, err)
	}
	if w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("Upgrade wrote %q, headers %v", w.Body, w.Header())
	}
}

// TestUpgradeDeadline: a deadline already past fails the write of the
// answer, and Upgrade closes the connection.
func TestUpgradeDeadline(t *testing.T) {
	upgraded := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, err := Upgrade(w, r, time.Now().Add(-time.Second))
		upgraded <- err
	}))
	defer srv.Close()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	conn.Write([]byte(handshakeRequest("GET", "HTTP/1.1", "dGhlIHNhbXBsZSBub25jZQ==", nil)))
	if err := <-upgraded; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Upgrade with a past deadline: %v, want a timeout", err)
	}
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes, want the connection closed without an answer", n)
	}
}

// handshakeRequest is the text of an opening handshake: gorilla's headers,
// with key (none if ""), changed by override (a header set to "" is left
// out).
func handshakeRequest(method, proto, key string, override map[string]string) string {
	headers := [][2]string{
		{"Host", "example.com"},
		{"Upgrade", "websocket"},
		{"Connection", "Upgrade"},
		{"Sec-WebSocket-Version", "13"},
		{"Sec-WebSocket-Key", key},
	}
	var b strings.Builder
	b.WriteString(method + " /chat " + proto + "\r\n")
	for _, h := range headers {
		value, ok := override[h[0]]
		if !ok {
			value = h[1]
		}
		if value != "" {
			b.WriteString(h[0] + ": " + value + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// roundTrip sends request on a new connection to srv and reads the answer.
func roundTrip(t *testing.T, srv *httptest.Server, request string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", request, err)
	}
	return resp
}
