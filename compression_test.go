package partyline_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/ws"
	"github.com/partyline/partyline/internal/wstest"
)

// TestCompressionWithGorilla has gorilla/websocket's client negotiate
// permessage-deflate, send compressed messages and read compressed ones,
// beside a client that offers nothing.
func TestCompressionWithGorilla(t *testing.T) {
	ts := startServer(t, partyline.Options{Compression: true})
	dialer := websocket.Dialer{EnableCompression: true}
	conn, resp, err := dialer.Dial(ts.url+"/ws/lobby?username=alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("extensions answered %q, want permessage-deflate", ext)
	}
	alice := wstest.New(t, conn)
	alice.Expect("welcome")
	alice.WaitFor("online_users")
	bob := ts.dial(t, "/ws/lobby?username=bob")
	bob.WaitFor("online_users")

	long := strings.Repeat("compress me, ", 100)
	conn.EnableWriteCompression(true)
	alice.Send(map[string]any{"type": "chat", "room": "lobby", "content": long})
	for _, c := range []*wstest.Client{alice, bob} {
		if f := c.WaitFor("chat"); f.Str("content") != long {
			t.Errorf("chat of %d bytes arrived as %d", len(long), len(f.Str("content")))
		}
	}
	bob.Send(map[string]any{"type": "chat", "room": "lobby", "content": "short"})
	if f := alice.WaitFor("chat"); f.Str("content") != "short" {
		t.Errorf("got %v, want the short chat", f)
	}
}

// TestCompressionOnTheWire reads the frames themselves: with compression
// on, frames from the minimum size are compressed (RSV1) and inflate to
// the message; shorter ones, and everything for a client that did not
// offer deflate or with compression off, are not.
func TestCompressionOnTheWire(t *testing.T) {
	long := strings.Repeat("x", 600)
	for _, tc := range []struct {
		name       string
		on, offers bool
		compressed bool
	}{
		{"on, offered", true, true, true},
		{"on, not offered", true, false, false},
		{"off, offered", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, partyline.Options{Compression: tc.on})
			header := ""
			if tc.offers {
				header = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
			}
			c := ts.dialWith(t, "/ws/lobby?username=alice", header)
			if got := strings.Contains(c.head, "permessage-deflate"); got != tc.compressed {
				t.Fatalf("negotiated %v, want %v; answer:\n%s", got, tc.compressed, c.head)
			}
			// Publish once the client is in the room: the join runs after
			// the upgrade's answer, and what is published before it is not
			// delivered.
			for {
				_, payload := c.readFrame(t)
				if bytes.Contains(payload, []byte(`"type":"online_users"`)) {
					break
				}
			}
			ts.Publish(t.Context(), "lobby", partyline.Publication{Content: long})
			ts.Publish(t.Context(), "lobby", partyline.Publication{Content: "short"})
			var chats []string
			for len(chats) < 2 {
				first, payload := c.readFrame(t)
				rsv1 := first&0x40 != 0
				if rsv1 {
					payload = inflate(t, payload)
				}
				for line := range bytes.SplitSeq(payload, []byte("\n")) {
					var f wstest.Frame
					json.Unmarshal(line, &f)
					if f.Str("type") != "chat" {
						continue
					}
					chats = append(chats, f.Str("content"))
					if want := tc.compressed && f.Str("content") == long; rsv1 != want {
						t.Errorf("chat of %d bytes: compressed %v, want %v", len(f.Str("content")), rsv1, want)
					}
				}
			}
			if chats[0] != long || chats[1] != "short" {
				t.Errorf("chats %q, want the long one then short", chats)
			}
		})
	}
}

// TestZipBombIsRefused sends 10 MB of zeros compressed into one 10 KB
// frame: the connection is closed with 1009 at once, and cleanly.
func TestZipBombIsRefused(t *testing.T) {
	ts := startServer(t, partyline.Options{Compression: true})
	c := ts.dialWith(t, "/ws?username=alice", "Sec-WebSocket-Extensions: permessage-deflate\r\n")
	var compressed bytes.Buffer
	w, _ := flate.NewWriter(&compressed, flate.BestCompression)
	w.Write(make([]byte, 10<<20))
	w.Flush()
	bomb := bytes.TrimSuffix(compressed.Bytes(), []byte{0, 0, 0xff, 0xff})
	if len(bomb) > 12<<10 {
		t.Fatalf("the bomb is %d bytes, want about 10 KB", len(bomb))
	}
	key := [4]byte{9, 8, 7, 6}
	c.conn.Write(ws.AppendFrame(nil, 0x80|0x40|ws.OpText, bomb, &key))
	for {
		first, payload := c.readFrame(t)
		if first&0x0F == ws.OpClose {
			if code := binary.BigEndian.Uint16(payload); code != partyline.CloseTooLarge {
				t.Fatalf("close %d %q, want 1009", code, payload[2:])
			}
			break
		}
	}
	c.conn.SetReadDeadline(time.Now().Add(waitTime))
	if rest, err := io.ReadAll(c.in); err != nil || len(rest) != 0 {
		t.Errorf("after the close: %d bytes, %v; want a clean end", len(rest), err)
	}
}

// wireClient is a WebSocket client on a bare connection, for reading the
// frames as they are.
type wireClient struct {
	*rawClient
	head string // the handshake's answer
}

// dialWith opens a WebSocket with extra header lines and reads the answer.
func (ts *testServer) dialWith(t *testing.T, path, header string) *wireClient {
	t.Helper()
	c, head := ts.dialBare(t, path, header)
	return &wireClient{rawClient: c, head: head}
}

// readFrame reads one whole server frame.
func (c *wireClient) readFrame(t *testing.T) (first byte, payload []byte) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitTime))
	var head [2]byte
	if _, err := io.ReadFull(c.in, head[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	n := uint64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		io.ReadFull(c.in, ext[:])
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		io.ReadFull(c.in, ext[:])
		n = binary.BigEndian.Uint64(ext[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.in, payload); err != nil {
		t.Fatalf("reading a %d-byte payload: %v", n, err)
	}
	return head[0], payload
}

// inflate undoes permessage-deflate for one message.
func inflate(t *testing.T, payload []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff}))))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatalf("inflate: %v", err)
	}
	return out
}
