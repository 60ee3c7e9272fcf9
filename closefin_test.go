package partyline_test

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/ws"
)

// TestRefusedMessageClosesCleanly sends messages the server refuses
// midway, with most of their bytes still unread: too big (1009) and
// binary (1003). The client must read the close frame with its code and
// then the end of the stream, never a reset: the server half-closes and
// drops the rest, rather than close a socket with unread bytes, which
// makes the kernel send a reset that can discard the close on its way.
func TestRefusedMessageClosesCleanly(t *testing.T) {
	ts := startServer(t, partyline.Options{MaxMessageSize: 1 << 10})
	big := make([]byte, 512<<10)
	rand.Read(big) // incompressible, so it really is half a megabyte
	for _, tc := range []struct {
		name   string
		opcode byte
		size   int
		code   int
	}{
		{"too big", ws.OpText, len(big), partyline.CloseTooLarge},
		{"binary", ws.OpBinary, 1000, partyline.CloseUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dialStuck(t, "/ws?username=alice")
			skipWelcome(t, c)
			key := [4]byte{1, 2, 3, 4}
			frame := ws.AppendFrame(nil, 0x80|tc.opcode, big[:tc.size], &key)
			frame = ws.AppendFrame(frame, 0x80|ws.OpText, big[:1000], &key) // more behind it
			for len(frame) < len(big) {
				frame = ws.AppendFrame(frame, 0x80|ws.OpPing, nil, &key)
			}
			go c.conn.Write(frame) // the server stops reading midway
			code, err := readClose(c)
			if code != tc.code {
				t.Fatalf("close code %d (%v), want %d", code, err, tc.code)
			}
			c.conn.(interface{ CloseWrite() error }).CloseWrite()
			c.conn.SetReadDeadline(time.Now().Add(waitTime))
			rest, err := io.ReadAll(c.in)
			if errors.Is(err, syscall.ECONNRESET) || err != nil {
				t.Fatalf("after the close frame: %v, want the end of the stream", err)
			}
			if len(rest) != 0 {
				t.Errorf("%d bytes after the close frame", len(rest))
			}
		})
	}
}

// skipWelcome reads the welcome frame.
func skipWelcome(t *testing.T, c *rawClient) {
	t.Helper()
	if first, _, err := c.frame(); err != nil || first != ws.FinBit|ws.OpText {
		t.Fatalf("welcome: %#x %v", first, err)
	}
}

// readClose reads frames until a close frame and returns its code.
func readClose(c *rawClient) (int, error) {
	c.conn.SetReadDeadline(time.Now().Add(waitTime))
	for {
		first, payload, err := c.frame()
		if err != nil {
			return 0, err
		}
		if first&0x0F == ws.OpClose && len(payload) >= 2 {
			return int(binary.BigEndian.Uint16(payload)), nil
		}
		if first&0x0F != ws.OpPing {
			return 0, errors.New("a frame other than a ping before the close")
		}
	}
}
