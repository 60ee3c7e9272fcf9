package partyline_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
)

// TestIdleConnectionsHoldNoGoroutine: on Linux an idle connection waits in
// the poller, not in a goroutine of its own, and still answers when spoken
// to.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux-only")
	}
	ts := startServer(t, partyline.Options{RateLimit: -1})
	base := runtime.NumGoroutine()
	const n = 200
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("%s/ws?username=u%d&room=lobby", ts.url, i), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer ws.Close()
		conns[i] = ws
	}
	waitUntil(t, "connections to settle", func() bool {
		return ts.Stats().Connections == n && runtime.NumGoroutine() <= base+5
	})
	for _, ws := range conns { // every one still answers
		ws.SetReadDeadline(time.Now().Add(waitTime))
		if err := ws.WriteJSON(map[string]any{"type": "ping", "id": "p"}); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	for i, ws := range conns {
		if !readUntilType(ws, "pong") {
			t.Fatalf("connection %d: no pong", i)
		}
	}
}

// readUntilType reads frames until one holds an object of the given type;
// false on error.
func readUntilType(ws *websocket.Conn, typ string) bool {
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return false
		}
		for _, line := range bytes.Split(data, []byte("\n")) { // frames may batch objects
			var f map[string]any
			if json.Unmarshal(line, &f) == nil && f["type"] == typ {
				return true
			}
		}
	}
}

// TestFramesSentWithTheHandshake: a client that sends its first frame in
// the same packet as its upgrade request is answered; the bytes the HTTP
// server read ahead are not lost.
func TestFramesSentWithTheHandshake(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	conn := ts.dialTCP(t)
	if _, err := conn.Write(append(upgradeRequest("/ws?username=early"), maskedText(`{"type":"ping","id":"early"}`)...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var got []string
	for len(got) < 3 {
		payload, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, strings.Split(payload, "\n")...) // frames may batch objects
	}
	if !strings.Contains(got[0], `"welcome"`) || !strings.Contains(got[1], `"pong"`) || !strings.Contains(got[2], `"early"`) {
		t.Fatalf("frames %q, want the welcome, then the pong and ack of the early ping", got)
	}
}

// dialTCP opens a plain TCP connection to the server, for tests that speak
// the protocol byte by byte; it is closed at the end of the test.
func (ts *testServer) dialTCP(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitTime))
	return conn
}

