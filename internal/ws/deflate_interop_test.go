package ws

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// deflateEchoServer upgrades with UpgradeWith, compression allowed, and
// sends back each text message: compressed when permessage-deflate was
// negotiated and the message is at least 8 bytes, plain otherwise. Each
// connection reports, on received, the bytes the client sent after its
// request, once the connection ends.
func deflateEchoServer(t *testing.T, received chan<- []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, early, agreed, err := UpgradeWith(w, r, time.Now().Add(wait), Options{Compression: true})
		if err != nil {
			t.Errorf("UpgradeWith: %v", err)
			return
		}
		defer conn.Close()
		received <- deflateEcho(t, conn, early, agreed.Deflate)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// deflateEcho feeds early, then what conn reads, to a Reader, and writes
// back each text message until a close frame or an error. It returns all
// the bytes it fed, as received.
func deflateEcho(t *testing.T, conn net.Conn, early []byte, deflate bool) (received []byte) {
	reader := NewReader(1 << 20)
	if deflate {
		reader.EnableDeflate()
	}
	var out []byte
	closed := false
	handle := func(op byte, payload []byte) bool {
		switch {
		case op == OpText && deflate && len(payload) >= 8:
			out = AppendCompressedText(out, payload)
		case op == OpText:
			out = AppendFrame(out, 0x80|OpText, payload, nil)
		}
		closed = op == OpClose
		return !closed
	}
	buf := make([]byte, 4096)
	for data := early; ; {
		received = append(received, data...) // before Feed unmasks it
		if err := reader.Feed(data, handle); err != nil {
			t.Errorf("Feed: %v", err)
			return received
		}
		if len(out) > 0 {
			if _, err := conn.Write(out); err != nil {
				return received
			}
			out = out[:0]
		}
		if closed {
			return received
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			return received
		}
		data = buf[:n]
	}
}

// TestDeflateWithGorilla: gorilla/websocket's client, compression enabled,
// negotiates permessage-deflate with UpgradeWith, sends compressed messages
// (a long one fragmented by gorilla's 4 KB write buffer) and reads the
// compressed echoes.
func TestDeflateWithGorilla(t *testing.T) {
	received := make(chan []byte, 1)
	srv := deflateEchoServer(t, received)
	dialer := websocket.Dialer{HandshakeTimeout: wait, EnableCompression: true}
	conn, resp, err := dialer.Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateAnswer {
		t.Fatalf("Sec-WebSocket-Extensions: %q, want %q", got, deflateAnswer)
	}
	rng := rand.New(rand.NewPCG(10, 11))
	texts := []string{
		"hello, compressed world",
		string(chatPayload(1024)),
		"héllo ünicode 中文 😀 again and again and again",
		"short",
		"",
		string(randomText(rng, 200000)), // gorilla sends it in many frames
		strings.Repeat("0", 500000),
	}
	for i, text := range texts {
		if i == 3 {
			// RSV1 is per message: the same connection may send plain ones.
			conn.EnableWriteCompression(false)
		}
		conn.SetWriteDeadline(time.Now().Add(wait))
		if err := conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			t.Fatalf("WriteMessage: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		op, got, err := conn.ReadMessage()
		if err != nil || op != websocket.TextMessage || string(got) != text {
			t.Fatalf("echo of message %d (%d bytes): op %d, %d bytes, error %v", i, len(text), op, len(got), err)
		}
		if i == 3 {
			conn.EnableWriteCompression(true)
		}
	}
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	firsts := firstBytes(t, <-received)
	if firsts[0] != 0x80|0x40|OpText {
		t.Errorf("gorilla's first frame began with %#x, want FIN|RSV1|text: it was not compressed", firsts[0])
	}
	if !slices.Contains(firsts, 0x40|OpText) || !slices.Contains(firsts, 0x00) {
		t.Errorf("gorilla's frames began with % x: no compressed message came in fragments", firsts)
	}
}

// firstBytes is the first byte of each client frame in stream.
func firstBytes(t *testing.T, stream []byte) []byte {
	t.Helper()
	var firsts []byte
	for len(stream) > 0 {
		if len(stream) < 2 {
			t.Fatalf("stream ends inside a frame header")
		}
		header, n := 2, int(stream[1]&0x7F)
		switch n {
		case 126:
			header, n = 4, int(binary.BigEndian.Uint16(stream[2:]))
		case 127:
			header, n = 10, int(binary.BigEndian.Uint64(stream[2:]))
		}
		firsts = append(firsts, stream[0])
		stream = stream[min(header+4+n, len(stream)):]
	}
	return firsts
}

// TestDeflateDeclinedWithGorilla: a client that offers nothing gets no
// extension, and plain frames work as before.
func TestDeflateDeclinedWithGorilla(t *testing.T) {
	received := make(chan []byte, 1)
	srv := deflateEchoServer(t, received)
	dialer := websocket.Dialer{HandshakeTimeout: wait}
	conn, resp, err := dialer.Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
		t.Fatalf("Sec-WebSocket-Extensions: %q, want none", got)
	}
	text := string(chatPayload(2000))
	conn.SetWriteDeadline(time.Now().Add(wait))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		t.Fatalf("WriteMessage: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	if op, got, err := conn.ReadMessage(); err != nil || op != websocket.TextMessage || string(got) != text {
		t.Fatalf("echo: op %d, %d bytes, error %v", op, len(got), err)
	}
	conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	if first := firstBytes(t, <-received)[0]; first != 0x80|OpText {
		t.Errorf("first frame began with %#x, want FIN|text", first)
	}
}
