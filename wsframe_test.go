package partyline

import (
	"bytes"
	"strings"
	"testing"
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
		case finBit | opText:
			parts = append(parts, "text:"+strings.ReplaceAll(string(payload), "\n", "|"))
		case finBit | opPing:
			parts = append(parts, "ping")
		case finBit | opClose:
			parts = append(parts, "close")
		default:
			parts = append(parts, "other")
		}
	}
	return strings.Join(parts, " ")
}

func TestMergeText(t *testing.T) {
	text := func(s string) []byte { return textFrame([]byte(s)) }
	long := strings.Repeat("x", 200) // a 126-form header
	huge := strings.Repeat("y", 70000)
	for _, tc := range []struct {
		name   string
		frames [][]byte
		buf    int // the merge buffer's capacity
		want   string
		merged int // bytes of buf used
	}{
		{"nothing", nil, 1024, "", 0},
		{"one frame stays", [][]byte{text("a")}, 1024, "text:a", 0},
		{"two merge", [][]byte{text("a"), text("bc")}, 1024, "text:a|bc", 2 + 4},
		{"control frames keep their place", [][]byte{text("a"), text("b"), pingFrame, text("c"), closeFrame(1000, ""), text("d"), text("e")},
			1024, "text:a|b ping text:c close text:d|e", 2 * (2 + 3)},
		{"long payloads", [][]byte{text(long), text("z")}, 1024, "text:" + long + "|z", 4 + 202},
		{"a payload over 64 KB stays", [][]byte{text("a"), text(huge), text("b")}, 1 << 20, "text:a text:" + huge + " text:b", 0},
		// 14 bytes: room for a 9-byte payload and its header (4 bytes are
		// reserved for it), then for nothing more.
		{"a run is cut where the buffer ends", [][]byte{text("aaaa"), text("bbbb"), text("cccc"), text("dd")},
			14, "text:aaaa|bbbb text:cccc text:dd", 2 + 9},
		{"no room at all", [][]byte{text("a"), text("b")}, 3, "text:a text:b", 0},
		{"a joined frame is merged as it is", [][]byte{text("j\no"), text("c")}, 1024, "text:j|o|c", 2 + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames := append([][]byte(nil), tc.frames...)
			got, buf, through := mergeText(frames, make([]byte, 0, tc.buf))
			if d := describe(t, got); d != tc.want {
				t.Errorf("merged into %q, want %q", d, tc.want)
			}
			if tc.merged != 0 && len(buf) != tc.merged {
				t.Errorf("used %d bytes of the buffer, want %d", len(buf), tc.merged)
			}
			if (through > 0) != (len(buf) > 0) || through > 0 && &got[through-1][0] != &buf[len(buf)-len(got[through-1])] {
				t.Errorf("through %d does not end at the last merged frame", through)
			}
			if cap(buf) != tc.buf {
				t.Errorf("the buffer grew from %d to %d: merged frames would dangle", tc.buf, cap(buf))
			}
			for i := len(got); i < len(frames); i++ {
				if frames[i] != nil {
					t.Errorf("frames[%d] past the result still holds a frame", i)
				}
			}
		})
	}
}

// TestMergeTextFillsTheBuffer merges many frames into the pooled size and
// checks every payload arrives once, in order, within the bound.
func TestMergeTextFillsTheBuffer(t *testing.T) {
	var frames [][]byte
	var want []string
	for i := range 2000 {
		s := strings.Repeat(string(rune('a'+i%26)), 1+i%300)
		frames = append(frames, textFrame([]byte(s)))
		want = append(want, s)
	}
	got, buf, _ := mergeText(frames, make([]byte, 0, mergeBufferSize))
	if cap(buf) != mergeBufferSize || len(got) >= len(want) {
		t.Fatalf("%d frames became %d, buffer %d of %d", len(want), len(got), len(buf), cap(buf))
	}
	var lines []string
	for _, f := range got {
		first, payload := parseServerFrame(t, f)
		if first != finBit|opText || len(payload) > 0xFFFF {
			t.Fatalf("frame %#x with a %d-byte payload", first, len(payload))
		}
		lines = append(lines, strings.Split(string(payload), "\n")...)
	}
	if strings.Join(lines, ",") != strings.Join(want, ",") {
		t.Fatalf("the merged frames carry %d payloads, not the %d given, in order", len(lines), len(want))
	}
}

// BenchmarkMergeText merges a burst of queued chat frames, as the writer
// does for a connection that has fallen behind, into a reused buffer.
func BenchmarkMergeText(b *testing.B) {
	for _, n := range []int{2, 16, 256} {
		b.Run("frames="+itoa(n), func(b *testing.B) {
			chat := textFrame(bytes.Repeat([]byte("x"), 150))
			queued := make([][]byte, n)
			frames := make([][]byte, n)
			buf := make([]byte, 0, mergeBufferSize)
			b.ReportAllocs()
			b.SetBytes(int64(n * len(chat)))
			for b.Loop() {
				for i := range queued {
					queued[i] = chat
				}
				copy(frames, queued)
				frames, buf, _ = mergeText(frames[:n], buf[:0])
				if len(frames) != 1 {
					b.Fatalf("%d frames merged into %d", n, len(frames))
				}
				frames = frames[:n]
			}
		})
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