// dialUpgraded opens a plain TCP connection, upgrades it to a WebSocket
// for path and returns it with the reader of what follows the handshake.
func (ts *testServer) dialUpgraded(t *testing.T, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn := ts.dialTCP(t)
	if _, err := conn.Write(upgradeRequest(path)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return conn, br
}

// upgradeRequest is a WebSocket handshake request for path.
func upgradeRequest(path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
}

// TestEchoAndAckLeaveInOneWrite: the sender's own copy of its message and
// the ack are written together, so one read on the client finds both.
func TestEchoAndAckLeaveInOneWrite(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	conn := ts.dialTCP(t)
	if _, err := conn.Write(upgradeRequest("/ws?username=alice&room=lobby")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var seen []byte
	for !bytes.Contains(seen, []byte(`"online_users"`)) {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("before the chat, after %q: %v", seen, err)
		}
		seen = append(seen, buf[:n]...)
	}
	if _, err := conn.Write(maskedText(`{"type":"chat","content":"hi","id":"c1"}`)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := buf[:n]; !bytes.Contains(got, []byte(`"type":"chat"`)) || !bytes.Contains(got, []byte(`"type":"ack"`)) {
		t.Fatalf("one read gave %q, want the chat and its ack", got)
	}
}

// maskedText frames a short text message as a client must, masked.
func maskedText(s string) []byte { return maskedFrame(0x81, s) }

// maskedFrame frames a short payload with first (FIN and opcode), masked.
func maskedFrame(first byte, s string) []byte {
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{first, 0x80 | byte(len(s)), mask[0], mask[1], mask[2], mask[3]}
	for i := range len(s) {
		frame = append(frame, s[i]^mask[i%4])
	}
	return frame
}

// readServerFrame reads one short unmasked server frame's payload.
func readServerFrame(br *bufio.Reader) (string, error) {
	_, payload, err := readServerFrameOp(br)
	return payload, err
}

// readServerFrameOp reads one unmasked server frame under 64 KB: its first byte
// (FIN and opcode) and its payload.
func readServerFrameOp(br *bufio.Reader) (first byte, payload string, err error) {
	var header [2]byte
	if _, err := io.ReadFull(br, header[:]); err != nil {
		return 0, "", err
	}
	n := int(header[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return 0, "", err
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	case 127:
		return 0, "", fmt.Errorf("frame too long for this test")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return 0, "", err
	}
	return header[0], string(b), nil
}

// TestBurstOfPings: pings sent faster than their pongs leave are answered
// as RFC 6455 allows, the last at least, and the client is not taken for a
// slow consumer however many there are.
func TestBurstOfPings(t *testing.T) {
	ts := startServer(t, partyline.Options{SendQueue: 16})
	conn, br := ts.dialUpgraded(t, "/ws?username=alice")
	var burst []byte
	for i := range 600 {
		burst = append(burst, maskedFrame(0x89, fmt.Sprint("p", i))...)
	}
	burst = append(burst, maskedText(`{"type":"ping"}`)...)
	if _, err := conn.Write(burst); err != nil {
		t.Fatal(err)
	}
	pongs, last := 0, ""
	for {
		first, payload, err := readServerFrameOp(br)
		if err != nil {
			t.Fatalf("after %d pongs: %v; want the answer to the last message", pongs, err)
		}
		switch {
		case first == 0x88:
			t.Fatalf("closed after %d pongs: %q", pongs, payload)
		case first == 0x8A:
			pongs, last = pongs+1, payload
		case strings.Contains(payload, `"type":"pong"`):
			if last != "p599" {
				t.Errorf("%d pongs, the last for %q; want the last for p599", pongs, last)
			}
			return
		}
	}
}

// TestWhatFollowsAPing: the first arrival after a ping is read by the
// poller itself when it is the pong alone; whatever else it is, a message,
// a pong and a message in one packet, or the end of the stream, is handled
// as any arrival.
func TestWhatFollowsAPing(t *testing.T) {
	ts := startServer(t, partyline.Options{PingInterval: 30 * time.Millisecond, PongWait: time.Second})
	conn, br := ts.dialUpgraded(t, "/ws?username=alice")
	pong, message := maskedFrame(0x8A, "p"), maskedText(`{"type":"ping"}`)
	for _, answer := range [][]byte{pong, message, slices.Concat(pong, message), pong, message} {
		awaitPing(t, br)
		if _, err := conn.Write(answer); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(answer, message) {
			continue
		}
		for { // the message is answered
			first, payload, err := readServerFrameOp(br)
			if err != nil {
				t.Fatalf("waiting for the answer to %q: %v", answer, err)
			}
			if first == 0x81 && strings.Contains(payload, `"type":"pong"`) {
				break
			}
		}
	}
	awaitPing(t, br)
	conn.(*net.TCPConn).CloseWrite()
	waitUntil(t, "the connection to end", func() bool { return ts.Stats().Connections == 0 })
}

// TestMessageInPiecesAcrossReads: a connection's parser goes back to a pool
// when its reader ends, except while it holds part of a frame or of a
// fragmented message, which later reads complete: a message sent in pieces,
// with a ping between its fragments, is answered whole.
func TestMessageInPiecesAcrossReads(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	conn, br := ts.dialUpgraded(t, "/ws?username=alice")
	first, last := maskedFrame(0x01, `{"type":`), maskedFrame(0x80, `"ping"}`)
	for _, piece := range [][]byte{first[:3], first[3:], maskedFrame(0x89, "p"), last[:5], last[5:]} {
		if _, err := conn.Write(piece); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // each piece is a read of its own, by a reader of its own
	}
	var pong, answer bool
	for !pong || !answer {
		op, payload, err := readServerFrameOp(br)
		if err != nil {
			t.Fatalf("waiting for the pong and the answer: %v", err)
		}
		pong = pong || op == 0x8A && payload == "p"
		answer = answer || op == 0x81 && strings.Contains(payload, `"type":"pong"`)
	}
}

// awaitPing reads server frames until a ping.
func awaitPing(t *testing.T, br *bufio.Reader) {
	t.Helper()
	for {
		first, _, err := readServerFrameOp(br)
		if err != nil {
			t.Fatalf("waiting for a ping: %v", err)
		}
		if first == 0x89 {
			return
		}
	}
}

// TestNotAHandshake: requests to /ws that cannot be upgraded get a JSON
// error, as RFC 6455 says even when the client could not be admitted
// either, and the slot they reserved is given back.
func TestNotAHandshake(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxConnections: 1})
	httpURL := "http" + strings.TrimPrefix(ts.url, "ws") + "/ws"
	for _, tc := range []struct {
		name, method, query, version string
		header                       http.Header
		status                       int
		code                         string
	}{
		{"POST", http.MethodPost, "?username=alice", "13", nil, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"plain GET", http.MethodGet, "?username=alice", "", nil, http.StatusBadRequest, "bad_request"},
		{"version 8", http.MethodGet, "?username=alice", "8", nil, http.StatusUpgradeRequired, "bad_request"},
		{"version 8, no username", http.MethodGet, "", "8", nil, http.StatusUpgradeRequired, "bad_request"},
		{"two keys", http.MethodGet, "?username=alice", "13",
			http.Header{"Sec-Websocket-Key": {"AAAAAAAAAAAAAAAAAAAAAA=="}}, http.StatusBadRequest, "bad_request"},
		{"two versions", http.MethodGet, "?username=alice", "13",
			http.Header{"Sec-Websocket-Version": {"13"}}, http.StatusBadRequest, "bad_request"},
	} {
		req, _ := http.NewRequest(tc.method, httpURL+tc.query, nil)
		if tc.version != "" {
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Sec-WebSocket-Version", tc.version)
		}
		for name, values := range tc.header {
			req.Header[name] = append(req.Header[name], values...)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var body struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || body.Error.Code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, body.Error.Code, tc.status, tc.code)
		}
		if tc.status == http.StatusUpgradeRequired && resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("%s: no Sec-WebSocket-Version: 13 in the answer", tc.name)
		}
	}
	ts.dial(t, "/ws?username=alice") // the one slot is free again
}

