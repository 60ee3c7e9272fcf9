package bench

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestChatFrameIsValidJSON(t *testing.T) {
	for _, size := range []int{stampLen, 64, 1000} {
		frame, digits := chatFrame("room-1", size)
		putStamp(frame[digits:], 1234567890)
		var m struct{ Type, Room, Content string }
		if err := json.Unmarshal(frame, &m); err != nil {
			t.Fatalf("chatFrame(%d) = %s: %v", size, frame, err)
		}
		if m.Type != "chat" || m.Room != "room-1" || len(m.Content) != size {
			t.Errorf("chatFrame(%d): type %q room %q content length %d", size, m.Type, m.Room, len(m.Content))
		}
		if ns, ok := parseStamp([]byte(m.Content)); !ok || ns != 1234567890 {
			t.Errorf("chatFrame(%d) content %q parses to %d, %v; want 1234567890", size, m.Content, ns, ok)
		}
	}
}

func TestStampRoundTrip(t *testing.T) {
	b := make([]byte, stampLen)
	b[0] = stampMark
	for _, ns := range []int64{0, 1, 999, 1e9, 1<<62 + 12345, math.MaxInt64} {
		putStamp(b[1:], ns)
		got, ok := parseStamp(b)
		if !ok || got != ns {
			t.Errorf("putStamp(%d) → %q → %d, %v", ns, b, got, ok)
		}
	}
	for _, bad := range []string{"", "#123", "x0000000000000000001", "#00000000000000000a1", "#9999999999999999999"} {
		if ns, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) = %d, true; want false", bad, ns)
		}
	}
}

func TestStampDoesNotAllocate(t *testing.T) {
	frame, digits := chatFrame("r", 64)
	ns := int64(42)
	n := testing.AllocsPerRun(1000, func() {
		putStamp(frame[digits:], ns)
		got, _ := parseStamp(frame[digits-1:])
		ns = got + 1
	})
	if n != 0 {
		t.Errorf("putStamp+parseStamp allocate %v times, want 0", n)
	}
}

// serverChat is what a server sends for a chat whose content is content.
func serverChat(content string, seq int) string {
	return `{"type":"chat","room":"r","username":"b1","content":"` + content +
		`","timestamp":1700000000000,"seq":` + string(rune('0'+seq%10)) + `,"id":"m1"}`
}

func stamp(ns int64) string {
	b := make([]byte, stampLen+10)
	b[0] = stampMark
	putStamp(b[1:], ns)
	copy(b[stampLen:], "xxxxxxxxxx")
	return string(b)
}

// stampsIn returns the stamps in msg, a whole message.
func stampsIn(msg string) []int64 {
	var got []int64
	forEachStamp([]byte(msg), func(s int64) { got = append(got, s) })
	return got
}

// testBatch is a batch of server messages holding the stamps testStamps.
var (
	testBatch = strings.Join([]string{
		serverChat(stamp(111), 1),
		`{"type":"user_joined","room":"r","username":"b2","content":"b2 joined the room","timestamp":1}`,
		serverChat(stamp(222), 2),
		`{"type":"online_users","room":"r","users":["b1"],"content":"b1"}`,
		`{"type":"chat","content" : "` + stamp(333) + `","seq":3}`,
		`{"type":"chat","content":"#12","seq":4}`,
		`{"type":"error","code":"rate_limited","message":"\"content\": slow down"}`,
		serverChat(stamp(444), 5),
	}, "\n")
	testStamps = []int64{111, 222, 333, 444}
)

func TestScanFindsEveryStamp(t *testing.T) {
	if got := stampsIn(testBatch); !slices.Equal(got, testStamps) {
		t.Fatalf("stamps %v, want %v", got, testStamps)
	}
	// A message cut anywhere holds the stamps before the cut.
	for cut := range len(testBatch) {
		got := stampsIn(testBatch[:cut])
		if !slices.Equal(got, testStamps[:len(got)]) {
			t.Fatalf("cut at %d: stamps %v, want a prefix of %v", cut, got, testStamps)
		}
	}
}

func TestScanIgnoresOtherContent(t *testing.T) {
	for _, msg := range []string{
		`{"type":"welcome","username":"b1","session":"s","rooms":[],"server":"x"}`,
		`{"type":"chat","content":"12345678901234567890123"}`,
		`{"type":"chat","content":"#123456789012345678`,
		`{"type":"chat","content":`,
		`{"content"x:"#0000000000000000001"}`,
		`{"content":       "#0000000000000000001"}`,
	} {
		if got := stampsIn(msg); len(got) != 0 {
			t.Errorf("scan(%q) = %v, want no stamps", msg, got)
		}
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	batch := []byte(serverChat(stamp(111), 1) + "\n" + serverChat(stamp(222), 2))
	var sum int64
	n := testing.AllocsPerRun(1000, func() {
		forEachStamp(batch, func(s int64) { sum += s })
	})
	if n != 0 {
		t.Errorf("forEachStamp allocates %v times per message, want 0", n)
	}
	if sum == 0 {
		t.Error("forEachStamp found no stamps")
	}
}

func BenchmarkScan(b *testing.B) {
	msg := []byte(serverChat(stamp(111), 1))
	var sum int64
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		forEachStamp(msg, func(s int64) { sum += s })
	}
}
