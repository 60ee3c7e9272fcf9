package partyline

import (
	"strings"
	"testing"

	"github.com/partyline/partyline/internal/ws"
)

// parseServerFrame splits an unmasked server frame into its first byte and
// payload, failing on anything else.
func parseServerFrame(t *testing.T, frame []byte) (first byte, payload []byte) {
	t.Helper()
	if len(frame) < 2 || frame[1]&0x80 != 0 {
		t.Fatalf("frame %q: not an unmasked frame", frame)
	}
	n, head := int(frame[1]&0x7F), 2
	switch n {
	case 126:
		n, head = int(frame[2])<<8|int(frame[3]), 4
	case 127:
		n, head = 0, 10
		for _, b := range frame[2:10] {
			n = n<<8 | int(b)
		}
	}
	if len(frame) != head+n {
		t.Fatalf("frame of %d bytes declares a %d-byte payload after a %d-byte header", len(frame), n, head)
	}
	return frame[0], frame[head:]
}

// describe renders frames as "text:a|b" (a merged frame's lines joined by
// |) and "ping", for comparing.
func describe(t *testing.T, frames [][]byte) string {
	t.Helper()
	var parts []string
	for _, f := range frames {
		first, payload := parseServerFrame(t, f)
		switch first {
		case ws.FinBit | ws.OpText:
			parts = append(parts, "text:"+strings.ReplaceAll(string(payload), "\n", "|"))
		case ws.FinBit | ws.OpPing:
			parts = append(parts, "ping")
		case ws.FinBit | ws.OpClose:
			parts = append(parts, "close")
		default:
			parts = append(parts, "other")
		}
	}
	return strings.Join(parts, " ")
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
