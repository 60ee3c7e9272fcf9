package partyline

import (
	"bytes"
	"compress/flate"
	"io"
	"strings"
	"testing"

	"github.com/partyline/partyline/internal/ws"
)

// frameAll frames msgs as a WebSocket connection's writer does and returns
// the frames described (see describe), checking that the space is given
// back.
func frameAll(t *testing.T, msgs []*message) (string, [][]byte) {
	t.Helper()
	var space mergeSpace
	frames := webSocketFraming{}.appendFrames(nil, msgs, &space)
	d := describe(t, frames)
	space.release()
	if len(space.held) != 0 {
		t.Fatalf("release kept %d buffers", len(space.held))
	}
	return d, frames
}

func TestWebSocketFramingMerges(t *testing.T) {
	long := strings.Repeat("x", 200) // a 126-form header
	huge := strings.Repeat("y", 70000)
	ping := &message{payload: ws.PingFrame(), control: true}
	for _, tc := range []struct {
		name string
		msgs []*message
		want string
	}{
		{"nothing", nil, ""},
		{"one message is its own frame", []*message{msg("a")}, "text:a"},
		{"two merge", []*message{msg("a"), msg("bc")}, "text:a|bc"},
		{"control frames keep their place", []*message{msg("a"), msg("b"), ping, msg("c"), ping, msg("d"), msg("e")},
			"text:a|b ping text:c ping text:d|e"},
		{"long payloads", []*message{msg(long), msg("z")}, "text:" + long + "|z"},
		{"a payload over 64 KB stays", []*message{msg("a"), msg(huge), msg("b")}, "text:a text:" + huge + " text:b"},
		{"a joined message is merged as it is", []*message{msg("j\no"), msg("c")}, "text:j|o|c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := frameAll(t, tc.msgs); got != tc.want {
				t.Errorf("framed as %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWebSocketFramingFillsBuffers frames more queued text than one merge
// buffer holds: every payload leaves once, in order, in a handful of
// frames of at most 64 KB.
func TestWebSocketFramingFillsBuffers(t *testing.T) {
	var msgs []*message
	var want []string
	for i := range 2000 {
		s := strings.Repeat(string(rune('a'+i%26)), 1+i%300)
		msgs = append(msgs, msg(s))
		want = append(want, s)
	}
	var space mergeSpace
	frames := webSocketFraming{}.appendFrames(nil, msgs, &space)
	var lines []string
	for _, f := range frames {
		first, payload := parseServerFrame(t, f)
		if first != ws.FinBit|ws.OpText || len(payload) > maxMergedPayload {
			t.Fatalf("frame %#x with a %d-byte payload", first, len(payload))
		}
		lines = append(lines, strings.Split(string(payload), "\n")...)
	}
	if strings.Join(lines, ",") != strings.Join(want, ",") {
		t.Fatalf("the merged frames carry %d payloads, not the %d given, in order", len(lines), len(want))
	}
	if len(frames) > 6 || len(space.held) > len(frames) { // 300 KB in 64 KB buffers
		t.Errorf("%d frames in %d buffers, want about 5", len(frames), len(space.held))
	}
	space.release()
}

// TestAMessageIsFramedOnce checks that a message framed for many
// connections is built once and shared.
func TestAMessageIsFramedOnce(t *testing.T) {
	m := msg("shared")
	var space mergeSpace
	a := webSocketFraming{}.appendFrames(nil, []*message{m}, &space)
	b := webSocketFraming{}.appendFrames(nil, []*message{m}, &space)
	if &a[0][0] != &b[0][0] || len(space.held) != 0 {
		t.Fatalf("two connections got two frames (%p, %p), or the frame was built in their space", a[0], b[0])
	}
}

// BenchmarkWebSocketFraming frames a burst of queued chat messages, as the
// writer does for a connection that has fallen behind.
func BenchmarkWebSocketFraming(b *testing.B) {
	for _, n := range []int{1, 2, 16, 256} {
		b.Run("messages="+itoa(n), func(b *testing.B) {
			chat := msg(string(bytes.Repeat([]byte("x"), 150)))
			msgs := make([]*message, n)
			for i := range msgs {
				msgs[i] = chat
			}
			var space mergeSpace
			var frames [][]byte
			b.ReportAllocs()
			b.SetBytes(int64(n * len(chat.payload)))
			for b.Loop() {
				frames = webSocketFraming{}.appendFrames(frames[:0], msgs, &space)
				if len(frames) != 1 {
					b.Fatalf("%d messages framed into %d frames", n, len(frames))
				}
				space.release()
			}
		})
	}
}

// TestDeflateFramingCompressesLargeFrames: with permessage-deflate, short
// messages are merged only into frames below the minimum size, so that
// every frame of the minimum size or more is compressed (SPEC §12.2), and
// every payload still leaves once, in order.
func TestDeflateFramingCompressesLargeFrames(t *testing.T) {
	const minSize = 512
	var msgs []*message
	var want []string
	for i := range 300 {
		s := strings.Repeat(string(rune('a'+i%26)), 1+i*7%600)
		msgs = append(msgs, msg(s))
		want = append(want, s)
	}
	var space mergeSpace
	defer space.release()
	frames := deflateFraming{minSize: minSize}.appendFrames(nil, msgs, &space)
	var lines []string
	for _, f := range frames {
		first, payload := parseServerFrame(t, f)
		if first&0x40 != 0 {
			inflated, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(payload), strings.NewReader("\x00\x00\xff\xff"))))
			if err != nil && err != io.ErrUnexpectedEOF { // a message may end without a final block
				t.Fatalf("inflating a frame: %v", err)
			}
			lines = append(lines, string(inflated))
			continue
		}
		if len(payload) >= minSize {
			t.Fatalf("an uncompressed frame of %d bytes, the minimum being %d", len(payload), minSize)
		}
		lines = append(lines, strings.Split(string(payload), "\n")...)
	}
	if strings.Join(lines, ",") != strings.Join(want, ",") {
		t.Fatalf("the frames carry %d payloads, not the %d given, in order", len(lines), len(want))
	}
	if len(frames) >= len(msgs) {
		t.Errorf("%d frames for %d messages: nothing was merged", len(frames), len(msgs))
	}
}

// BenchmarkDeflateFanout frames one 1 KB message for every subscriber of
// a room whose clients all negotiated permessage-deflate, as their writers
// do. The message is compressed once, for the first of them; the others
// share its frame, so the cost per message grows with subscribers only by
// a slice append each, not by a compression each.
func BenchmarkDeflateFanout(b *testing.B) {
	payload := bytes.Repeat([]byte(`{"type":"chat","content":"compress me"}`), 27)[:1024]
	for _, subscribers := range []int{1, 100, 1000} {
		b.Run("subscribers="+itoa(subscribers), func(b *testing.B) {
			framing := deflateFraming{minSize: DefaultCompressionMinSize}
			var space mergeSpace
			frames := make([][]byte, 0, 1)
			b.ReportAllocs()
			for b.Loop() {
				m := msg(string(payload))
				var first []byte
				for range subscribers {
					frames = framing.appendFrames(frames[:0], []*message{m}, &space)
					if first == nil {
						first = frames[0]
					} else if &frames[0][0] != &first[0] {
						b.Fatal("a subscriber got a frame of its own: the message was compressed again")
					}
				}
				if first[0]&0x40 == 0 {
					b.Fatal("the frame is not compressed")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/message")
		})
	}
}