// TestHangupAfterBytesIsSeen: a client that sends a frame and closes at
// once is noticed at once, even when the frame and the end of the stream
// arrive together (the read that returns the frame does not report the
// end).
func TestHangupAfterBytesIsSeen(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	for round := range 20 {
		conn, br := ts.dialUpgraded(t, fmt.Sprintf("/ws?username=u%d", round))
		if _, err := readServerFrame(br); err != nil { // the welcome
			t.Fatal(err)
		}
		pong := []byte{0x8A, 0x80, 1, 2, 3, 4} // an empty masked pong: no answer
		conn.Write(pong)
		conn.(*net.TCPConn).CloseWrite()
		deadline := time.Now().Add(10 * time.Second) // well within the ping interval, 54 s
		for ts.Stats().Connections != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the server has not seen the client leave after 10 s", round)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// panickyMetrics counts nothing, and once armed panics the next time the hub
// publishes.
type panickyMetrics struct{ armed *atomic.Bool }

func (panickyMetrics) MessageIn(string)                          {}
func (panickyMetrics) MessageOut(int, time.Duration)             {}
func (panickyMetrics) Evicted()                                  {}
func (panickyMetrics) Refused(string)                            {}
func (panickyMetrics) StoreLatency(string, time.Duration, error) {}
func (m panickyMetrics) BrokerLatency(op string, _ time.Duration, _ error) {
	if op == "publish" && m.armed.CompareAndSwap(true, false) {
		panic("metrics on fire")
	}
}

func (panickyMetrics) PresenceLatency(string, time.Duration, error) {}

// TestPanicWhileAnnouncingClosesTheConnection: a panic while a chat is
// being delivered closes the sender's connection with 1011 and Shutdown
// still finishes.
func TestPanicWhileAnnouncingClosesTheConnection(t *testing.T) {
	armed := new(atomic.Bool)
	ts := startServer(t, partyline.Options{Metrics: panickyMetrics{armed}})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.Expect("joined")
	armed.Store(true)
	c.Send(map[string]any{"type": "chat", "content": "boom", "id": "b"})
	if code := c.CloseCode(); code != 1011 {
		t.Fatalf("close code %d, want 1011", code)
	}
}
